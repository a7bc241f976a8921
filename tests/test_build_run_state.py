"""config -> objects: what `build_run_state` makes of each config value it reads itself (the values it hands on
are the objects' own tests'). Built in process from the composed config, without the loop, so each test is quick."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from helpers import compose_tiny
from omegaconf import OmegaConf, open_dict

from ganrun import distributed, schedules
from ganrun.data.stream import load_dataset
from ganrun.run_state import build_run_state
from ganrun.validate import validate


def build(cfg, edit=None):
    """What train() does before the loop: the budget in images, validate, load the data, resolve, build; `edit(cfg)`
    first changes the composed config as an older checkpoint's config would differ (validated as train() does)."""
    if edit is not None:
        with open_dict(cfg):
            edit(cfg)
    schedules.apply_kimg_budget(cfg, [], distributed.world_size())
    validate(cfg)
    source, info = load_dataset(cfg.dataset, cfg.metrics.cache_dir)
    return build_run_state(cfg, OmegaConf.to_container(cfg, resolve=True), info, source, torch.device("cpu"), [])


@pytest.fixture
def config(data_root, tmp_path):
    return lambda *overrides: compose_tiny(data_root, f"metrics.cache_dir={tmp_path / 'cache'}", *overrides)[0]


@pytest.fixture
def ranks(monkeypatch):
    """Pretend to be rank `r` of `world` processes; records the models handed to `prepare_models` (DDP's set-up)."""
    prepared = []

    def as_rank(r: int, world: int):
        monkeypatch.setattr(distributed, "rank", lambda: r)
        monkeypatch.setattr(distributed, "world_size", lambda: world)
        monkeypatch.setattr(distributed, "prepare_models",
                            lambda G, D, sync_bn, device: prepared.append((G, D)) or (G, D))
        return prepared

    return as_rank


def test_images_per_step_counts_every_critic_batch_of_every_rank(config, ranks):
    assert build(config("trainer.batch_size=4", "trainer.n_critic=3")).images_per_step == 4 * 3
    ranks(1, 2)
    state = build(config("trainer.batch_size=4", "trainer.n_critic=3", "trainer.steps=10", "ema.enabled=true",
                         "ema.half_life_kimg=0.06"))
    assert state.images_per_step == 4 * 3 * 2
    # the EMA's half-life in images is per G step: beta = 0.5 ** (images per step / half-life images)
    assert state.ema.beta_at(1) == pytest.approx(0.5 ** (24 / 60), rel=1e-6)


def test_only_a_run_of_several_ranks_wraps_and_syncs_its_models(config, ranks):
    prepared = ranks(0, 1)
    build(config())
    assert prepared == []
    prepared = ranks(0, 2)
    state = build(config())
    assert prepared == [(state.G, state.D)]


def test_ranks_start_from_the_same_weights_and_then_draw_their_own_noise(config, ranks):
    ranks(0, 2)
    first = build(config("seed=5"))
    first_draw = torch.randn(16)
    ranks(1, 2)
    second = build(config("seed=5"))
    second_draw = torch.randn(16)
    for a, b in ((first.G, second.G), (first.D, second.D)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert not torch.allclose(first_draw, second_draw)


def test_channels_last_puts_every_conv_weight_of_both_networks_in_that_layout(config):
    def conv_weights(flag):
        state = build(config(f"trainer.channels_last={str(flag).lower()}"))
        return [m.weight for net in (state.G, state.D) for m in net.modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]

    assert all(w.is_contiguous() for w in conv_weights(False))
    last = conv_weights(True)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in last)
    assert not all(w.is_contiguous() for w in last)  # (a weight with one channel or 1x1 taps is both)


def test_the_chosen_regularizer_joins_the_losss_own_terms(config):
    from ganrun.regularizers import R1, GradientPenalty

    terms = build(config("loss=wgan_gp", "regularizer=r1", "regularizer.r1.weight=3.0")).objective.terms
    assert isinstance(terms["gp"], GradientPenalty) and isinstance(terms["r1"], R1)
    assert terms["r1"].weight == 3.0
    assert set(build(config("loss=wgan_gp")).objective.terms) == {"gp"}


def test_the_task_is_the_configured_one_and_a_config_without_one_generates(config):
    from ganrun.tasks import Generate, PairedTask

    paired = build(config("task=denoise", "model=pix2pix", "model.generator.width=8"))
    assert isinstance(paired.task, PairedTask) and paired.task.name == "denoise"
    older = build(config(), edit=lambda cfg: cfg.pop("task"))  # a checkpoint's config from before tasks
    assert isinstance(older.task, Generate)


def test_acgan_weight_weighs_the_class_term_and_an_older_config_takes_the_shipped_value(config):
    import ganrun.conf

    shipped = yaml.safe_load((Path(ganrun.conf.__path__[0]) / "model" / "dcgan.yaml").read_text())["acgan_weight"]
    acgan = ("dataset=mnist", "model.conditioning=acgan")
    assert build(config(*acgan, "model.acgan_weight=0.3")).objective.terms["acgan_class"].weight == 0.3
    older = build(config(*acgan), edit=lambda cfg: cfg.model.pop("acgan_weight"))
    assert older.objective.terms["acgan_class"].weight == shipped


@pytest.mark.parametrize("budget, run_kimg", [("trainer.steps=10", 10 * 4 * 3 / 1000),
                                              ("trainer.kimg=0.1", 0.1)])  # 9 steps of 12, yet 100 images
def test_a_kimg_schedule_without_a_length_spans_the_runs_budget_in_images(config, budget, run_kimg):
    weight = "+schedules.gamma={key:regularizer.r1.weight,kind:linear,start:1.0,end:0.0,unit:kimg}"
    state = build(config("regularizer=r1", "trainer.batch_size=4", "trainer.n_critic=3", budget, weight))
    for fraction in (0.25, 0.5):
        state.schedules.apply(1, fraction * run_kimg)
        assert state.objective.terms["r1"].weight == pytest.approx(1.0 - fraction, abs=1e-9)


def test_a_fresh_run_state_holds_every_scheduled_value_at_step_0_and_0_kimg(config):
    ramps = ["+schedules.by_steps={key:regularizer.r1.weight,kind:linear,start:2.0,end:0.0,unit:steps,length:4}",
             "+schedules.by_kimg={key:loss.flip_prob,kind:linear,start:0.3,end:0.0,unit:kimg,length:0.5}"]
    state = build(config("regularizer=r1", "loss=ns", *ramps))
    assert state.objective.terms["r1"].weight == 2.0
    assert state.objective.loss.flip_prob == pytest.approx(0.3, abs=1e-9)
    assert state.schedules.logged() == pytest.approx({"schedule/by_steps": 2.0, "schedule/by_kimg": 0.3})


@pytest.mark.parametrize("data, num_samples, rows", [((), 4, 4), (("dataset=ring8", "model=mlp"), 4, 2000),
                                                      (("dataset=ring8", "model=mlp"), 2100, 2100)])
def test_the_fixed_noise_is_the_grids_images_or_at_least_2000_scatter_points(config, data, num_samples, rows):
    cfg = config(*data, f"trainer.num_samples={num_samples}")
    assert build(cfg).fixed_noise.shape == (rows, cfg.model.z_dim)


@pytest.mark.parametrize("amp", [False, True])
def test_the_objective_computes_in_the_dtype_trainer_amp_selects(config, monkeypatch, amp):
    """On a GPU with bfloat16, trainer.amp=true gives bfloat16 (ganrun.runtime.amp_dtype, tested in
    test_gpu_paths.py); here that answer is given on the CPU, whose autocast does bfloat16 too."""
    from ganrun import run_state

    asked = []
    monkeypatch.setattr(run_state, "amp_dtype",
                        lambda device, on: asked.append(on) or (torch.bfloat16 if on else None))
    state = build(config(f"trainer.amp={str(amp).lower()}"))
    assert asked == [amp]
    with state.objective.autocast:
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == (torch.bfloat16 if amp else torch.float32)
