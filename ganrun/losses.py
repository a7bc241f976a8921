"""Adversarial losses on raw discriminator outputs (logits / critic values).

Each loss gives the discriminator's and the generator's objective (both minimised) as the papers write
them, and may carry the regularizers its paper makes part of the method (WGAN's weight clipping,
WGAN-GP's gradient penalty), so `loss=wgan_gp` is the whole method and `regularizer=...` adds to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class GANLoss:
    def __init__(self, regularizers: dict | None = None):
        self.regularizers = dict(regularizers or {})

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """What is logged as D(x) / D(G(z)): the raw output, or a probability for sigmoid losses."""
        return logits


class _SigmoidCrossEntropy(GANLoss):
    """D maximises E[log D(x)] + E[log(1 - D(G(z)))] with D = sigmoid(logit); log sigmoid(t) = -softplus(-t)."""

    def d_loss(self, real, fake):
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def score(self, logits):
        return torch.sigmoid(logits)


class Minimax(_SigmoidCrossEntropy):
    """Goodfellow et al. 2014, eq. 1: G minimises E[log(1 - D(G(z)))] (saturates when D wins)."""

    def g_loss(self, fake):
        return -F.softplus(fake).mean()


class NonSaturating(_SigmoidCrossEntropy):
    """Goodfellow et al. 2014, section 3: G maximises E[log D(G(z))] instead."""

    def g_loss(self, fake):
        return F.softplus(-fake).mean()


class Wasserstein(GANLoss):
    """Arjovsky et al. 2017: critic maximises E[D(x)] - E[D(G(z))]; G maximises E[D(G(z))]."""

    def d_loss(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss(self, fake):
        return -fake.mean()


class Hinge(GANLoss):
    """Lim & Ye 2017, Miyato et al. 2018: D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; G: -E[D(G(z))]."""

    def d_loss(self, real, fake):
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_loss(self, fake):
        return -fake.mean()


class LeastSquares(GANLoss):
    """Mao et al. 2017, eq. 2 with a=0, b=1, c=1: D: 1/2 E[(D(x)-1)^2] + 1/2 E[D(G(z))^2]; G: 1/2 E[(D(G(z))-1)^2]."""

    def d_loss(self, real, fake):
        return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()

    def g_loss(self, fake):
        return 0.5 * (fake - 1.0).pow(2).mean()
