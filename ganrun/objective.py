"""The maths of one training step: fakes, augmentation, conditioning, adversarial loss, terms, precision.

The loop calls `d_loss` and `g_loss` and steps the optimizers; everything a method changes about a step lives
here or in the objects this calls (the loss, the terms: penalties and class losses, the augmentation), so one D
or G step can be run and checked on tiny networks without the loop.

The G step of a relativistic loss needs D's view of real data. It gets it explicitly: `d_loss` returns the
augmented real batch it used (`DiscriminatorStep.real`, with its labels) and `g_loss` takes that step. A loss
that pairs each fake with a real of its own (`fresh_real_in_g`: RpGAN) draws a fresh batch from `real_batches`
(the run's data stream) instead, so the loop stays the same for every loss.

With `reuse_fakes` the G step reuses the D step's fakes instead of drawing new noise and running G again (what
hand-written loops do, e.g. PyTorch's DCGAN example): `d_loss` runs G with its graph kept, D trains on the fakes
detached, and `g_loss` backpropagates through that same forward of G. The G step still augments them afresh and
conditions on the same labels G generated them for (the D step's real labels: the data's class frequencies
instead of uniform ones). Only valid when every G step follows exactly one D step on as many fakes
(n_critic=1, g_batch_size=batch_size); the run state turns it on only then.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ganrun.augment import Pipeline
from ganrun.models.conditioning import random_labels, split_output
from ganrun.regularizers import TermContext


@dataclass
class StepLoss:
    """What one player's step minimises (`total`) and the per-step scalars to log (tensors, not synced)."""

    total: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class DiscriminatorStep(StepLoss):
    real: torch.Tensor | None = None  # the augmented real batch D saw: relativistic G losses compare against it
    labels: torch.Tensor | None = None  # its labels (conditional models), None otherwise
    fake: torch.Tensor | None = None  # with reuse_fakes: G's output before augmentation, its graph kept for G's step


class GANObjective:
    """D's and G's objectives of one run: `loss` on D's outputs plus every term (regularizers, class terms)."""

    def __init__(self, G: nn.Module, D: nn.Module, loss, terms: dict, augment, z_dim: int, autocast=None,
                 reuse_fakes: bool = False, real_batches=None):
        self.G, self.D, self.loss, self.terms, self.z_dim = G, D, loss, dict(terms), z_dim
        self.augment = augment if augment is not None else Pipeline(None)  # None: D sees its inputs as they are
        self.reuse_fakes = reuse_fakes
        self.real_batches = real_batches  # next() -> (real, labels): fresh reals for G (`loss.fresh_real_in_g`)
        self.autocast = autocast if autocast is not None else contextlib.nullcontext()
        self.conditional = bool(getattr(G, "num_classes", 0))

    def critic(self, labels: torch.Tensor | None):
        """x -> D's adversarial output with the labels bound (what penalties differentiate). It runs D's eager
        forward even when D is compiled: aot_autograd cannot differentiate a compiled graph twice, as input-gradient
        penalties (create_graph=True) do; the plain D outputs of the losses still run compiled."""
        forward = eager(self.D)
        return lambda x: split_output(forward(x, labels))[0]

    def d_loss(self, real: torch.Tensor, labels: torch.Tensor | None, step: int, d_step: int) -> DiscriminatorStep:
        """D's loss on a real batch and as many fresh fakes (sharing the real labels); `d_step` counts D steps
        over the run (lazy terms), `step` counts G steps (augmentation schedules)."""
        y = labels if self.conditional else None
        z = torch.randn(real.shape[0], self.z_dim, device=real.device)
        shared = self.shared_inputs(d_step)
        with self.autocast:
            with torch.set_grad_enabled(self.reuse_fakes):  # G's graph only when G's step will reuse these fakes
                generated = self.G(z, y)
            unaugmented = real
            real, real_grads = self.d_input(real, "real", shared, step)
            fake, fake_grads = self.d_input(generated.detach(), "fake", shared, step)
            (real_out, real_cls), (fake_out, fake_cls) = split_output(self.D(real, y)), split_output(self.D(fake, y))
            real_out, fake_out = real_out.float(), fake_out.float()  # losses in fp32 under AMP
            ctx = TermContext(self.critic(y), self.D, real, fake, y, real_cls, fake_cls, d_step,
                              augment=lambda x: self.augment(x, step), unaugmented_real=unaugmented,
                              unaugmented_fake=generated.detach(), real_out=real_out, fake_out=fake_out,
                              grad_inputs={**real_grads, **fake_grads})
        return self.discriminator_step(ctx, generated)

    def discriminator_step(self, ctx: TermContext, generated) -> DiscriminatorStep:
        """D's adversarial loss on its outputs (`ctx.real_out`, `ctx.fake_out`) plus every term due on `ctx`, with
        the step's logs; `generated` is kept (its graph too) for G's step with reuse_fakes."""
        real_out, fake_out = ctx.real_out, ctx.fake_out
        with self.autocast:
            adversarial = self.loss.d_loss(real_out, fake_out)
            terms = {name: t for name, term in self.terms.items() if (t := term.d_term(ctx)) is not None}
            total = adversarial + sum(terms.values())
        logs = {f"penalty/{name}": term for name, term in terms.items()}
        logs.update({"loss/D": total, "loss/D_adversarial": adversarial,
                     "scores/D(x)": self.loss.score(real_out).mean(), "scores/D(G(z))": self.loss.score(fake_out).mean()})
        logs.update(self.augment.observe(real_out))  # adaptive augmentation reads D's verdict on the reals
        return DiscriminatorStep(total, logs, ctx.real.detach(), ctx.labels, generated if self.reuse_fakes else None)

    def shared_inputs(self, d_step: int) -> set:
        """The (kind, through_augment) inputs that terms due on this D step differentiate D's outputs by, sharing
        the step's forward (regularizers.ZeroCentred). None when D is compiled: aot_autograd cannot differentiate
        its graph twice, so the penalties run their own eager pass (`critic`)."""
        if eager(self.D) is not self.D:
            return set()
        return {need for term in self.terms.values() for need in getattr(term, "shared_inputs", lambda _: ())(d_step)}

    def d_input(self, x: torch.Tensor, kind: str, shared: set, step: int):
        """D's input for the batch `x` (augmented) and {(kind, through_augment): tensor} for the penalties that
        share D's forward: `x` made a leaf requiring grad before the augmentation (through it), and/or the
        augmented batch (D's own input; made a leaf only when it carries no graph from `x`)."""
        grads = {}
        if (kind, True) in shared:
            x = grads[(kind, True)] = x.detach().requires_grad_(True)
        augmented = self.augment(x, step)
        if (kind, False) in shared:
            if not augmented.requires_grad:
                augmented = augmented.detach().requires_grad_(True)
            grads[(kind, False)] = augmented
        return augmented, grads

    def g_loss(self, batch_size: int, step: int, d_step: DiscriminatorStep) -> StepLoss:
        """G's loss on `batch_size` fresh fakes (uniform labels when conditional), or on the D step's fakes with
        `reuse_fakes`, through D as it is now. Call it with D frozen (`frozen(D)`) so only G gets gradients."""
        real, real_labels = self.real_for_g(d_step, step)
        generated, y = self.generate_for_g(batch_size, d_step)
        with self.autocast:
            real_out = self.critic(real_labels)(real).float() if real is not None else None
            fake = self.augment(generated, step)
            fake_out, fake_cls = split_output(self.D(fake, y))
            adversarial = self.loss.g_loss(fake_out.float(), real_out)
            ctx = TermContext(self.critic(y), self.D, None, fake, y, None, fake_cls)
            terms = [t for term in self.terms.values() if (t := term.g_term(ctx)) is not None]
            total = adversarial + sum(terms) if terms else adversarial
        return StepLoss(total, {"loss/G": total})

    def real_for_g(self, d_step: DiscriminatorStep, step: int):
        """The augmented real batch (and its labels) a relativistic G loss compares with: D's last one, or a fresh
        one from `real_batches` for a loss that pairs each fake with its own real; (None, None) for other losses."""
        if not self.loss.needs_real_in_g:
            return None, None
        if not getattr(self.loss, "fresh_real_in_g", False):  # losses written against the bare contract
            return d_step.real, d_step.labels
        real, labels = next(self.real_batches)
        with self.autocast:
            return self.augment(real, step), labels if self.conditional else None

    def generate_for_g(self, batch_size: int, d_step: DiscriminatorStep):
        """G's fakes for its step and their labels: the D step's when it kept them, else fresh ones."""
        if d_step.fake is not None and len(d_step.fake) == batch_size:
            return d_step.fake, d_step.labels
        device = d_step.total.device
        z = torch.randn(batch_size, self.z_dim, device=device)
        y = random_labels(self.G, batch_size, device)
        with self.autocast:
            return self.G(z, y), y

    def after_d_step(self) -> None:
        """Terms that act on D's weights after its optimizer step (WGAN's clipping)."""
        for term in self.terms.values():
            term.after_d_step(self.D)

    def state_dict(self) -> dict:
        """State of stateful terms and augmentations (ADA's p and its counts)."""
        parts = {"terms": self.terms, "augment": {"augment": self.augment}}
        return {kind: {name: obj.state_dict() for name, obj in objs.items() if hasattr(obj, "state_dict")}
                for kind, objs in parts.items()}

    def load_state_dict(self, state: dict) -> None:
        parts = {"terms": self.terms, "augment": {"augment": self.augment}}
        for kind, objs in parts.items():
            for name, saved in state.get(kind, {}).items():
                objs[name].load_state_dict(saved)


def eager(module: nn.Module):
    """`module` called without torch.compile: in-place `module.compile()` keeps the eager call as `_call_impl`,
    `torch.compile(module)` the module as `_orig_mod`."""
    module = getattr(module, "_orig_mod", module)
    return module._call_impl if getattr(module, "_compiled_call_impl", None) is not None else module


@contextlib.contextmanager
def frozen(module: nn.Module):
    """No gradients for `module`'s parameters inside the block (G's step through D)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


class PairedObjective(GANObjective):
    """The objective of a paired image-to-image task (pix2pix, Isola et al. 2017, eq. 4): G maps the input image
    (the batch's `condition`, what the stream yields where a class-conditional run has labels) to an output; D
    scores (input, output) pairs against (input, target) pairs, its forward taking the input as its condition
    (`D(x, condition)`, channel concatenation: pix2pix's conditional D); G minimises `task.adversarial_weight` x
    the adversarial loss plus the task's weighted terms (`task.generator_terms`: `task.reconstruction_weight` x the
    reconstruction loss (L1 or L2) to the target, SRGAN's perceptual loss; task=style's content, style and TV
    terms, where the "target" is the style batch and D, unpaired, ignores its condition).

    Every loss applies unchanged on D's patch outputs (their mean over patches and batch, as pix2pix's PatchGAN
    loss); input-gradient penalties differentiate D with respect to the image of the pair, the input held fixed
    (R1 of the conditional D). G's step trains on the D step's pairs: with `reuse_fakes` it backpropagates through
    the D step's output, else it runs G again on the same inputs (a fresh dropout draw)."""

    def __init__(self, *args, task, **kwargs):
        super().__init__(*args, **kwargs)
        self.task = task
        self.conditional = True  # D always sees the input image

    def d_loss(self, real: torch.Tensor, condition: torch.Tensor, step: int, d_step: int) -> DiscriminatorStep:
        with self.autocast:
            with torch.set_grad_enabled(self.reuse_fakes):
                generated = self.G(condition)
            fake = generated.detach()
            real_out, fake_out = self.D(real, condition).float(), self.D(fake, condition).float()
            ctx = TermContext(self.critic(condition), self.D, real, fake, condition, None, None, d_step,
                              real_out=real_out, fake_out=fake_out)
        return self.discriminator_step(ctx, generated)

    def g_loss(self, batch_size: int, step: int, d_step: DiscriminatorStep) -> StepLoss:
        condition, target = d_step.labels, d_step.real
        generated = d_step.fake
        with self.autocast:
            if generated is None:
                generated = self.G(condition)
            real_out = self.critic(condition)(target).float() if self.loss.needs_real_in_g else None
            fake_out = self.D(generated, condition).float()
            adversarial = self.loss.g_loss(fake_out, real_out)
            ctx = TermContext(self.critic(condition), self.D, None, generated, None, None, None)
            terms = [t for term in self.terms.values() if (t := term.g_term(ctx)) is not None]
            task_terms = self.task.generator_terms(generated, target, condition)  # {name: (weight, loss)}
            total = (self.task.adversarial_weight * adversarial + sum(w * t for w, t in task_terms.values())
                     + sum(terms))
        return StepLoss(total, {"loss/G": total, "loss/G_adversarial": adversarial,
                                **{f"loss/G_{name}": t for name, (_, t) in task_terms.items()}})
