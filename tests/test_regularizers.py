"""Regularizer values and gradients on critics with a known input gradient."""

import pytest
import torch
import torch.nn as nn

from ganrun import regularizers


def linear_critic(weights):
    """D(x) = <w, x>: its input gradient is w everywhere, so ||grad|| = ||w|| exactly."""
    layer = nn.Linear(weights.numel(), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weights.view(1, -1))
    return nn.Sequential(nn.Flatten(), layer)


@pytest.mark.parametrize("norm", [0.5, 1.0, 3.0])
def test_gradient_penalty_value_and_parameter_gradient(norm):
    w = torch.tensor([3.0, 4.0]) / 5.0 * norm
    critic = linear_critic(w)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gp = regularizers.GradientPenalty(weight=10.0)
    value = gp.penalty(critic, real, fake, critic)
    assert value.item() == pytest.approx((norm - 1.0) ** 2, abs=1e-6)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||: the penalty must backpropagate into D's weights.
    (grad,) = torch.autograd.grad(value, critic[1].weight)
    assert torch.allclose(grad.view(-1), 2 * (norm - 1.0) * w / norm, atol=1e-6)


def test_one_sided_gradient_penalty_ignores_small_norms():
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    one_sided = regularizers.GradientPenalty(one_sided=True)
    assert one_sided.penalty(linear_critic(torch.tensor([0.3, 0.4])), real, fake, None).item() == 0.0
    assert one_sided.penalty(linear_critic(torch.tensor([1.2, 1.6])), real, fake, None).item() == pytest.approx(1.0)


def test_gradient_penalty_uses_interpolates_between_real_and_fake():
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return (x**2).sum(dim=1)  # grad = 2x, so the norm depends on where x_hat lies

    real, fake = torch.zeros(1000, 1), torch.ones(1000, 1)
    regularizers.GradientPenalty().penalty(critic, real, fake, None)
    x_hat = seen[0]
    assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0
    assert x_hat.mean().item() == pytest.approx(0.5, abs=0.05)  # e ~ U[0, 1]


def test_r1_is_half_squared_gradient_norm_on_reals():
    critic = linear_critic(torch.tensor([1.0, 2.0]))
    value = regularizers.R1(weight=10.0).penalty(critic, torch.randn(5, 2), None, critic)
    assert value.item() == pytest.approx(0.5 * 5.0)


def test_l2_weight_penalty_sums_squared_parameters():
    critic = linear_critic(torch.tensor([1.0, 2.0]))
    assert regularizers.L2WeightPenalty().penalty(critic, None, None, critic).item() == pytest.approx(5.0)


def test_weight_clipping_clamps_after_the_step():
    critic = linear_critic(torch.tensor([0.5, -0.003]))
    clip = regularizers.WeightClipping(clip_value=0.01)
    assert clip.penalty(critic, None, None, critic) is None
    clip.after_d_step(critic)
    assert critic[1].weight.view(-1).tolist() == pytest.approx([0.01, -0.003])




def test_r2_is_half_squared_gradient_norm_on_fakes():
    critic = linear_critic(torch.tensor([2.0, 0.0]))
    assert regularizers.R2().penalty(critic, None, torch.randn(5, 2), critic).item() == pytest.approx(2.0)


def test_dragan_penalises_near_the_real_data():
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.sum(dim=1) * 0.5  # ||grad|| = 0.5 * sqrt(2) everywhere

    real = torch.randn(2000, 2)
    value = regularizers.DRAGAN().penalty(critic, real, None, None)
    assert value.item() == pytest.approx((0.5 * 2**0.5 - 1) ** 2, rel=1e-5)
    offset = seen[0] - real
    assert offset.min() >= 0 and offset.max() <= 0.5 * real.std() + 1e-6


def test_bcr_against_a_hand_computation_with_a_deterministic_flip():
    w = torch.arange(8.0).view(1, 1, 2, 4)  # a linear critic that tells left from right
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(3, 1, 2, 4), torch.randn(3, 1, 2, 4)
    bcr = regularizers.BalancedConsistency(real_weight=10.0, fake_weight=2.0, flip_prob=1.0, translation=0.0)
    expected = sum(weight * ((x * w).flatten(1).sum(1) - (x.flip(3) * w).flatten(1).sum(1)).pow(2).mean()
                   for weight, x in ((10.0, real), (2.0, fake)))
    assert bcr.penalty(critic, real, fake, None).item() == pytest.approx(expected.item(), rel=1e-5)


def test_bcr_vanishes_for_a_critic_blind_to_flips_and_shifts():
    images = torch.zeros(16, 3, 16, 16)
    images[:, :, 6:10, 6:10] = torch.rand(16, 3, 4, 4)  # content away from the borders: shifts keep it whole
    critic = lambda x: x.flatten(1).sum(1)  # noqa: E731
    assert regularizers.BalancedConsistency().penalty(critic, images, images, None).item() == pytest.approx(0, abs=1e-8)


def test_bcr_on_toy_points_is_refused_before_training_and_penalties_on_points_train(tmp_path, data_root):
    """bCR flips and translates images: on 2-D points it was an IndexError from inside the first D step."""
    from helpers import train_in_process

    from ganrun.errors import ConfigError

    toy = ("dataset=ring8", "model=mlp")
    with pytest.raises(ConfigError, match=r"regularizer=bcr \(bCR\) flips and translates images; it cannot act on "
                                          r"samples of shape \(2,\)"):
        train_in_process(tmp_path, data_root, *toy, "regularizer=bcr", run_dir=tmp_path / "bcr")
    assert not (tmp_path / "bcr" / "checkpoints").exists()
    assert train_in_process(tmp_path, data_root, *toy, "regularizer=r1", run_dir=tmp_path / "r1").step == 2


# ---- through the augmentation: D(augment(x)) differentiated w.r.t. x (stylegan2-ada, R3GAN)
W = torch.tensor([1.0, -2.0, 0.5])  # ||w||^2 = 5.25


def doubled_context(critic, d_step=0):
    """A step whose augmentation is x -> 2x: D's input gradient is w, the gradient through it 2w."""
    real, fake = torch.randn(6, 3), torch.randn(6, 3) + 1.0
    return regularizers.TermContext(critic, critic, 2 * real, 2 * fake, d_step=d_step, augment=lambda x: 2 * x,
                                    unaugmented_real=real, unaugmented_fake=fake)


@pytest.mark.parametrize("make, through, unaugmented", [
    (lambda t: regularizers.R1(weight=3.0, through_augment=t), 0.5 * 3.0 * 4 * 5.25, 0.5 * 3.0 * 5.25),
    (lambda t: regularizers.R2(weight=3.0, through_augment=t), 0.5 * 3.0 * 4 * 5.25, 0.5 * 3.0 * 5.25),
    (lambda t: regularizers.R1R2(weight=3.0, through_augment=t), 3.0 * 4 * 5.25, 3.0 * 5.25),
    (lambda t: regularizers.GradientPenalty(weight=3.0, through_augment=t), 3.0 * (2 * 5.25 ** 0.5 - 1) ** 2,
     3.0 * (5.25 ** 0.5 - 1) ** 2),
    (lambda t: regularizers.DRAGAN(weight=3.0, through_augment=t), 3.0 * (2 * 5.25 ** 0.5 - 1) ** 2,
     3.0 * (5.25 ** 0.5 - 1) ** 2),
])
def test_input_gradient_penalties_differentiate_through_the_augmentation_unless_told_not_to(make, through,
                                                                                           unaugmented):
    critic = linear_critic(W)
    ctx = doubled_context(critic)
    assert make(True).d_term(ctx).item() == pytest.approx(through, rel=1e-5)  # the default
    assert make(False).d_term(ctx).item() == pytest.approx(unaugmented, rel=1e-5)
    assert regularizers.R1().through_augment and regularizers.GradientPenalty().through_augment


@pytest.mark.parametrize("make, through, unaugmented", [
    (lambda t: regularizers.R1(weight=3.0, through_augment=t), 0.5 * 3.0 * 4 * 5.25, 0.5 * 3.0 * 5.25),
    (lambda t: regularizers.R2(weight=3.0, through_augment=t), 0.5 * 3.0 * 4 * 5.25, 0.5 * 3.0 * 5.25),
    (lambda t: regularizers.R1R2(weight=3.0, through_augment=t), 3.0 * 4 * 5.25, 3.0 * 5.25),
])
def test_zero_centred_penalties_from_the_steps_shared_forward_match_the_closed_forms(make, through, unaugmented):
    """The D step's own outputs on 2x (x and 2x marked requires_grad, TermContext.grad_inputs) give the same
    closed forms as a pass of its own; the critic is never called again."""
    critic = linear_critic(W)
    real, fake = torch.randn(6, 3).requires_grad_(True), (torch.randn(6, 3) + 1.0).requires_grad_(True)
    real_aug, fake_aug = 2 * real, 2 * fake
    grad_inputs = {("real", True): real, ("fake", True): fake, ("real", False): real_aug, ("fake", False): fake_aug}
    ctx = regularizers.TermContext(None, None, real_aug, fake_aug, augment=lambda x: 2 * x, unaugmented_real=real,
                                   unaugmented_fake=fake, real_out=critic(real_aug), fake_out=critic(fake_aug),
                                   grad_inputs=grad_inputs)
    assert make(True).d_term(ctx).item() == pytest.approx(through, rel=1e-5)
    assert make(False).d_term(ctx).item() == pytest.approx(unaugmented, rel=1e-5)


def test_penalties_through_the_augmentation_read_the_unaugmented_batches():
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.sum(dim=1)

    ctx = doubled_context(critic)
    regularizers.R1().d_term(ctx)
    regularizers.R2(through_augment=False).d_term(ctx)
    assert torch.equal(seen[0], 2 * ctx.unaugmented_real)  # augmented inside the penalty, from the raw batch
    assert torch.equal(seen[1], ctx.fake)  # off: D's own (augmented) input


def test_without_an_augmentation_both_ways_agree():
    critic = linear_critic(W)
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    ctx = regularizers.TermContext(critic, critic, real, fake)
    assert regularizers.R1(through_augment=True).d_term(ctx).item() == \
        pytest.approx(regularizers.R1(through_augment=False).d_term(ctx).item(), rel=1e-7)


def test_r1r2_is_r3gans_gamma_over_two_times_r1_plus_r2_per_sample_sums():
    """R3GAN/Trainer.py: per sample Gradient.square().sum([1,2,3]), loss (Gamma / 2) * (R1 + R2), mean over the
    batch. On a quadratic critic (gradient 2x, a different norm for every sample) reals and fakes both count."""
    def critic(x):
        return x.pow(2).flatten(1).sum(1)

    real, fake = torch.randn(5, 2, 3, 3), 3 * torch.randn(5, 2, 3, 3)
    gamma = 0.7
    expected = (gamma / 2 * ((2 * real).pow(2).sum([1, 2, 3]) + (2 * fake).pow(2).sum([1, 2, 3]))).mean()
    ctx = regularizers.TermContext(critic, nn.Linear(1, 1), real, fake)
    assert regularizers.R1R2(weight=gamma).d_term(ctx).item() == pytest.approx(expected.item(), rel=1e-5)
    r1, r2 = regularizers.R1(weight=gamma).d_term(ctx), regularizers.R2(weight=gamma).d_term(ctx)
    assert regularizers.R1R2(weight=gamma).d_term(ctx).item() == pytest.approx((r1 + r2).item(), rel=1e-6)
    assert r1.item() != pytest.approx(r2.item(), rel=0.1)


# ---- LeCam (Tseng et al. 2021)
def lecam_context(real_out, fake_out, d_step=0):
    return regularizers.TermContext(None, None, None, None, d_step=d_step, real_out=real_out, fake_out=fake_out)


def test_lecam_is_its_definition_with_debiased_moving_averages():
    """E[relu(D(x) - alpha_F)^2] + E[relu(alpha_R - D(G(z)))^2], alpha the zero-debiased EMAs (decay 0.9 here)
    of the batch means, updated before the term reads them (google/lecam-gan's StyleGAN2 code)."""
    lecam = regularizers.LeCam(weight=0.3, decay=0.9)
    outputs = [(torch.tensor([2.0, -1.0, 0.5, 3.0]), torch.tensor([-3.0, 0.0, 1.5, -0.5])),
               (torch.tensor([1.0, 0.2, -0.4, 2.2]), torch.tensor([0.5, -2.0, 0.1, -1.0])),
               (torch.tensor([0.3, 1.7, -0.9, 0.8]), torch.tensor([-0.2, 0.9, -1.4, 0.4]))]
    ema_real = ema_fake = 0.0
    for t, (real, fake) in enumerate(outputs, start=1):
        ema_real = 0.9 * ema_real + 0.1 * real.mean().item()
        ema_fake = 0.9 * ema_fake + 0.1 * fake.mean().item()
        alpha_real, alpha_fake = ema_real / (1 - 0.9 ** t), ema_fake / (1 - 0.9 ** t)
        expected = 0.3 * (mean_of([max(0.0, r - alpha_fake) ** 2 for r in real.tolist()])
                          + mean_of([max(0.0, alpha_real - f) ** 2 for f in fake.tolist()]))
        assert lecam.d_term(lecam_context(real, fake, d_step=t)).item() == pytest.approx(expected, rel=1e-5)
    assert alpha_real != pytest.approx(outputs[-1][0].mean().item(), rel=0.05)  # an average, not the last batch


def mean_of(values):
    return sum(values) / len(values)


def test_lecam_reaches_d_through_its_outputs_not_through_the_averages():
    real, fake = torch.tensor([2.0, -1.0, 0.5], requires_grad=True), torch.tensor([-3.0, 0.0, 1.5], requires_grad=True)
    lecam = regularizers.LeCam(weight=1.0, decay=0.0)  # alpha = this batch's means: R = E[relu(r - m_f)^2] + ...
    grad_real, grad_fake = torch.autograd.grad(lecam.d_term(lecam_context(real, fake)), (real, fake))
    m_real, m_fake = real.mean().item(), fake.mean().item()
    assert grad_real.tolist() == pytest.approx([2 * max(0.0, r - m_fake) / 3 for r in real.tolist()], abs=1e-6)
    assert grad_fake.tolist() == pytest.approx([-2 * max(0.0, m_real - f) / 3 for f in fake.tolist()], abs=1e-6)


def test_lecam_averages_move_on_every_d_step_even_when_the_term_is_not_due():
    lazy, every_step = regularizers.LeCam(weight=0.3, every=2), regularizers.LeCam(weight=0.3)
    off = regularizers.LeCam(weight=0.0)
    for d_step in range(3):
        real, fake = torch.randn(4) + d_step, torch.randn(4) - d_step
        terms = [reg.d_term(lecam_context(real, fake, d_step)) for reg in (lazy, every_step, off)]
        assert (terms[0] is None) is (d_step % 2 == 1) and terms[2] is None
        if terms[0] is not None:  # lazy: every x the term on its steps (Karras et al. 2020)
            assert terms[0].item() == pytest.approx(2 * terms[1].item(), rel=1e-6)
    assert torch.equal(lazy.averages, every_step.averages) and torch.equal(off.averages, every_step.averages)
    assert every_step.debias.item() == pytest.approx(1 - 0.99 ** 3)


def test_lecam_state_round_trips():
    lecam = regularizers.LeCam()
    lecam.d_term(lecam_context(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5])))
    restored = regularizers.LeCam()
    restored.load_state_dict(lecam.state_dict())
    real, fake = torch.tensor([0.3, 0.1]), torch.tensor([0.2, -0.4])
    assert restored.d_term(lecam_context(real, fake)).item() == lecam.d_term(lecam_context(real, fake)).item()


# ---- the contract: weight and laziness from the base class, the run's checks before training
class Constant(regularizers.Regularizer):
    """A plain penalty written against the bare contract: only `penalty`."""

    def penalty(self, critic, real, fake, discriminator):
        return torch.tensor(2.5)


def bare_context(**fields):
    """A context built by hand, as tests and users' terms do: only what the term reads."""
    return regularizers.TermContext(None, None, None, None, **fields)


def test_a_plain_penalty_gets_weight_and_laziness_from_the_base_class():
    """`weight * every * penalty` on one D step in `every` (Karras et al. 2020, section 3.1): the lazy term's sum
    over the steps equals the eager one's. A term given no settings is its penalty, added on every step; a context
    built by hand without `d_step` is the first D step (step 0), on which every lazy term is due."""
    assert Constant().d_term(bare_context(d_step=0)).item() == pytest.approx(2.5, rel=1e-7)
    assert Constant().d_term(bare_context(d_step=7)).item() == pytest.approx(2.5, rel=1e-7)
    lazy, eager_term = Constant(weight=0.4, every=3), Constant(weight=0.4)
    lazy_terms = [lazy.d_term(bare_context(d_step=s)) for s in range(6)]
    assert [t is None for t in lazy_terms] == [False, True, True, False, True, True]
    assert lazy_terms[0].item() == pytest.approx(0.4 * 3 * 2.5, rel=1e-6)
    assert sum(t.item() for t in lazy_terms if t is not None) == pytest.approx(
        sum(eager_term.d_term(bare_context(d_step=s)).item() for s in range(6)), rel=1e-6)
    assert Constant(every=2).d_term(bare_context()) is not None  # d_step defaults to the first step
    assert Constant(weight=0.0).d_term(bare_context()) is None  # a zero weight: never due
    assert Constant().g_term(bare_context()) is None and regularizers.Regularizer().d_term(bare_context()) is None


def test_lazy_zero_centred_penalties_scale_by_every_on_their_steps():
    """R1 every 4 (StyleGAN2's lazy R1): 4 x gamma/2 E||grad||^2 on steps 0, 4, ..., from a shared forward or its own."""
    critic = linear_critic(W)
    r1 = regularizers.R1(weight=3.0, every=4)
    real = torch.randn(6, 3).requires_grad_(True)
    shared = regularizers.TermContext(None, None, real, real, d_step=4, real_out=critic(real),
                                      grad_inputs={("real", True): real})
    assert r1.shared_inputs(4) == (("real", True),) and r1.shared_inputs(5) == ()
    assert r1.d_term(shared).item() == pytest.approx(4 * 0.5 * 3.0 * 5.25, rel=1e-5)
    own = regularizers.TermContext(critic, critic, real.detach(), real.detach(), d_step=8)
    assert r1.d_term(own).item() == pytest.approx(4 * 0.5 * 3.0 * 5.25, rel=1e-5)
    assert r1.d_term(regularizers.TermContext(critic, critic, real.detach(), real.detach(), d_step=5)) is None


def test_a_chosen_regularizer_replaces_a_carried_one_of_its_kind_and_says_so(caplog):
    import logging

    carried = {"gradient_penalty": regularizers.GradientPenalty(), "clip": regularizers.WeightClipping()}
    chosen = {"gp": regularizers.GradientPenalty(one_sided=True), "r1": regularizers.R1()}
    with caplog.at_level(logging.INFO, logger="ganrun.regularizers"):
        combined = regularizers.combine(carried, chosen)
    assert list(combined) == ["clip", "gp", "r1"] and combined["gp"] is chosen["gp"]
    assert "regularizer=gp replaces the GradientPenalty that the loss carries (loss.regularizers.gradient_penalty)" \
        in caplog.text and "r1" not in caplog.text
    assert list(carried) == ["gradient_penalty", "clip"]  # the loss's own dict is left as it was
    assert list(regularizers.combine({}, chosen)) == ["gp", "r1"]


def batchnorm_critic():
    return nn.Sequential(nn.Flatten(), nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))


def every_kind():
    """One of each regularizer, a switched-off penalty, and a term written against the bare contract."""
    import types

    return {"r1": regularizers.R1(), "l2": regularizers.L2WeightPenalty(), "bcr": regularizers.BalancedConsistency(),
            "gp": regularizers.GradientPenalty(), "lecam": regularizers.LeCam(), "clip": regularizers.WeightClipping(),
            "r2_off": regularizers.R2(weight=0.0), "bare": types.SimpleNamespace(weight=1.0),
            "dragan": regularizers.DRAGAN(), "r1r2": regularizers.R1R2(), "r2": regularizers.R2()}


def test_only_input_gradient_penalties_with_a_weight_warn_on_a_batchnorm_critic(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="ganrun.regularizers"):
        names = regularizers.warn_penalty_on_batchnorm(every_kind(), batchnorm_critic())
    assert names == ["r1", "gp", "dragan", "r1r2", "r2"]
    assert "Gradient penalty r1, gp, dragan, r1r2, r2 on a discriminator with BatchNorm" in caplog.text
    assert "model.discriminator.norm=layer" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ganrun.regularizers"):
        assert regularizers.warn_penalty_on_batchnorm(every_kind(), linear_critic(W)) == []
        assert regularizers.warn_penalty_on_batchnorm({"l2": regularizers.L2WeightPenalty()}, batchnorm_critic()) == []
    assert not caplog.text


@pytest.mark.parametrize("compile, mode, refused", [
    (True, "reduce-overhead", True), (True, "max-autotune", True), (True, "default", False),
    (True, "max-autotune-no-cudagraphs", False), (False, "reduce-overhead", False)])
def test_cuda_graph_compile_modes_are_refused_only_with_input_gradient_penalties(compile, mode, refused):
    import types

    from ganrun.errors import ConfigError

    trainer = types.SimpleNamespace(compile=compile, compile_mode=mode)
    if refused:
        with pytest.raises(ConfigError, match=rf"trainer.compile_mode={mode} replays CUDA graphs, which ganrun does "
                                              r"not support with the input-gradient penalty r1, gp, dragan, r1r2, r2:"):
            regularizers.refuse_cuda_graphs_with_penalties(every_kind(), trainer)
    else:
        regularizers.refuse_cuda_graphs_with_penalties(every_kind(), trainer)
    without = {k: v for k, v in every_kind().items() if k not in ("r1", "gp", "dragan", "r1r2", "r2")}
    regularizers.refuse_cuda_graphs_with_penalties(without, trainer)  # nothing to refuse


@pytest.mark.parametrize("name", ["r1", "r2", "r1r2", "gp", "dragan", "bcr", "lecam", "l2", "clip"])
def test_a_regularizer_built_without_settings_is_its_shipped_config(name):
    """One class per conf/regularizer/NAME.yaml: the class's defaults are that file's values (loss=wgan_gp's
    GradientPenalty gives only its weight, so the others act there); a hand-built term is the documented one."""
    from pathlib import Path

    import hydra.utils
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "conf" / "regularizer" /
                                                     f"{name}.yaml")[name])
    built = hydra.utils.get_class(settings.pop("_target_"))()
    assert settings and {key: getattr(built, key) for key in settings} == settings


def test_gradient_penalty_interpolates_each_real_fake_pair_with_one_weight_per_sample():
    """x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per sample (Gulrajani et al. 2017, Algorithm 1): each x_hat lies on
    the segment from its fake to its real, the same e in every coordinate; e spreads over [0, 1]."""
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.sum(dim=1)

    torch.manual_seed(0)
    real, fake = 3 * torch.randn(500, 2) + 1.0, torch.randn(500, 2) - 2.0
    regularizers.GradientPenalty().penalty(critic, real, fake, None)
    e = (seen[0] - fake) / (real - fake)  # per coordinate: the same e for both if x_hat is on the segment
    assert torch.allclose(e[:, 0], e[:, 1], atol=1e-4)
    assert e.min() >= -1e-5 and e.max() <= 1 + 1e-5 and e[:, 0].mean().item() == pytest.approx(0.5, abs=0.05)


def test_dragan_perturbs_by_spread_times_the_datas_std():
    """x_hat = x + a * spread * std(x) * U[0, 1] (Kodali et al. 2017, with a ~ U[0, 1] per sample): on data of
    std 3 the offsets fill [0, spread * std], mean spread * std / 4; `spread` sets their scale."""
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.sum(dim=1)

    torch.manual_seed(0)
    real = 3 * torch.randn(2000, 2) + 1.0
    for spread in (0.5, 0.2):
        regularizers.DRAGAN(spread=spread).penalty(critic, real, None, None)
        offset, scale = seen[-1] - real, spread * real.std().item()
        assert offset.min() >= 0 and offset.max() <= scale * (1 + 1e-5) and offset.max() >= 0.9 * scale
        assert offset.mean().item() == pytest.approx(scale / 4, rel=0.1)


def test_bcr_checks_for_images_and_terms_without_a_check_pass():
    from ganrun.errors import ConfigError

    bcr = regularizers.BalancedConsistency()
    for shape in ((3, 8, 8), (1, 4, 6)):
        regularizers.check_data({"bcr": bcr, "bare": object()}, list(shape))  # C, H, W: accepted
    for shape in ((2,), (1, 8), (1, 3, 8, 8)):
        with pytest.raises(ConfigError, match=rf"regularizer=mine \(bCR\) .* shape \({shape[0]},"):
            regularizers.check_data({"r1": regularizers.R1(), "mine": bcr}, shape)


def marker_positions(bcr, n=4000, width=16):
    """Where bCR's T moves a one-pixel marker in column 7 of 1 x 16 images (flip: 7 -> 8; shifts of +-k px)."""
    x = torch.zeros(n, 1, 1, width)
    x[..., 7] = 1.0
    out = bcr.transform(x)
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(n))  # the marker stays whole (no shift pushes it off)
    return out.flatten(1).argmax(1)


def test_bcr_transform_flips_with_flip_prob_and_translates_by_up_to_translation_of_the_size():
    """T (Zhao et al. 2020): a horizontal flip with probability `flip_prob`, then a shift of up to
    round(translation * size) px either way, uniform over the shifts (ganrun.augment.translation)."""
    torch.manual_seed(0)
    for p in (0.0, 0.3, 1.0):
        flipped = (marker_positions(regularizers.BalancedConsistency(flip_prob=p, translation=0.0)) == 8).float()
        assert flipped.mean().item() == pytest.approx(p, abs=0.03)
    for ratio, reach in ((0.125, 2), (0.25, 4)):
        cols = marker_positions(regularizers.BalancedConsistency(flip_prob=0.0, translation=ratio))
        assert sorted(set(cols.tolist())) == list(range(7 - reach, 7 + reach + 1))
        assert torch.bincount(cols - (7 - reach)).float().div(len(cols)).sub(1 / (2 * reach + 1)).abs().max() < 0.03


def test_lecam_averages_move_to_the_device_of_ds_outputs():
    """The averages live on D's device (no host sync): built (or restored from a checkpoint) on the CPU, they
    follow D's outputs at the first update. The "meta" device stands in for an accelerator on any CPU."""
    restored = regularizers.LeCam()
    restored.load_state_dict({"averages": torch.tensor([0.2, -0.1]), "debias": torch.tensor(0.5)})
    for lecam in (regularizers.LeCam(), restored):
        alphas = lecam.update(torch.randn(4, device="meta"), torch.randn(4, device="meta"))
        assert alphas.device.type == lecam.averages.device.type == lecam.debias.device.type == "meta"
