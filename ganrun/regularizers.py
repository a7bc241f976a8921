"""Terms added to the players' objectives: D regularizers (`weight * penalty` in D's loss, or a hook after D's
step) and, through the same contract, label-aware or G-side terms such as AC-GAN's class loss.

The contract (`Regularizer`): `d_term(ctx)` and `g_term(ctx)` return a tensor added to that player's loss, or
None; `after_d_step(D)` acts on D's weights. `ctx` is a `TermContext`: what one step saw. Plain penalties
only write `penalty(critic, real, fake, discriminator)`: the base class applies weight and laziness.

`every` > 1 applies a penalty lazily, on one D step in `every`, scaled by `every` so its expected strength
is unchanged (Karras et al. 2020, StyleGAN2, section 3.1). `critic` is a callable x -> D's adversarial
output, so conditional discriminators pass their labels through a closure.

Input-gradient penalties (R1, R2, R1+R2, GP, DRAGAN) differentiate D through the augmentation by default:
critic(x) = D(augment(x)) at the un-augmented batches, as stylegan2-ada (training/loss.py) and R3GAN do, so the
penalty constrains D on the data's own space; `through_augment=False` takes the gradient at D's augmented input
instead (ganrun's behaviour before). Without augmentation both are the same.

The zero-centred penalties (R1, R2, R1+R2) share the D step's forward pass on the steps they are due: the step
marks the inputs they name (`shared_inputs`) as requiring grad before augmenting and running D, and the penalty
differentiates D's outputs of the adversarial loss (`TermContext.real_out`/`fake_out`) with respect to them, as
stylegan2-ada's non-lazy Dmain+Dreg phase and R3GAN's trainer do: no second D pass, and the penalty sees the
step's own augmentation draw. They fall back to a pass of their own (a fresh augmentation draw) where the step
offers no shared inputs: D compiled with torch.compile (aot_autograd cannot differentiate its graph twice, see
GANObjective.critic) and contexts built by hand. GP and DRAGAN always run their own pass: their points
(interpolates, perturbed reals) are not the loss's inputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from ganrun import distributed
from ganrun.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class TermContext:
    """One D or G step as a term sees it: D's (augmented) inputs, its outputs, the labels, the D step count."""

    critic: Callable[[torch.Tensor], torch.Tensor]  # x -> D's adversarial output, labels bound
    discriminator: nn.Module
    real: torch.Tensor | None  # augmented real batch (None in a G step)
    fake: torch.Tensor  # augmented fakes
    labels: torch.Tensor | None = None  # labels of the real batch (and of D's fakes); G's own labels in a G step
    real_classes: torch.Tensor | None = None  # class logits of an AC-GAN head
    fake_classes: torch.Tensor | None = None
    d_step: int = 0
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None  # x -> D's input (this step's augmentation)
    unaugmented_real: torch.Tensor | None = None  # the batches before `augment`
    unaugmented_fake: torch.Tensor | None = None
    real_out: torch.Tensor | None = None  # D's adversarial outputs on `real` and `fake` (fp32), graph kept
    fake_out: torch.Tensor | None = None
    # {(kind, through_augment): x}: the inputs ("real"/"fake", before the augmentation or D's own input) that
    # `real_out`/`fake_out` were computed from with x.requires_grad, for penalties sharing D's forward
    grad_inputs: dict = field(default_factory=dict)

    def penalty_inputs(self, through_augment: bool):
        """(critic, real, fake) an input-gradient penalty differentiates: x -> D(augment(x)) at the un-augmented
        batches (`through_augment`), or D at its augmented inputs: a pass of its own, whose augmentation draws
        afresh (as stylegan2-ada's separate lazy regularisation pass does). Penalties that can share the step's
        forward read `grad_inputs` instead (ZeroCentred)."""
        if not through_augment or self.augment is None:
            return self.critic, self.real, self.fake
        critic, augment = self.critic, self.augment
        return (lambda x: critic(augment(x))), self.unaugmented_real, self.unaugmented_fake


class Regularizer:
    # Penalties on D's input gradient are per-sample quantities: BatchNorm in D couples the samples of a batch,
    # so the penalised norms are not those of the per-sample critic (Gulrajani et al. 2017, section 4).
    input_gradient = False

    def __init__(self, weight: float = 1.0, every: int = 1):  # ranges: ganrun.schema
        self.weight, self.every = float(weight), int(every)

    def penalty(self, critic, real: torch.Tensor, fake: torch.Tensor, discriminator: nn.Module):
        """The unweighted penalty, or None for regularizers that act after the step."""
        return None

    def due(self, ctx: TermContext) -> bool:
        """Whether the term acts on this D step: a nonzero weight, and one step in `every`."""
        return self.due_at(ctx.d_step)

    def due_at(self, d_step: int) -> bool:
        return bool(self.weight) and d_step % self.every == 0

    def shared_inputs(self, d_step: int) -> tuple:
        """The (kind, through_augment) inputs, kind "real" or "fake", whose gradient this term takes from the D
        step's own forward on step `d_step` (TermContext.grad_inputs); none for terms that run their own pass."""
        return ()

    def penalty_inputs(self, ctx: TermContext):
        """(critic, real, fake) that `penalty` reads: D's augmented inputs (input-gradient penalties override)."""
        return ctx.critic, ctx.real, ctx.fake

    def d_term(self, ctx: TermContext) -> torch.Tensor | None:
        """`weight * every * penalty` on the D steps it is due (lazy ones every `every` steps), else None."""
        if not self.due(ctx):
            return None
        penalty = self.penalty(*self.penalty_inputs(ctx), ctx.discriminator)
        return None if penalty is None else self.weight * self.every * penalty

    def g_term(self, ctx: TermContext) -> torch.Tensor | None:
        """A term in G's loss; D regularizers have none."""
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        pass

    def check(self, name: str, sample_shape: tuple) -> None:
        """Refuse data this term cannot act on, before training (ConfigError naming `regularizer=name`)."""


def check_data(regularizers: dict, sample_shape) -> None:
    """Each regularizer's check of the data's sample shape (image transforms on 2-D toy points)."""
    for name, reg in regularizers.items():
        if hasattr(reg, "check"):  # terms written against the bare contract have none
            reg.check(name, tuple(sample_shape))


def combine(carried: dict, chosen: dict) -> dict:
    """The run's regularizers: those the loss carries (`loss.regularizers`, part of the paper's method) and those
    chosen with `regularizer=...`. One name per regularizer: a chosen regularizer of the same kind as a carried
    one replaces it (the user's settings act on the one penalty; never two gradient penalties at once)."""
    combined = dict(carried)
    for name, reg in chosen.items():
        for carried_name, carried_reg in carried.items():
            if type(carried_reg) is type(reg):
                log.info("regularizer=%s replaces the %s that the loss carries (loss.regularizers.%s): one %s "
                         "runs, with the regularizer.%s settings.", name, type(reg).__name__, carried_name,
                         type(reg).__name__, name)
                combined.pop(carried_name)
        combined[name] = reg
    return combined


def warn_penalty_on_batchnorm(regularizers: dict, discriminator: nn.Module) -> list[str]:
    """Warn (and return the names) when an input-gradient penalty (gp, dragan, r1, r2) runs on a D with
    BatchNorm, naming the fix. Called once before training."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules()):
        return []
    names = [name for name, reg in regularizers.items() if getattr(reg, "input_gradient", False) and reg.weight]
    if names:
        log.warning(
            "Gradient penalty %s on a discriminator with BatchNorm: batch statistics couple the samples, so the "
            "per-sample gradient norms it penalises are wrong. Use model.discriminator.norm=layer (or none), or "
            "the whole WGAN-GP method with loss=wgan_gp / experiment=wgan_gp.", ", ".join(names))
    return names


CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs


def refuse_cuda_graphs_with_penalties(regularizers: dict, trainer) -> None:
    """Input-gradient penalties run D eagerly beside its compiled forward (GANObjective.critic); with CUDA graphs
    the compiled outputs live in a replayed memory pool that the interleaved eager passes are not sound against
    (untested on a GPU): refuse that combination before training."""
    names = [name for name, reg in regularizers.items() if getattr(reg, "input_gradient", False) and reg.weight]
    if names and trainer.compile and trainer.compile_mode in CUDA_GRAPH_MODES:
        raise ConfigError(f"trainer.compile_mode={trainer.compile_mode} replays CUDA graphs, which ganrun does not "
                          f"support with the input-gradient penalty {', '.join(names)}: use "
                          "trainer.compile_mode=default (or max-autotune-no-cudagraphs).")


def input_gradient_norm(critic, x: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm of d critic(x) / dx, differentiable (create_graph) so it can be penalised."""
    x = x.detach().requires_grad_(True)
    return output_gradient_norm(critic(x), x)


def output_gradient_norm(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm of d out / dx for outputs `out` already computed from `x` (x.requires_grad), kept
    differentiable (create_graph): the gradient of a forward pass that another loss also reads."""
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


def zero_centred(critic, x: torch.Tensor) -> torch.Tensor:
    """1/2 E[||grad critic(x)||^2]: Mescheder et al. 2018's R1 (at reals) and R2 (at fakes) without gamma; the
    squared norm sums over every pixel and channel, the mean is over the batch (R3GAN's normalisation too)."""
    return 0.5 * input_gradient_norm(critic, x).pow(2).mean()


class InputGradientPenalty(Regularizer):
    """A penalty on D's input gradient, taken through the augmentation unless `through_augment=False`."""

    input_gradient = True

    def __init__(self, weight: float = 10.0, every: int = 1, through_augment: bool = True):
        super().__init__(weight, every)
        self.through_augment = bool(through_augment)

    def penalty_inputs(self, ctx: TermContext):
        return ctx.penalty_inputs(self.through_augment)


class GradientPenalty(InputGradientPenalty):
    """Gulrajani et al. 2017 (WGAN-GP): E[(||grad D(x_hat)|| - center)^2] on x_hat = e*x + (1-e)*G(z), e ~ U[0,1].
    A D pass of its own: the interpolates are not the adversarial loss's inputs.

    one_sided=True penalises only norms above `center`: E[max(0, ||grad|| - center)^2] (the paper's appendix).
    center=0 gives the zero-centred variant.
    """

    def __init__(self, weight: float = 10.0, center: float = 1.0, one_sided: bool = False, every: int = 1,
                 through_augment: bool = True):
        super().__init__(weight, every, through_augment)
        self.center, self.one_sided = float(center), bool(one_sided)

    def penalty(self, critic, real, fake, discriminator):
        eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)
        x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
        gap = input_gradient_norm(critic, x_hat) - self.center
        if self.one_sided:
            gap = gap.clamp(min=0.0)
        return gap.pow(2).mean()


class ZeroCentred(InputGradientPenalty):
    """1/2 E[||grad D||^2] at the batches named in `at` ("real", "fake"), from the D step's own forward when the
    step shares it (TermContext.grad_inputs, see the module docstring), else from a pass of its own (`penalty`)."""

    at: tuple = ()

    def shared_inputs(self, d_step: int) -> tuple:
        return tuple((kind, self.through_augment) for kind in self.at) if self.due_at(d_step) else ()

    def d_term(self, ctx: TermContext) -> torch.Tensor | None:
        inputs = [ctx.grad_inputs.get((kind, self.through_augment)) for kind in self.at]
        if not self.due(ctx) or any(x is None for x in inputs):
            return super().d_term(ctx)  # not due, or no shared forward: a pass of its own
        outputs = {"real": ctx.real_out, "fake": ctx.fake_out}
        penalty = sum(0.5 * output_gradient_norm(outputs[kind], x).pow(2).mean() for kind, x in zip(self.at, inputs))
        return self.weight * self.every * penalty


class R1(ZeroCentred):
    """Mescheder et al. 2018: R1 = 1/2 E_real[||grad D(x)||^2], `weight` is their gamma."""

    at = ("real",)

    def penalty(self, critic, real, fake, discriminator):
        return zero_centred(critic, real)


class R2(ZeroCentred):
    """Mescheder et al. 2018: R2 = 1/2 E_fake[||grad D(G(z))||^2], `weight` is their gamma."""

    at = ("fake",)

    def penalty(self, critic, real, fake, discriminator):
        return zero_centred(critic, fake)


class R1R2(ZeroCentred):
    """R3GAN's penalty (Huang et al. 2024; R3GAN/Trainer.py): gamma/2 (E_real||grad D(x)||^2 +
    E_fake||grad D(G(z))||^2), R1 and R2 with one weight gamma (`weight`), so one schedule moves both."""

    at = ("real", "fake")

    def __init__(self, weight: float = 0.05, every: int = 1, through_augment: bool = True):  # R3GAN's CIFAR-10 gamma
        super().__init__(weight, every, through_augment)

    def penalty(self, critic, real, fake, discriminator):
        return zero_centred(critic, real) + zero_centred(critic, fake)


class DRAGAN(InputGradientPenalty):
    """Kodali et al. 2017: E[(||grad D(x_hat)|| - 1)^2] at points x_hat = x + a * delta near the real data,
    delta = 0.5 * std(x) * U[0, 1] per element and a ~ U[0, 1] per sample (lambda = 10 in the paper). A D pass of
    its own: the perturbed reals are not the adversarial loss's inputs."""

    def __init__(self, weight: float = 10.0, spread: float = 0.5, every: int = 1, through_augment: bool = True):
        super().__init__(weight, every, through_augment)
        self.spread = float(spread)

    def penalty(self, critic, real, fake, discriminator):
        real = real.detach()
        delta = self.spread * real.std() * torch.rand_like(real)
        alpha = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)
        return (input_gradient_norm(critic, real + alpha * delta) - 1.0).pow(2).mean()


class BalancedConsistency(Regularizer):
    """Zhao et al. 2020, "Improved Consistency Regularization for GANs" (bCR):
    lambda_real E[(D(x) - D(T(x)))^2] + lambda_fake E[(D(G(z)) - D(T(G(z))))^2], T a random horizontal flip
    (probability `flip_prob`) and translation by up to `translation` of the size (their CIFAR-10 T: flip and
    4 px of 32). `weight` scales both terms; the paper's lambdas are 10."""

    def __init__(self, weight: float = 1.0, real_weight: float = 10.0, fake_weight: float = 10.0,
                 flip_prob: float = 0.5, translation: float = 0.125, every: int = 1):
        super().__init__(weight, every)
        self.real_weight, self.fake_weight = float(real_weight), float(fake_weight)
        self.flip_prob, self.translation = float(flip_prob), float(translation)

    def check(self, name: str, sample_shape: tuple) -> None:
        if len(sample_shape) != 3:  # flips and translations of images
            raise ConfigError(f"regularizer={name} (bCR) flips and translates images; it cannot act on samples of "
                              f"shape {sample_shape}.")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        from ganrun.augment import translation

        flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.flip_prob
        x = torch.where(flip, x.flip(3), x)
        return translation(x, self.translation) if self.translation > 0 else x

    def penalty(self, critic, real, fake, discriminator):
        real, fake = real.detach(), fake.detach()
        consistency = [(critic(x) - critic(self.transform(x))).pow(2).mean() for x in (real, fake)]
        return self.real_weight * consistency[0] + self.fake_weight * consistency[1]


class L2WeightPenalty(Regularizer):
    """Sum of squared discriminator parameters (weight decay written as a loss term)."""

    def __init__(self, weight: float = 1e-4, every: int = 1):
        super().__init__(weight, every)

    def penalty(self, critic, real, fake, discriminator):
        return sum(p.pow(2).sum() for p in discriminator.parameters())


class WeightClipping(Regularizer):
    """Arjovsky et al. 2017 (WGAN): clamp every critic parameter to [-clip_value, clip_value] after each step."""

    def __init__(self, clip_value: float = 0.01):
        super().__init__(weight=0.0)
        self.clip_value = float(clip_value)

    @torch.no_grad()
    def after_d_step(self, discriminator):
        for p in discriminator.parameters():
            p.clamp_(-self.clip_value, self.clip_value)


class LeCam(Regularizer):
    """Tseng et al. 2021, "Regularizing GANs under Limited Data" (LeCam): E[relu(D(x) - alpha_F)^2] +
    E[relu(alpha_R - D(G(z)))^2], alpha_R and alpha_F exponential moving averages (`decay`) of D's mean real and
    fake outputs; lambda (`weight`) = 0.3 in their BigGAN CIFAR setting. The relu is their code's
    (google/lecam-gan, lecam_reg; the paper's eq. 3 writes the squares alone): only outputs that overshoot the
    other kind's average are pulled back. The averages start at zero and are debiased by 1 - decay^t, as their
    StyleGAN2 code (tf assign_moving_average, zero_debias=True); each D step updates them with its batch means
    (averaged over ranks) before the term reads them, due or not.

    The averages are state: tensors on D's device (no host sync), in the checkpoint through `state_dict`."""

    def __init__(self, weight: float = 0.3, decay: float = 0.99, every: int = 1):
        super().__init__(weight, every)
        self.decay = float(decay)
        self.averages = torch.zeros(2)  # biased EMAs of E[D(x)], E[D(G(z))]
        self.debias = torch.zeros(())  # 1 - decay^t after t updates

    def update(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """Move the averages by one D step's outputs; return the debiased (alpha_R, alpha_F)."""
        means = distributed.mean_over_ranks({"real": real_out.detach().float().mean(),
                                             "fake": fake_out.detach().float().mean()})
        means = torch.stack([means["real"], means["fake"]])
        if self.averages.device != means.device:
            self.averages, self.debias = self.averages.to(means.device), self.debias.to(means.device)
        self.averages = self.decay * self.averages + (1.0 - self.decay) * means
        self.debias = self.decay * self.debias + (1.0 - self.decay)
        return self.averages / self.debias

    def d_term(self, ctx: TermContext) -> torch.Tensor | None:
        alpha_real, alpha_fake = self.update(ctx.real_out, ctx.fake_out)
        if not self.due(ctx):
            return None
        penalty = (torch.relu(ctx.real_out - alpha_fake).pow(2).mean()
                   + torch.relu(alpha_real - ctx.fake_out).pow(2).mean())
        return self.weight * self.every * penalty

    def state_dict(self) -> dict:
        return {"averages": self.averages.clone(), "debias": self.debias.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.averages, self.debias = state["averages"].clone().float(), state["debias"].clone().float()
