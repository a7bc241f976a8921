"""What every generator and discriminator shares: optional class conditioning.

Architectures only describe their body: a generator's `body(z)` maps a (possibly label-extended) noise vector to
images, a discriminator's `features(x)` maps images to a feature vector. These bases add the conditioning modes:

- `concat` (cGAN, Mirza & Osindero 2014): one-hot y is concatenated to G's noise and to D's input
  (as constant feature maps for images).
- `projection` (Miyato & Koyama 2018): D(x, y) = psi(phi(x)) + <embed(y), phi(x)>; G gets one-hot y with z.
- `acgan` (Odena et al. 2017): D has a second head predicting the class; `ACGANClassTerm` adds the
  cross-entropy terms of the paper's L_C to both players (`conditioning_terms`). G gets one-hot y with z.

In every conditional mode G is conditioned the cGAN way (z concatenated with one-hot y), unless an architecture
says otherwise: R3GAN's G concatenates a learned embedding of y, the ResNet G with `norm=conditional_batch` takes
y through class-dependent BatchNorm gains and biases (Miyato & Koyama 2018's G) instead.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun.errors import ConfigError
from ganrun.regularizers import Regularizer, TermContext



def _classes(conditioning: str, num_classes) -> int:
    """Number of classes the network is conditioned on, 0 when unconditional; refuses impossible settings."""
    if conditioning == "none":
        return 0
    if not num_classes or int(num_classes) < 2:
        raise ConfigError(
            f"model.conditioning={conditioning} needs a labelled dataset with at least 2 classes, but the dataset "
            f"has num_classes={num_classes} (a flat image folder or a toy dataset has no labels). "
            "Use model.conditioning=none, or an ImageFolder tree with one sub-folder per class."
        )
    return int(num_classes)


def random_labels(G: nn.Module, n: int, device, generator: torch.Generator | None = None):
    """Uniformly drawn class labels for a conditional G, None for an unconditional one; drawn on `device` (with
    `generator`, which must live there), not drawn on the CPU and copied: that copy waits for the GPU."""
    if not getattr(G, "num_classes", 0):
        return None
    return torch.randint(G.num_classes, (n,), generator=generator, device=device)


def split_output(output) -> tuple:
    """(adversarial logits, class logits or None): D returns the pair only with an AC-GAN head."""
    return output if isinstance(output, tuple) else (output, None)


class ConditionalGenerator(nn.Module):
    """Subclasses build `self.body` taking `self.input_dim` = z_dim (+ num_classes when conditional) inputs."""

    def __init__(self, z_dim: int, conditioning: str = "none", num_classes=None):
        super().__init__()
        self.z_dim = z_dim
        self.num_classes = _classes(conditioning, num_classes)
        self.input_dim = z_dim + self.num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                raise ValueError("this generator is class-conditional: call it as G(z, y).")
            z = self.join_labels(z, y)
        return self.body(z, y)

    def join_labels(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """cGAN input: z concatenated with one-hot y (an architecture may embed y instead, or pass z alone and
        take y in `body`, as conditional BatchNorm does)."""
        return torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)

    def body(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class ConditionalDiscriminator(nn.Module):
    """Subclasses build `features` (input `self.in_channels` channels, output `feature_dim` values) and call
    `self.make_heads(feature_dim)`; this class adds the label input or output heads of the conditioning mode."""

    def __init__(self, channels: int, conditioning: str = "none", num_classes=None):
        super().__init__()
        self.conditioning = conditioning
        self.num_classes = _classes(conditioning, num_classes)
        self.in_channels = channels + (self.num_classes if conditioning == "concat" else 0)

    def make_heads(self, feature_dim: int, bias: bool = True) -> None:
        self.adversarial = nn.Linear(feature_dim, 1, bias=bias)
        self.embed = nn.Embedding(self.num_classes, feature_dim) if self.conditioning == "projection" else None
        self.classifier = nn.Linear(feature_dim, self.num_classes) if self.conditioning == "acgan" else None

    def join_labels(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """cGAN input: one-hot y as constant feature maps next to the image channels."""
        maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
        return torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        if self.num_classes and y is None and self.conditioning != "acgan":
            raise ValueError("this discriminator is class-conditional: call it as D(x, y).")
        if self.conditioning == "concat":
            x = self.join_labels(x, y)
        h = self.features(x)
        out = self.adversarial(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(dim=1)
        if self.classifier is not None:
            return out, self.classifier(h)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ACGANClassTerm(Regularizer):
    """Odena et al. 2017, eq. 2-3: with L_C = E[log P(C=c | X_real)] + E[log P(C=c | X_fake)], D maximises
    L_S + L_C and G maximises L_C - L_S. As minimised cross-entropies: D adds `weight * (CE(real) + CE(fake))`,
    G adds `weight * CE(fake)` on its own fakes' labels."""

    def d_term(self, ctx: TermContext) -> torch.Tensor:
        return self.weight * (F.cross_entropy(ctx.real_classes, ctx.labels)
                              + F.cross_entropy(ctx.fake_classes, ctx.labels))

    def g_term(self, ctx: TermContext) -> torch.Tensor:
        return self.weight * F.cross_entropy(ctx.fake_classes, ctx.labels)


def conditioning_terms(D: nn.Module, acgan_weight: float = 1.0) -> dict:
    """The objective terms D's conditioning mode brings with it: AC-GAN's class loss for a D with a class head."""
    if getattr(D, "classifier", None) is None:
        return {}
    return {"acgan_class": ACGANClassTerm(weight=acgan_weight)}
