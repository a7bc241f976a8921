"""Science checks that a plausible wrong version fails: each test pins one detail of a paper's method against an
independent reference (closed form, brute force, the reference code's structure). benchmarks/mutation_pass.py
applies such wrong versions one at a time and lists which test catches each."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun import augment, losses, regularizers
from ganrun.models import dcgan, resnet


class Recorder:
    """A critic D(x) = sum(x^2) / 2 per sample (input gradient x) that records where it was evaluated."""

    def __init__(self):
        self.seen = []

    def __call__(self, x):
        self.seen.append(x.detach().clone())
        return 0.5 * x.pow(2).flatten(1).sum(1)


# -- penalties ---------------------------------------------------------------------------------------------------
def test_gradient_penalty_mixes_each_sample_with_one_epsilon():
    """Gulrajani et al. 2017, Algorithm 1: one epsilon ~ U[0, 1] per sample, the same for all its pixels."""
    torch.manual_seed(0)
    critic = Recorder()
    real, fake = torch.zeros(256, 3, 4, 4), torch.ones(256, 3, 4, 4)
    regularizers.GradientPenalty().penalty(critic, real, fake, None)
    x_hat = critic.seen[0].flatten(1)
    assert torch.equal(x_hat, x_hat[:, :1].expand_as(x_hat))  # constant within a sample
    assert x_hat[:, 0].std() > 0.2  # but drawn per sample (U[0, 1] has std 0.29)


def test_gradient_penalty_closed_form_on_a_quadratic_critic():
    """||grad|| of sum(x^2)/2 at x_hat = e*1 + (1-e)*0 is e * sqrt(n): the penalty is E[(e sqrt(n) - 1)^2]."""
    torch.manual_seed(0)
    critic = Recorder()
    real, fake = torch.ones(4096, 4), torch.zeros(4096, 4)
    value = regularizers.GradientPenalty().penalty(critic, real, fake, None).item()
    e = critic.seen[0][:, 0]
    assert value == pytest.approx(((2 * e - 1) ** 2).mean().item(), rel=1e-5)
    assert value == pytest.approx(1 / 3, rel=0.05)  # E[(2e - 1)^2] = 1/3 for e ~ U[0, 1]


def test_lazy_penalty_is_applied_every_k_steps_and_scaled_by_k():
    """StyleGAN2 (Karras et al. 2020, sec. 3.1): a lazy regularizer every k steps is multiplied by k."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[3.0, 4.0]]))  # ||grad|| = 5 everywhere: R1 = 0.5 * 25
    r1 = regularizers.R1(weight=2.0, every=4)
    real = torch.randn(8, 2)
    due = [r1.d_term(regularizers.TermContext(critic, critic, real, None, d_step=step)) for step in range(8)]
    assert [t is not None for t in due] == [True, False, False, False, True, False, False, False]
    assert due[0].item() == pytest.approx(2.0 * 4 * 0.5 * 25.0)


def test_dragan_perturbs_every_element_and_scales_per_sample():
    """Kodali et al. 2017 (reference code): x + alpha * 0.5 * std(x) * U[0,1] of x's shape, alpha per sample."""
    torch.manual_seed(0)
    critic = Recorder()
    real = torch.randn(4096, 16)
    regularizers.DRAGAN().penalty(critic, real, None, None)
    offset = critic.seen[0] - real
    bound = 0.5 * real.std()
    spread = offset.std(dim=1) / offset.mean(dim=1)  # about 0.58 for U[0, 1] per element, ~1e-7 for one shift
    assert (spread > 0.1).float().mean() > 0.99  # per element, not one shift per sample
    assert offset.min() >= 0 and offset.max() <= bound + 1e-6
    # offset = alpha * delta with alpha, u ~ U[0,1] independent: E = bound/4, and the per-sample maxima vary with alpha
    assert offset.mean().item() == pytest.approx(bound.item() / 4, rel=0.05)
    assert (offset.max(dim=1).values / bound).std() > 0.15


def test_r1_and_r2_closed_forms_on_a_quadratic_critic():
    """Mescheder et al. 2018, eq. 9: R1 = gamma/2 E||grad D(x)||^2 (here ||grad|| = ||x||): the 1/2 is part of it."""
    torch.manual_seed(0)
    critic = Recorder()
    x = torch.randn(64, 5)
    assert regularizers.R1().penalty(critic, x, None, None).item() == pytest.approx(
        0.5 * x.pow(2).sum(1).mean().item(), rel=1e-5)
    assert regularizers.R2().penalty(critic, None, x, None).item() == pytest.approx(
        0.5 * x.pow(2).sum(1).mean().item(), rel=1e-5)


def test_one_sided_penalty_only_above_the_centre():
    critic = Recorder()
    x = torch.cat([torch.full((10, 1), 0.5), torch.full((10, 1), 2.0)])  # ||grad|| 0.5 and 2
    gp = regularizers.GradientPenalty(one_sided=True)
    assert gp.penalty(critic, x, x, None).item() == pytest.approx(0.5 * 1.0)
    assert regularizers.GradientPenalty().penalty(critic, x, x, None).item() == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)


# -- losses --------------------------------------------------------------------------------------------------------
REAL = torch.tensor([-1.5, -0.2, 0.4, 0.9, 2.5])  # around both hinge margins and both LSGAN targets
FAKE = torch.tensor([-2.2, -0.9, -0.1, 0.6, 1.8])


def test_hinge_margins_are_one():
    """Lim & Ye 2017 / Miyato et al. 2018: min(0, -1 + D(x)) and min(0, -1 - D(G(z))), margins at +-1."""
    loss = losses.Hinge()
    expected = sum(max(0.0, 1 - r) for r in REAL.tolist()) / 5 + sum(max(0.0, 1 + f) for f in FAKE.tolist()) / 5
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expected)
    # a sample just inside the margin still counts, one just beyond it does not
    assert loss.d_loss(torch.tensor([0.99]), torch.tensor([-2.0])).item() == pytest.approx(0.01, abs=1e-6)
    assert loss.d_loss(torch.tensor([1.01]), torch.tensor([-0.99])).item() == pytest.approx(0.01, abs=1e-6)


def test_least_squares_targets_zero_one_one():
    """Mao et al. 2017, eq. 9: a = 0 for fakes, b = 1 for reals, c = 1 for G."""
    loss = losses.LeastSquares()
    assert loss.d_loss(torch.tensor([1.0]), torch.tensor([0.0])).item() == 0.0  # D at its targets
    assert loss.g_loss(torch.tensor([1.0])).item() == 0.0
    assert loss.d_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(1.0)


def test_non_saturating_and_minimax_generator_losses():
    """Goodfellow et al. 2014: minimax G minimises log(1 - D(G(z))), non-saturating G minimises -log D(G(z))."""
    d = torch.sigmoid(FAKE)
    assert losses.NonSaturating().g_loss(FAKE).item() == pytest.approx(-d.log().mean().item(), rel=1e-6)
    assert losses.Minimax().g_loss(FAKE).item() == pytest.approx((1 - d).log().mean().item(), rel=1e-6)
    both = (-torch.sigmoid(REAL).log().mean() - (1 - d).log().mean()).item()
    assert losses.NonSaturating().d_loss(REAL, FAKE).item() == pytest.approx(both, rel=1e-6)


def test_relativistic_average_generator_swaps_the_roles():
    """Jolicoeur-Martineau 2018, RaSGAN: G minimises -log sig(f - mean r) - log(1 - sig(r - mean f))."""
    loss = losses.RelativisticAverageBCE()
    f_t, r_t = FAKE - REAL.mean(), REAL - FAKE.mean()
    g = (-torch.sigmoid(f_t).log().mean() - (1 - torch.sigmoid(r_t)).log().mean()).item()
    d = (-torch.sigmoid(r_t).log().mean() - (1 - torch.sigmoid(f_t)).log().mean()).item()
    assert loss.g_loss(FAKE, REAL).item() == pytest.approx(g, rel=1e-6)
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)


# -- augmentation ----------------------------------------------------------------------------------------------------
def test_instance_noise_is_independent_per_element():
    """Sønderby et al. 2016: x + sigma * N(0, I), independent for every pixel, not one offset per image."""
    torch.manual_seed(0)
    noise = augment.InstanceNoise(std=0.3)
    x = torch.zeros(64, 3, 8, 8)
    added = noise(x, 0).flatten(1)
    assert added.std(dim=1).mean().item() == pytest.approx(0.3, rel=0.05)  # varies within each image
    assert added.mean(dim=1).abs().max() < 0.1  # and averages out over the image


def test_translation_moves_each_image_by_its_own_shift():
    """DiffAugment (Zhao et al. 2020): translation parameters are drawn per sample."""
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    positions = augment.translation(x).flatten(1).argmax(1)
    assert len(set(positions.tolist())) > 5


def test_real_and_fake_batches_are_augmented_by_the_same_policy():
    """Zhao et al. 2020, eq. 2-3: T applied to reals and fakes alike; the same draws give the same images."""
    pipeline = augment.Pipeline({"d": augment.DiffAugment("translation")})
    x = torch.rand(8, 1, 16, 16)
    torch.manual_seed(3)
    a = pipeline(x, 0)
    torch.manual_seed(3)
    b = pipeline(x.clone(), 0)
    assert torch.equal(a, b) and not torch.equal(a, x)


# -- architecture details --------------------------------------------------------------------------------------------
def test_sngan_d_first_block_has_no_leading_relu_and_later_blocks_do():
    """Miyato et al. 2018 / reference OptimizedBlock: conv-ReLU-conv-pool with shortcut pool-conv; the other
    blocks start with ReLU. A leading ReLU would drop all negative input pixels."""
    torch.manual_seed(0)
    D = resnet.Discriminator(resolution=32, channels=3, width=8, weight_param="none")
    first = D.blocks[0]
    assert isinstance(first.main[0], nn.Conv2d) and isinstance(first.shortcut[0], nn.AvgPool2d)
    assert all(isinstance(b.main[0], nn.ReLU) for b in list(D.blocks)[1:])
    x = -torch.rand(2, 3, 32, 32)  # all-negative images: a leading ReLU would make the residual input zero
    assert not torch.allclose(first.main(x), first.main(torch.zeros_like(x)))


def test_sngan_d_sums_the_final_features_over_space():
    """Reference snresnet_32.py: h = relu(h); h = sum(h, axis=(2, 3)) (sum, despite its comment "average")."""
    torch.manual_seed(0)
    D = resnet.Discriminator(resolution=32, channels=3, width=8, weight_param="none")
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(D.features(x), F.relu(D.blocks(x)).sum(dim=(2, 3)))


def test_spectral_norm_covers_the_projection_embedding():
    """Miyato & Koyama 2018: SNEmbedID, the class embedding's largest singular value is 1 too."""
    torch.manual_seed(0)
    D = dcgan.Discriminator(resolution=28, channels=1, width=8, conditioning="projection", num_classes=5,
                            weight_param="spectral")
    with torch.no_grad():
        D.embed.parametrizations.weight.original.mul_(50.0)
        for _ in range(30):  # power iterations in training mode
            D(torch.randn(4, 1, 28, 28), torch.arange(4))
    D.eval()
    assert torch.linalg.matrix_norm(D.embed.weight, ord=2).item() == pytest.approx(1.0, rel=0.02)


def test_dcgan_discriminator_leaky_slope_and_no_norm_on_its_input_layer():
    D = dcgan.Discriminator(resolution=32, channels=3, width=8)
    assert isinstance(D.net[0], nn.Conv2d) and isinstance(D.net[1], nn.LeakyReLU)
    assert {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}



def test_g_step_sends_its_fakes_through_the_augmentation_too():
    """DiffAugment (Zhao et al. 2020, sec. 3.2, fig. 4): T is applied to G(z) in G's update as well, so G's
    gradient passes through T; augmenting only D's inputs lets D tell augmented reals from raw fakes."""
    from ganrun.augment import InstanceNoise, Pipeline
    from ganrun.models import mlp
    from ganrun.objective import GANObjective, frozen

    torch.manual_seed(0)
    G, D = mlp.Generator(3, hidden=[5], shape=[2]), mlp.Discriminator(hidden=[5], shape=[2])
    shift = Pipeline({"noise": InstanceNoise(std=0.5)})
    obj = GANObjective(G, D, losses.NonSaturating(), {}, shift, 3)
    d_step = obj.d_loss(torch.randn(6, 2), torch.zeros(6, dtype=torch.long), step=0, d_step=0)
    torch.manual_seed(2)
    with frozen(D):
        g_loss = obj.g_loss(4, step=0, d_step=d_step).total
    torch.manual_seed(2)
    fake = G(torch.randn(4, 3))
    expected = F.softplus(-D(fake + 0.5 * torch.randn_like(fake))).mean()  # the same draws, by hand
    assert g_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert g_loss.item() != pytest.approx(F.softplus(-D(fake)).mean().item(), rel=1e-3)
