"""Adversarial losses on raw discriminator outputs (logits / critic values).

Each loss gives the discriminator's and the generator's objective (both minimised) as the papers write
them, and may carry the regularizers its paper makes part of the method (WGAN's weight clipping,
WGAN-GP's gradient penalty), so `loss=wgan_gp` is the whole method and `regularizer=...` adds to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class GANLoss:
    # Relativistic losses compare fakes with reals in G's objective too: the objective then passes D(x) to g_loss,
    # on D's last real batch, or on a fresh one when `fresh_real_in_g` (RpGAN pairs each fake with a new real).
    needs_real_in_g = False
    fresh_real_in_g = False
    # How D's logged scores read (ganrun.diagnostics): "probability" (sigmoid losses), "least_squares" (targets
    # 1/0), "hinge" (margins at +-1), or "critic" (Wasserstein, relativistic: no fixed scale).
    score_kind = "critic"

    def __init__(self, regularizers: dict | None = None):
        self.regularizers = dict(regularizers or {})

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """What is logged as D(x) / D(G(z)): the raw output, or a probability for sigmoid losses."""
        return logits


class _SigmoidCrossEntropy(GANLoss):
    """D maximises E[log D(x)] + E[log(1 - D(G(z)))] with D = sigmoid(logit), i.e. binary cross-entropy with
    targets 1 for real and 0 for fake.

    The seeds' target tricks change D's targets only (G keeps target 1):
    - one-sided label smoothing (Salimans et al. 2016): real_label=0.9;
    - two-sided smoothing: real_label=0.9 and fake_label=0.1;
    - label flipping: each sample's target is swapped (real <-> fake) with probability flip_prob.
    """

    score_kind = "probability"

    def __init__(self, regularizers: dict | None = None, real_label: float = 1.0, fake_label: float = 0.0,
                 flip_prob: float = 0.0):
        super().__init__(regularizers)
        self.real_label, self.fake_label, self.flip_prob = float(real_label), float(fake_label), float(flip_prob)

    def d_targets(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        """Per-sample targets for D: smoothed labels, each flipped with probability flip_prob."""
        own, other = (self.real_label, self.fake_label) if real else (self.fake_label, self.real_label)
        targets = torch.full_like(logits, own)
        if self.flip_prob > 0:
            flip = torch.rand_like(logits) < self.flip_prob
            targets = torch.where(flip, torch.full_like(logits, other), targets)
        return targets

    def d_loss(self, real, fake):
        if (self.real_label, self.fake_label, self.flip_prob) == (1.0, 0.0, 0.0):
            return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log sigmoid(t) = softplus(-t)
        return (F.binary_cross_entropy_with_logits(real, self.d_targets(real, True))
                + F.binary_cross_entropy_with_logits(fake, self.d_targets(fake, False)))

    def score(self, logits):
        return torch.sigmoid(logits)


class Minimax(_SigmoidCrossEntropy):
    """Goodfellow et al. 2014, eq. 1: G minimises E[log(1 - D(G(z)))] (saturates when D wins)."""

    def g_loss(self, fake, real=None):
        return -F.softplus(fake).mean()


class NonSaturating(_SigmoidCrossEntropy):
    """Goodfellow et al. 2014, section 3: G maximises E[log D(G(z))] instead."""

    def g_loss(self, fake, real=None):
        return F.softplus(-fake).mean()


class Wasserstein(GANLoss):
    """Arjovsky et al. 2017: critic maximises E[D(x)] - E[D(G(z))]; G maximises E[D(G(z))]."""

    def d_loss(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss(self, fake, real=None):
        return -fake.mean()


class Hinge(GANLoss):
    """Lim & Ye 2017, Miyato et al. 2018: D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; G: -E[D(G(z))]."""

    score_kind = "hinge"

    def d_loss(self, real, fake):
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_loss(self, fake, real=None):
        return -fake.mean()


class LeastSquares(GANLoss):
    """Mao et al. 2017, eq. 2 with a=0, b=1, c=1: D: 1/2 E[(D(x)-1)^2] + 1/2 E[D(G(z))^2]; G: 1/2 E[(D(G(z))-1)^2]."""

    score_kind = "least_squares"

    def d_loss(self, real, fake):
        return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()

    def g_loss(self, fake, real=None):
        return 0.5 * (fake - 1.0).pow(2).mean()


class _RelativisticAverage(GANLoss):
    """Jolicoeur-Martineau 2018 (RaGAN): D judges whether x is more realistic than the average sample of the
    other kind. With r~ = D(x_r) - E[D(x_f)] and f~ = D(x_f) - E[D(x_r)], D minimises
    `towards_real(r~) + towards_fake(f~)` and G the same with the roles swapped: `towards_real(f~) +
    towards_fake(r~)`. Subclasses give the two halves of the base loss."""

    needs_real_in_g = True

    def towards_real(self, t):
        raise NotImplementedError

    def towards_fake(self, t):
        raise NotImplementedError

    def d_loss(self, real, fake):
        return self.towards_real(real - fake.mean()) + self.towards_fake(fake - real.mean())

    def g_loss(self, fake, real=None):
        return self.towards_real(fake - real.mean()) + self.towards_fake(real - fake.mean())


class RelativisticAverageBCE(_RelativisticAverage):
    """RaSGAN: the non-saturating sigmoid cross-entropy halves -log sigmoid(t) and -log(1 - sigmoid(t))."""

    def towards_real(self, t):
        return F.softplus(-t).mean()

    def towards_fake(self, t):
        return F.softplus(t).mean()


class RelativisticAverageLS(_RelativisticAverage):
    """RaLSGAN: (t - 1)^2 and (t + 1)^2."""

    def towards_real(self, t):
        return (t - 1.0).pow(2).mean()

    def towards_fake(self, t):
        return (t + 1.0).pow(2).mean()


class RelativisticAverageHinge(_RelativisticAverage):
    """RaHingeGAN: relu(1 - t) and relu(1 + t)."""

    def towards_real(self, t):
        return F.relu(1.0 - t).mean()

    def towards_fake(self, t):
        return F.relu(1.0 + t).mean()


class RelativisticPairing(GANLoss):
    """RpGAN: the relativistic pairing GAN (Jolicoeur-Martineau 2018's RSGAN; the loss of R3GAN, Huang et al. 2024):
    each real x_i is paired with a fake G(z_i). D minimises E_i[softplus(-(D(x_i) - D(G(z_i))))], G the mirror
    E_i[softplus(-(D(G(z_i)) - D(x_i)))] on a fresh real batch (R3GAN's G step reads its own batch). Unlike
    RaGAN's comparison with the other batch's mean, every fake is judged against one real sample; the pairs
    need as many fakes as reals (trainer.g_batch_size = trainer.batch_size)."""

    needs_real_in_g = True
    fresh_real_in_g = True

    def d_loss(self, real, fake):
        return F.softplus(fake - real).mean()  # softplus(-(real - fake))

    def g_loss(self, fake, real=None):
        return F.softplus(real - fake).mean()
