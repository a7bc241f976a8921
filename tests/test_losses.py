"""Each loss against its closed form on known logits."""

import math

import pytest
import torch

from ganrun import losses

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([-3.0, 0.0, 1.5])


def log_sigmoid(t):
    return math.log(1.0 / (1.0 + math.exp(-t)))


def mean(values):
    return sum(values) / len(values)


def test_sigmoid_losses_match_goodfellow_closed_forms():
    d_expected = -(mean([log_sigmoid(r) for r in REAL.tolist()]) + mean([math.log(1 - 1 / (1 + math.exp(-f))) for f in FAKE.tolist()]))
    for loss in (losses.Minimax(), losses.NonSaturating()):
        assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-6)
    # Minimax G minimises E[log(1 - D(G(z)))]; non-saturating G minimises -E[log D(G(z))].
    minimax_g = mean([math.log(1 - 1 / (1 + math.exp(-f))) for f in FAKE.tolist()])
    ns_g = -mean([log_sigmoid(f) for f in FAKE.tolist()])
    assert losses.Minimax().g_loss(FAKE).item() == pytest.approx(minimax_g, rel=1e-6)
    assert losses.NonSaturating().g_loss(FAKE).item() == pytest.approx(ns_g, rel=1e-6)


def test_sigmoid_losses_are_stable_for_large_logits():
    big = torch.tensor([100.0, -100.0])
    assert torch.isfinite(losses.NonSaturating().d_loss(big, -big))
    assert losses.NonSaturating().g_loss(torch.tensor([-100.0])).item() == pytest.approx(100.0)


def test_minimax_saturates_where_non_saturating_does_not():
    fake = torch.tensor([-8.0], requires_grad=True)  # D confidently rejects the fake
    (g_minimax,) = torch.autograd.grad(losses.Minimax().g_loss(fake), fake)
    (g_ns,) = torch.autograd.grad(losses.NonSaturating().g_loss(fake), fake)
    assert abs(g_minimax.item()) < 1e-3 < abs(g_ns.item())


def test_wasserstein():
    loss = losses.Wasserstein()
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(FAKE.mean().item() - REAL.mean().item())
    assert loss.g_loss(FAKE).item() == pytest.approx(-FAKE.mean().item())


def test_hinge():
    loss = losses.Hinge()
    expected = mean([max(0, 1 - r) for r in REAL.tolist()]) + mean([max(0, 1 + f) for f in FAKE.tolist()])
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expected)
    assert loss.g_loss(FAKE).item() == pytest.approx(-FAKE.mean().item())


def test_least_squares():
    loss = losses.LeastSquares()
    expected = 0.5 * mean([(r - 1) ** 2 for r in REAL.tolist()]) + 0.5 * mean([f**2 for f in FAKE.tolist()])
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expected)
    assert loss.g_loss(FAKE).item() == pytest.approx(0.5 * mean([(f - 1) ** 2 for f in FAKE.tolist()]))


def test_sigmoid_losses_log_probabilities_others_raw_scores():
    assert losses.NonSaturating().score(torch.tensor([0.0])).item() == pytest.approx(0.5)
    assert losses.Hinge().score(torch.tensor([3.0])).item() == 3.0


def relativistic(real, fake):
    r_tilde = [r - mean(fake.tolist()) for r in real.tolist()]
    f_tilde = [f - mean(real.tolist()) for f in fake.tolist()]
    return r_tilde, f_tilde


@pytest.mark.parametrize("loss,towards_real,towards_fake", [
    (losses.RelativisticAverageBCE(), lambda t: -log_sigmoid(t), lambda t: -math.log(1 - 1 / (1 + math.exp(-t)))),
    (losses.RelativisticAverageLS(), lambda t: (t - 1) ** 2, lambda t: (t + 1) ** 2),
    (losses.RelativisticAverageHinge(), lambda t: max(0.0, 1 - t), lambda t: max(0.0, 1 + t)),
])
def test_relativistic_average_losses(loss, towards_real, towards_fake):
    r_tilde, f_tilde = relativistic(REAL, FAKE)
    d_expected = mean([towards_real(t) for t in r_tilde]) + mean([towards_fake(t) for t in f_tilde])
    g_expected = mean([towards_real(t) for t in f_tilde]) + mean([towards_fake(t) for t in r_tilde])
    assert loss.needs_real_in_g
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-6)
    assert loss.g_loss(FAKE, REAL).item() == pytest.approx(g_expected, rel=1e-6)


def test_one_and_two_sided_label_smoothing_match_cross_entropy_with_soft_targets():
    real, fake = torch.tensor([0.3, -1.2]), torch.tensor([0.5, -2.0])

    def bce(t, target):
        p = 1 / (1 + math.exp(-t))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    one_sided = losses.NonSaturating(real_label=0.9)
    expected = mean([bce(t, 0.9) for t in real.tolist()]) + mean([bce(t, 0.0) for t in fake.tolist()])
    assert one_sided.d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    two_sided = losses.NonSaturating(real_label=0.9, fake_label=0.1)
    expected = mean([bce(t, 0.9) for t in real.tolist()]) + mean([bce(t, 0.1) for t in fake.tolist()])
    assert two_sided.d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    # G's targets stay 1: smoothing is D's alone (Salimans et al. 2016)
    assert one_sided.g_loss(fake).item() == pytest.approx(losses.NonSaturating().g_loss(fake).item())


def test_label_flipping_swaps_that_fraction_of_targets():
    torch.manual_seed(0)
    loss = losses.Minimax(real_label=0.9, fake_label=0.0, flip_prob=0.2)
    real_targets = loss.d_targets(torch.zeros(100_000), real=True)
    fake_targets = loss.d_targets(torch.zeros(100_000), real=False)
    flipped_real = real_targets == 0.0
    assert torch.isclose(real_targets[~flipped_real], torch.tensor(0.9)).all()
    assert flipped_real.float().mean().item() == pytest.approx(0.2, abs=0.005)
    flipped_fake = torch.isclose(fake_targets, torch.tensor(0.9))
    assert (fake_targets[~flipped_fake] == 0.0).all()
    assert flipped_fake.float().mean().item() == pytest.approx(0.2, abs=0.005)


def bce(logit, target):  # binary cross-entropy of a logit against a (soft) target
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


@pytest.mark.parametrize("real_label,fake_label,flip_prob", [(1.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.9, 0.1, 0.0),
                                                             (0.9, 0.0, 1.0)])
def test_d_loss_is_the_cross_entropy_against_its_targets(real_label, fake_label, flip_prob):
    """flip_prob=1 swaps every target (real_label <-> fake_label); the closed form, not the shortcut for 1/0/0."""
    loss = losses.NonSaturating(real_label=real_label, fake_label=fake_label, flip_prob=flip_prob)
    real_target, fake_target = (fake_label, real_label) if flip_prob == 1.0 else (real_label, fake_label)
    expected = mean([bce(r, real_target) for r in REAL.tolist()]) + mean([bce(f, fake_target) for f in FAKE.tolist()])
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_without_flipping_no_random_numbers_are_drawn():
    """flip_prob=0 leaves the RNG where it was: smoothing alone does not shift the run's later draws."""
    state = torch.get_rng_state()
    losses.NonSaturating(real_label=0.9, flip_prob=0.0).d_loss(REAL, FAKE)
    assert torch.equal(torch.get_rng_state(), state)


def test_a_loss_carries_the_regularizers_it_is_given():
    clip = object()
    assert losses.Wasserstein(regularizers={"clip": clip}).regularizers == {"clip": clip}
    assert losses.Hinge().regularizers == {} and losses.NonSaturating(regularizers=None).regularizers == {}


def test_relativistic_pairing_compares_each_fake_with_its_own_real():
    """RpGAN (R3GAN, Huang et al. 2024): D: E_i[softplus(-(D(x_i) - D(G(z_i))))], G: E_i[softplus(-(D(G(z_i)) -
    D(x_i)))], pair by pair, not against the other batch's mean as RaGAN."""
    loss = losses.RelativisticPairing()
    pairs = list(zip(REAL.tolist(), FAKE.tolist()))
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(mean([-log_sigmoid(r - f) for r, f in pairs]), rel=1e-6)
    assert loss.g_loss(FAKE, REAL).item() == pytest.approx(mean([-log_sigmoid(f - r) for r, f in pairs]), rel=1e-6)
    assert loss.d_loss(REAL, FAKE).item() != pytest.approx(loss.d_loss(REAL, FAKE.flip(0)).item(), rel=1e-3)  # pairs
    assert loss.d_loss(REAL, FAKE).item() != pytest.approx(losses.RelativisticAverageBCE().d_loss(REAL, FAKE).item())
    assert loss.needs_real_in_g and loss.fresh_real_in_g and not losses.RelativisticAverageBCE().fresh_real_in_g


@pytest.mark.parametrize("loss,kind", [
    (losses.Minimax(), "probability"), (losses.NonSaturating(real_label=0.9), "probability"),
    (losses.LeastSquares(), "least_squares"), (losses.Hinge(), "hinge"), (losses.Wasserstein(), "critic"),
    (losses.RelativisticAverageBCE(), "critic"), (losses.RelativisticAverageLS(), "critic"),
    (losses.RelativisticAverageHinge(), "critic"), (losses.RelativisticPairing(), "critic"),
])
def test_score_kind_says_how_ds_outputs_read(loss, kind):
    """The sigmoid losses' D outputs are logits of a probability (logged as sigmoid); LSGAN's aim at targets 1/0,
    hinge's at margins +-1; Wasserstein's and the relativistic losses' have no fixed scale (only differences
    count): 'critic', which ganrun.diagnostics judges without thresholds on the level."""
    assert loss.score_kind == kind
    logits = torch.tensor([-2.0, 0.5, 3.0])
    assert torch.equal(loss.score(logits), torch.sigmoid(logits) if kind == "probability" else logits)


ALL_LOSSES = [losses.Minimax(), losses.NonSaturating(), losses.LeastSquares(), losses.Hinge(), losses.Wasserstein(),
              losses.RelativisticAverageBCE(), losses.RelativisticAverageLS(), losses.RelativisticAverageHinge(),
              losses.RelativisticPairing()]


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda loss: type(loss).__name__)
def test_g_asks_for_d_of_reals_exactly_when_its_objective_reads_them(loss):
    """needs_real_in_g: G's objective compares fakes with reals (the relativistic losses), so the G step runs D on
    a real batch; the other losses' G objectives read D(G(z)) alone (Goodfellow, Arjovsky, Lim & Ye, Mao), and an
    extra D forward on reals in every G step would cost time and advance D's spectral-norm iteration. Only RpGAN
    pairs each fake with a real of its own, drawn fresh for G's step (fresh_real_in_g); the others read none or
    D's last batch, drawing nothing more from the data."""
    reads_real = loss.g_loss(FAKE, REAL).item() != pytest.approx(loss.g_loss(FAKE, REAL * 2.0 + 1.0).item(), rel=1e-3)
    assert loss.needs_real_in_g is reads_real  # a bool: the objective and the config checks read it
    if not loss.needs_real_in_g:
        assert loss.g_loss(FAKE).item() == loss.g_loss(FAKE, REAL).item()
    assert loss.fresh_real_in_g is isinstance(loss, losses.RelativisticPairing)
