"""Terms added to the players' objectives: D regularizers (`weight * penalty` in D's loss, or a hook after D's
step) and, through the same contract, label-aware or G-side terms such as AC-GAN's class loss.

The contract (`Regularizer`): `d_term(ctx)` and `g_term(ctx)` return a tensor added to that player's loss, or
None; `after_d_step(D)` acts on D's weights. `ctx` is a `TermContext`: what one step saw. Plain penalties
only write `penalty(critic, real, fake, discriminator)`: the base class applies weight and laziness.

`every` > 1 applies a penalty lazily, on one D step in `every`, scaled by `every` so its expected strength
is unchanged (Karras et al. 2020, StyleGAN2, section 3.1). `critic` is a callable x -> D's adversarial
output, so conditional discriminators pass their labels through a closure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

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


class Regularizer:
    # Penalties on D's input gradient are per-sample quantities: BatchNorm in D couples the samples of a batch,
    # so the penalised norms are not those of the per-sample critic (Gulrajani et al. 2017, section 4).
    input_gradient = False

    def __init__(self, weight: float = 1.0, every: int = 1):  # ranges: ganrun.schema
        self.weight, self.every = float(weight), int(every)

    def penalty(self, critic, real: torch.Tensor, fake: torch.Tensor, discriminator: nn.Module):
        """The unweighted penalty, or None for regularizers that act after the step."""
        return None

    def d_term(self, ctx: TermContext) -> torch.Tensor | None:
        """`weight * every * penalty` on the D steps it is due (lazy ones every `every` steps), else None."""
        if not self.weight or ctx.d_step % self.every != 0:
            return None
        penalty = self.penalty(ctx.critic, ctx.real, ctx.fake, ctx.discriminator)
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
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


class GradientPenalty(Regularizer):
    """Gulrajani et al. 2017 (WGAN-GP): E[(||grad D(x_hat)|| - center)^2] on x_hat = e*x + (1-e)*G(z), e ~ U[0,1].

    one_sided=True penalises only norms above `center`: E[max(0, ||grad|| - center)^2] (the paper's appendix).
    center=0 gives the zero-centred variant.
    """

    input_gradient = True

    def __init__(self, weight: float = 10.0, center: float = 1.0, one_sided: bool = False, every: int = 1):
        super().__init__(weight, every)
        self.center, self.one_sided = float(center), bool(one_sided)

    def penalty(self, critic, real, fake, discriminator):
        eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)
        x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
        gap = input_gradient_norm(critic, x_hat) - self.center
        if self.one_sided:
            gap = gap.clamp(min=0.0)
        return gap.pow(2).mean()


class R1(Regularizer):
    """Mescheder et al. 2018: R1 = 1/2 E_real[||grad D(x)||^2], `weight` is their gamma."""

    input_gradient = True

    def __init__(self, weight: float = 10.0, every: int = 1):
        super().__init__(weight, every)

    def penalty(self, critic, real, fake, discriminator):
        return 0.5 * input_gradient_norm(critic, real).pow(2).mean()


class R2(Regularizer):
    """Mescheder et al. 2018: R2 = 1/2 E_fake[||grad D(G(z))||^2], `weight` is their gamma."""

    input_gradient = True

    def __init__(self, weight: float = 10.0, every: int = 1):
        super().__init__(weight, every)

    def penalty(self, critic, real, fake, discriminator):
        return 0.5 * input_gradient_norm(critic, fake).pow(2).mean()


class DRAGAN(Regularizer):
    """Kodali et al. 2017: E[(||grad D(x_hat)|| - 1)^2] at points x_hat = x + a * delta near the real data,
    delta = 0.5 * std(x) * U[0, 1] per element and a ~ U[0, 1] per sample (lambda = 10 in the paper)."""

    input_gradient = True

    def __init__(self, weight: float = 10.0, spread: float = 0.5, every: int = 1):
        super().__init__(weight, every)
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
