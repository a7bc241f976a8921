"""EMA of G: the update rule, start step and ramp-up, BatchNorm handling, and learning-rate schedules."""

import copy

import pytest
import torch
import torch.nn as nn

from ganrun.ema import GeneratorEMA
from ganrun.models import dcgan, mlp
from ganrun.schedules import warmup_then_decay


def test_update_rule_is_an_exponential_moving_average():
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = GeneratorEMA(G, 4, decay=0.9, rampup=False)
    before = [p.detach().clone() for p in ema.average.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.update(G, step=1)  # first update: the average starts as a copy
    ema.update(G, step=2)
    for old, averaged, current in zip(before, ema.average.parameters(), G.parameters()):
        assert torch.allclose(averaged, current)  # the copy of step 1, then 0.9 * it + 0.1 * the same weights
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.update(G, step=3)
    for averaged, current in zip(ema.average.parameters(), G.parameters()):
        assert torch.allclose(averaged, 0.9 * (current - 1.0) + 0.1 * current)


def test_start_step_and_rampup():
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = GeneratorEMA(G, 4, decay=0.999, start_step=10, rampup=True)
    assert ema.beta_at(5) == 0.0 and ema.beta_at(10) == 0.0  # follows G until the start
    assert ema.beta_at(11) == pytest.approx(2 / 11)  # (1 + t) / (10 + t), t = 1
    assert ema.beta_at(10**6) == 0.999


def test_standing_statistics_fit_the_averaged_weights():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, resolution=28, channels=1, width=8)
    ema = GeneratorEMA(G, 8, decay=0.5, bn="standing", bn_batches=4, bn_batch_size=32)
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(3.0)
        G(torch.randn(64, 8))  # G's running statistics now describe other weights
    ema.update(G, 1)
    sampler = ema.generator()
    first_bn = [m for m in sampler.modules() if isinstance(m, nn.BatchNorm2d)][0]
    captured = []
    hook = sampler.net[0].register_forward_hook(lambda m, i, o: captured.append(o))
    generator = torch.Generator().manual_seed(0 + 12345)
    sampler.train()
    with torch.no_grad():
        for _ in range(4):
            sampler(torch.randn(32, 8, generator=generator))
    hook.remove()
    batch_means = torch.stack([c.mean(dim=(0, 2, 3)) for c in captured]).mean(0)
    assert torch.allclose(first_bn.running_mean, batch_means, atol=1e-5)
    raw_bn = [m for m in ema.average.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert not torch.allclose(raw_bn.running_mean, first_bn.running_mean)  # the average itself untouched


def test_batch_statistics_mode_normalises_with_the_batch_in_eval():
    G = dcgan.Generator(z_dim=8, resolution=28, channels=1, width=8)
    sampler = GeneratorEMA(G, 8, bn="batch").generator()
    assert not sampler.training
    assert all(m.running_mean is None for m in sampler.modules() if isinstance(m, nn.BatchNorm2d))
    z = torch.randn(16, 8)
    assert not torch.allclose(sampler(z)[:8], sampler(z[:8]))  # outputs depend on the batch


@pytest.mark.parametrize("decay,expected", [
    ("constant", [0.01, 0.505, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.01, 0.505, 1.0, 0.75, 0.5, 0.25]),
    ("cosine", [0.01, 0.505, 1.0, 0.8535534, 0.5, 0.1464466]),
])
def test_warmup_then_decay_schedules(decay, expected):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    scheduler = warmup_then_decay(optimizer, decay, warmup_steps=2, total_steps=6)
    seen = []
    for step in range(6):
        scheduler.apply(step)
        seen.append(optimizer.param_groups[0]["lr"] / 2.0)
        optimizer.step()
    assert seen == pytest.approx(expected)


def test_averaged_bn_mode_averages_floating_buffers_and_copies_the_counter():
    G = dcgan.Generator(z_dim=8, resolution=28, channels=1, width=8)
    ema = GeneratorEMA(G, 8, decay=0.75, rampup=False, bn="averaged")
    G(torch.randn(16, 8))  # moves G's running statistics and counters
    ema.update(G, 1)  # copy
    first = {name: b.clone() for name, b in G.named_buffers()}
    G(torch.randn(16, 8))
    ema.update(G, 2)
    for name, b in ema.average.named_buffers():
        current = dict(G.named_buffers())[name]
        if b.is_floating_point():
            assert torch.allclose(b, 0.75 * first[name] + 0.25 * current, atol=1e-6), name
        else:
            assert torch.equal(b, current), name  # num_batches_tracked follows G


def test_state_dict_resumes_the_average_exactly_and_keeps_averaged_models_layout():
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])

    def nudge_and_update(ema, step):
        with torch.no_grad():
            for p in G.parameters():
                p.add_(0.1 * step)
        ema.update(G, step)

    straight = GeneratorEMA(G, 4, decay=0.9, rampup=True)
    for step in (1, 2):
        nudge_and_update(straight, step)
    saved = straight.state_dict()
    assert "n_averaged" in saved and all(k.startswith("module.") for k in saved if k != "n_averaged")
    resumed = GeneratorEMA(mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3]), 4, decay=0.9, rampup=True)
    resumed.load_state_dict({k: v.clone() for k, v in saved.items()})
    assert resumed.updates == 2  # not 0: a resumed average is not restarted as a copy
    before = {k: v.clone() for k, v in G.state_dict().items()}
    nudge_and_update(straight, 3)
    G.load_state_dict(before)  # the resumed EMA sees the same G
    nudge_and_update(resumed, 3)
    for a, b in zip(straight.average.parameters(), resumed.average.parameters()):
        assert torch.equal(a, b)


def test_the_averaged_copy_of_a_sync_batchnorm_generator_normalises_locally():
    """trainer.sync_bn: rank 0 alone samples the EMA G (standing statistics in train mode); a SyncBatchNorm there
    would wait for the other ranks until the NCCL timeout."""
    torch.manual_seed(0)
    plain = dcgan.Generator(z_dim=8, resolution=28, channels=1, width=8)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(plain))
    ema = GeneratorEMA(synced, 8, bn="standing", bn_batches=2, bn_batch_size=8)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in ema.average.modules())
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())  # G itself keeps its SyncBatchNorm
    reference = GeneratorEMA(plain, 8, bn="standing", bn_batches=2, bn_batch_size=8)
    z = torch.randn(4, 8)
    assert torch.allclose(ema.generator()(z), reference.generator()(z), atol=1e-6)


# ---- half-life in images (stylegan2-ada's training_loop: ema_nimg = ema_kimg * 1000, optionally
# min(ema_nimg, cur_nimg * ema_rampup), ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8)))
def _half_life_ema(G, **settings):
    return GeneratorEMA(G, 4, decay=0.999, rampup=True, **settings)


def test_half_life_beta_is_stylegan2_adas_rule():
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = _half_life_ema(G, half_life_kimg=10.0, images_per_step=64)
    assert ema.beta_at(7, images=320) == pytest.approx(0.5 ** (64 / 10_000), rel=1e-12)  # decay, rampup unused
    ramped = _half_life_ema(G, half_life_kimg=10.0, half_life_rampup=0.05, images_per_step=64)
    assert ramped.beta_at(7, images=1000) == pytest.approx(0.5 ** (64 / 50), rel=1e-12)  # min(10000, 0.05 * 1000)
    assert ramped.beta_at(7, images=10**7) == pytest.approx(0.5 ** (64 / 10_000), rel=1e-12)
    assert _half_life_ema(G, half_life_kimg=0.0, images_per_step=64).beta_at(3, 640) == 0.0  # R3GAN's start: G
    assert _half_life_ema(G, half_life_kimg=10.0, start_step=5, images_per_step=64).beta_at(5, 320) == 0.0


def test_after_one_half_life_of_images_the_average_is_half_way():
    """The definition of a half-life: 100 images at 25 per step (4 updates) halve the old weights' share."""
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = _half_life_ema(G, half_life_kimg=0.1, images_per_step=25)
    ema.update(G, 1, images=0)  # the first update copies G
    old = [p.detach().clone() for p in G.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.linspace(-1.0, 3.0, p.numel()).view_as(p))
    for step in range(2, 6):
        ema.update(G, step, images=25 * (step - 1))
    for averaged, before, now in zip(ema.average.parameters(), old, G.parameters()):
        assert torch.allclose(averaged, 0.5 * before + 0.5 * now, atol=1e-6)


def test_the_half_life_is_read_at_every_update_so_a_schedule_can_move_it():
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = _half_life_ema(G, half_life_kimg=0.0, images_per_step=8)
    ema.update(G, 1)
    ema.half_life_kimg = 0.016  # what schedules.setter_for("ema.half_life_kimg") does
    ema.update(G, 2, images=8)
    assert ema.beta == pytest.approx(0.5 ** (8 / 16))


def test_the_config_keys_reach_the_average_and_null_keeps_decay():
    from hydra import compose, initialize_config_module

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        default = compose("config", overrides=["model.z_dim=4"])
        halved = compose("config", overrides=["model.z_dim=4", "ema.half_life_kimg=10", "ema.half_life_rampup=0.05"])
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    assert GeneratorEMA.from_config(G, default, images_per_step=64).beta_at(10**6, 10**9) == 0.999  # ema.decay
    ema = GeneratorEMA.from_config(G, halved, images_per_step=64)
    assert ema.beta_at(3, images=128) == pytest.approx(0.5 ** (64 / 6.4))  # ramped: 0.05 x 128 images
    assert ema.beta_at(10**6, images=10**9) == pytest.approx(0.5 ** (64 / 10_000))


# ---- the options' defaults and meanings (issue 19: every configurable value shown to act)
def test_the_constructor_defaults_are_the_shipped_configs_ema_section():
    """One class serves the config's `ema` section: a GeneratorEMA built without arguments is the shipped one."""
    import inspect

    from hydra import compose, initialize_config_module

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config")
    defaults = {name: p.default for name, p in inspect.signature(GeneratorEMA).parameters.items()
                if p.default is not inspect.Parameter.empty}
    shipped = {k: v for k, v in cfg.ema.items() if k != "enabled"}
    assert {k: defaults[k] for k in shipped} == shipped
    assert defaults["seed"] == cfg.seed


def test_without_images_per_step_the_half_life_counts_generator_steps():
    """images_per_step defaults to 1 (constructor and from_config): half_life_kimg=0.004 is a half-life of 4 steps,
    beta = 0.5 ** (1 / 4), whatever the images shown."""
    from hydra import compose, initialize_config_module

    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    assert GeneratorEMA(G, 4, half_life_kimg=0.004).beta_at(9, images=10**6) == pytest.approx(0.5 ** 0.25, rel=1e-12)
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=["model.z_dim=4", "ema.half_life_kimg=0.004"])
    assert GeneratorEMA.from_config(G, cfg).beta_at(9, images=10**6) == pytest.approx(0.5 ** 0.25, rel=1e-12)


def test_with_a_ramped_half_life_and_no_images_seen_the_average_follows_g():
    """stylegan2-ada: ema_nimg = min(ema_nimg, cur_nimg * ema_rampup), so at cur_nimg = 0 the half-life is 0 and
    beta = 0. `images` left out means none seen yet (beta_at and update)."""
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = GeneratorEMA(G, 4, half_life_kimg=10.0, half_life_rampup=0.5)  # one image per step
    assert ema.beta_at(3) == 0.0
    assert ema.beta_at(3, images=1) == pytest.approx(0.5 ** (1 / 0.5), rel=1e-12)  # half-life 0.5 images
    ema.update(G, 1)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.linspace(-2.0, 1.0, p.numel()).view_as(p))
    ema.update(G, 2)
    for averaged, current in zip(ema.average.parameters(), G.parameters(), strict=True):
        assert torch.allclose(averaged, current, rtol=0, atol=1e-7)


def test_a_new_average_is_gs_untrained_copy():
    """The average starts as a copy of G (beta 0: no past yet) that autograd never trains: its parameters take no
    gradient, and samples from it carry no graph, while G's stay trainable."""
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = GeneratorEMA(G, 4)
    assert ema.beta == 0.0
    for averaged, current in zip(ema.average.parameters(), G.parameters(), strict=True):
        assert torch.equal(averaged, current) and averaged.data_ptr() != current.data_ptr()
        assert not averaged.requires_grad and current.requires_grad
    assert not ema.generator()(torch.randn(3, 4)).requires_grad


class _Stack(nn.Module):
    def __init__(self, extra_layer=False, extra_buffer=False):
        super().__init__()
        self.first = nn.Linear(2, 3)
        self.second = nn.Linear(3, 3) if extra_layer else None
        if extra_buffer:
            self.register_buffer("counts", torch.zeros(3))


@pytest.mark.parametrize("other", [dict(extra_layer=True), dict(extra_buffer=True)], ids=["parameter", "buffer"])
def test_a_generator_of_another_shape_is_refused(other):
    """The average of one G cannot follow another: a G with one tensor more (whose others match) is refused, not
    averaged over the tensors the two share."""
    torch.manual_seed(0)
    ema = GeneratorEMA(_Stack(), 2)
    for step in (1, 2):  # the first update copies, the next averages: both refuse
        with pytest.raises((ValueError, RuntimeError)):
            ema.update(_Stack(**other), step)


def test_a_decay_of_one_holds_the_average():
    """theta_ema <- beta theta_ema + (1 - beta) theta with beta = 1: the average stays where it was. Here beta rounds
    to exactly 1.0 (a half-life of 1e20 kimg; schema: half_life_kimg >= 0, no upper bound)."""
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    ema = GeneratorEMA(G, 4, half_life_kimg=1e20, images_per_step=64)
    assert ema.beta_at(2, images=64) == 1.0
    ema.update(G, 1, images=0)  # the first update copies G
    held = [p.detach().clone() for p in ema.average.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.linspace(0.5, 2.0, p.numel()).view_as(p))
    ema.update(G, 2, images=64)
    for averaged, before in zip(ema.average.parameters(), held, strict=True):
        assert torch.equal(averaged, before)


@pytest.mark.parametrize("bn", ["raw", "averaged"])
def test_raw_and_averaged_modes_sample_with_those_running_statistics(bn):
    """bn=raw samples with raw G's current running statistics, bn=averaged with their average; neither recomputes
    them (that is bn=standing)."""
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, resolution=28, channels=1, width=8)
    ema = GeneratorEMA(G, 8, decay=0.75, rampup=False, bn=bn, bn_batches=2, bn_batch_size=8)
    G(torch.randn(16, 8))
    ema.update(G, 1)
    first = [m.running_mean.clone() for m in _norms(G)]
    G(torch.randn(16, 8) * 3 + 1)
    ema.update(G, 2)
    sampler = ema.generator()
    assert not sampler.training
    for used, old, now in zip([m.running_mean for m in _norms(sampler)], first, [m.running_mean for m in _norms(G)],
                              strict=True):
        expected = now if bn == "raw" else 0.75 * old + 0.25 * now
        assert torch.allclose(used, expected, rtol=0, atol=1e-6)


def _norms(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_standing_statistics_draw_their_noise_on_the_averages_device():
    """The noise of the standing statistics lives where the averaged G does, whatever torch's default device (a
    GPU run's average on cuda while the default stays cpu; here a cpu average under a `meta` default)."""
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, resolution=28, channels=1, width=8)
    ema = GeneratorEMA(G, 8, bn="standing", bn_batches=2, bn_batch_size=8)
    expected = [m.running_mean for m in _norms(ema.generator())]
    with torch.device("meta"):
        sampler = ema.generator()
    for used, reference in zip([m.running_mean for m in _norms(sampler)], expected, strict=True):
        assert used.device.type == "cpu" and torch.allclose(used, reference, rtol=0, atol=1e-6)
