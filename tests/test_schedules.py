"""Schedules against their definitions: the lr group's warm-up, the decay's closed form, its final value and what
happens past the end (it stays at the final value), the lr a resumed, stretched schedule restarts from; the general
mechanism against R3GAN's cosine_decay_with_warmup, each schedulable key against the object it must reach, values
in the step and in TensorBoard, exact resume, and the refusals before training."""

import math

import pytest
import torch
from helpers import scalars, straight_and_split, train_in_process

from ganrun import checkpoint
from ganrun.augment import InstanceNoise
from ganrun.ema import GeneratorEMA
from ganrun.errors import ConfigError
from ganrun.losses import NonSaturating
from ganrun.models import mlp
from ganrun.regularizers import R1
from ganrun.schedules import Schedule, budget_steps, lr_factor, setter_for, value_at, warmup_then_decay

W, T = 4, 24  # warm-up steps, total steps


def factor(step, decay, final=0.1, start=0.01, warmup=W, total=T):
    return lr_factor(step, decay, warmup, total, final, start)


def linear(step, final=0.1):  # 1 at the end of warm-up, `final` at T, a straight line between
    return 1.0 + (final - 1.0) * (step - W) / (T - W)


def cosine(step, final=0.1):  # SGDR (Loshchilov & Hutter 2017), eq. 5 with eta_max = 1, eta_min = final
    return final + 0.5 * (1.0 - final) * (1.0 + math.cos(math.pi * (step - W) / (T - W)))


@pytest.mark.parametrize("decay", ["constant", "linear", "cosine"])
def test_warmup_rises_linearly_from_the_start_factor_to_one(decay):
    assert [factor(s, decay, start=0.2) for s in range(W + 1)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.mark.parametrize("decay,closed_form", [("constant", lambda s: 1.0), ("linear", linear), ("cosine", cosine)])
def test_decay_follows_its_closed_form_and_ends_at_the_final_factor(decay, closed_form):
    assert [factor(s, decay) for s in range(W, T + 1)] == pytest.approx([closed_form(s) for s in range(W, T + 1)])
    assert factor(T, decay) == pytest.approx(1.0 if decay == "constant" else 0.1)


@pytest.mark.parametrize("decay", ["constant", "linear", "cosine"])
def test_past_the_end_the_factor_stays_at_its_final_value(decay):
    final = factor(T, decay)
    assert [factor(s, decay) for s in (T + 1, T + 7, 10 * T)] == pytest.approx([final] * 3)


def test_cosine_is_halfway_at_the_midpoint_and_linear_decays_at_a_constant_rate():
    mid = W + (T - W) // 2
    assert factor(mid, "cosine", final=0.2) == pytest.approx(0.6)
    steps = [factor(s, "linear", final=0.0) - factor(s + 1, "linear", final=0.0) for s in range(W, T)]
    assert steps == pytest.approx([1.0 / (T - W)] * (T - W))


def test_without_warmup_the_first_step_trains_at_the_full_rate():
    assert factor(0, "linear", warmup=0) == 1.0 and factor(0, "cosine", warmup=0) == 1.0
    assert factor(T, "linear", warmup=0, final=0.0) == 0.0


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_a_decay_of_one_step_ends_at_its_final_value_after_that_step(decay):
    assert factor(W, decay, total=W + 1, final=0.25) == 1.0
    assert factor(W + 1, decay, total=W + 1, final=0.25) == pytest.approx(0.25)


def _optimizer(lr=2.0):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def test_the_optimizers_lr_follows_the_factor_step_by_step():
    optimizer = _optimizer()
    scheduler = warmup_then_decay(optimizer, "linear", warmup_steps=W, total_steps=T, final_factor=0.1,
                                  warmup_start_factor=0.05)
    seen = []
    for step in range(T + 3):
        scheduler.apply(step)
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
    assert seen == pytest.approx([2.0 * factor(s, "linear", start=0.05) for s in range(T + 3)])


def test_a_resumed_stretched_schedule_sets_the_new_schedules_lr_over_the_saved_one():
    """The lr is the configured lr times the schedule at the step: a resume that stretched the schedule (a longer
    trainer.steps) trains on it, whatever lr the restored optimizer state holds (0 at the end of the short one)."""
    optimizer = _optimizer()
    short = warmup_then_decay(optimizer, "linear", total_steps=10, final_factor=0.0)
    assert short.apply(10) == 0.0 and optimizer.param_groups[0]["lr"] == 0.0  # the end of the short schedule
    stretched_optimizer = _optimizer()
    stretched = warmup_then_decay(stretched_optimizer, "linear", total_steps=20, final_factor=0.0)
    stretched_optimizer.param_groups[0]["lr"] = 0.0  # as the restored optimizer state holds it
    stretched.apply(10)
    assert stretched_optimizer.param_groups[0]["lr"] == pytest.approx(2.0 * 0.5)  # step 10 of 20


def test_warmup_starts_at_one_percent_of_the_lr_by_default():
    """warmup_start_factor is not in the YAML: its default, 0.01, is the documented ramp start."""
    optimizer = _optimizer()
    warmup_then_decay(optimizer, "linear", warmup_steps=W, total_steps=T)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.0 * 0.01)


# ---- the general schedule: any scalar, steps or kimg
def r3gan_cosine_decay_with_warmup(cur_nimg, base_value, total_nimg, final_value, warmup_value, warmup_nimg):
    """R3GAN's training_loop.cosine_decay_with_warmup (brownvc/R3GAN), hold_base_value_nimg=0, without numpy."""
    decay = 0.5 * (1 + math.cos(math.pi * (cur_nimg - warmup_nimg) / float(total_nimg - warmup_nimg)))
    value = base_value + (1 - decay) * (final_value - base_value)
    if warmup_nimg > 0 and cur_nimg < warmup_nimg:
        value = (base_value - warmup_value) / warmup_nimg * cur_nimg + warmup_value
    return final_value if cur_nimg > total_nimg else value


@pytest.mark.parametrize("kimg", [0, 100, 499.9, 500, 3000, 12345.6, 20000, 25000])
def test_cosine_with_warmup_is_r3gans_schedule(kimg):
    """R3GAN's CIFAR-10 gamma, 0.05 -> 0.005 over 20M images, here with a 500 kimg warm-up from 0.01."""
    reference = r3gan_cosine_decay_with_warmup(kimg * 1000, 0.05, 20_000_000, 0.005, 0.01, 500_000)
    ours = Schedule("cosine", 0.05, 0.005, 20_000, warmup=500, warmup_start=0.01, unit="kimg").at(7, kimg)
    assert ours == pytest.approx(reference, rel=1e-12, abs=1e-15)


def test_a_schedule_reads_its_own_unit_only():
    by_steps = Schedule("linear", 0.9, 0.99, 10, unit="steps")
    by_kimg = Schedule("linear", 0.9, 0.99, 10, unit="kimg")
    assert by_steps.at(5, 1.0) == pytest.approx(0.945) and by_steps.at(5, 9.0) == by_steps.at(5, 1.0)
    assert by_kimg.at(1, 2.5) == pytest.approx(0.9225) and by_kimg.at(900, 2.5) == by_kimg.at(1, 2.5)
    assert Schedule("constant", 0.3, 7.0, 10).at(8, 0) == 0.3  # constant: the start, whatever the end
    assert Schedule("linear", 0.0, 0.55, 0.4, unit="kimg").at(0, 0.1) == pytest.approx(0.1375)  # below 1 kimg


def _objects(ema=True):
    G = mlp.Generator(z_dim=4, resolution=2, channels=1, hidden=[3])
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=3e-4, betas=(0.0, 0.9))
    r1 = R1(weight=0.05)
    return {"optimizer.g": opt_g, "optimizer.d": opt_d, "loss": NonSaturating(), "regularizers": {"r1": r1},
            "augment": {"instance_noise": InstanceNoise(std=0.1)},
            "ema": GeneratorEMA(G, 4, images_per_step=8) if ema else None}


@pytest.mark.parametrize("key,read", [
    ("optimizer.g.lr", lambda o: o["optimizer.g"].param_groups[0]["lr"]),
    ("optimizer.d.betas.1", lambda o: o["optimizer.d"].param_groups[0]["betas"][1]),
    ("optimizer.g.betas.0", lambda o: o["optimizer.g"].param_groups[0]["betas"][0]),
    ("regularizer.r1.weight", lambda o: o["regularizers"]["r1"].weight),
    ("loss.regularizers.r1.weight", lambda o: o["regularizers"]["r1"].weight),
    ("loss.flip_prob", lambda o: o["loss"].flip_prob),
    ("augment.instance_noise.std", lambda o: o["augment"]["instance_noise"].std),
    ("ema.half_life_kimg", lambda o: o["ema"].half_life_kimg),
])
def test_a_key_sets_the_scalar_of_the_object_its_config_node_built(key, read):
    objects = _objects()
    untouched = (objects["optimizer.d"].param_groups[0]["betas"][0], objects["optimizer.g"].param_groups[0]["eps"])
    setter_for(key, objects, "schedules.x.key")(0.125)
    assert read(objects) == 0.125
    assert (objects["optimizer.d"].param_groups[0]["betas"][0], objects["optimizer.g"].param_groups[0]["eps"]) == \
        (0.125 if key == "optimizer.d.betas.0" else untouched[0], untouched[1])


def test_a_probability_kept_as_a_device_scalar_is_filled_in_place():
    """An augmentation may keep `p` as a 0-d tensor (adaptive updates on the device): set without a host sync."""
    pipe = InstanceNoise(std=0.1)
    pipe.p = torch.zeros(())
    setter_for("augment.ada.p", {"augment": {"ada": pipe}}, "schedules.p.key")(0.375)
    assert isinstance(pipe.p, torch.Tensor) and pipe.p.item() == 0.375


@pytest.mark.parametrize("key,ema,message", [
    ("regularizer.r1.every", True, "R1 holds 1, not a real number"),
    ("augment.instance_noise.sigma_max", True, "InstanceNoise has no such attribute"),
    ("regularizer.gp.weight", True, "the run has no regularizer gp"),
    ("optimizer.g.betas.2", True, "no real-valued hyperparameter"),
    ("optimizer.g.amsgrad", True, "no real-valued hyperparameter"),
    ("ema.half_life_kimg", False, "the EMA is off"),
    ("augment.diffaugment.p", True, "not a schedulable scalar of this run"),
    ("model.z_dim", True, "not a schedulable scalar of this run"),
    ("optimizer.g.betas", True, "no real-valued hyperparameter"),  # the pair, not one of its numbers
    ("optimizer.g.lr.x", True, "no real-valued hyperparameter"),  # a fourth part names an index or nothing
    ("optimizer.g.lr.0", True, "no real-valued hyperparameter"),  # an index into a single number
    ("ema.regularizers.r1.weight", True, "not a schedulable scalar of this run"),
    ("loss.g.lr", True, "not a schedulable scalar of this run"),  # "g"/"d" name optimizers only under optimizer.
])
def test_a_key_without_a_real_scalar_behind_it_is_refused_naming_the_schedule(key, ema, message):
    with pytest.raises(ConfigError) as refused:
        setter_for(key, _objects(ema), "schedules.x.key")
    assert str(refused.value).startswith(f"schedules.x.key={key}") and message in str(refused.value)


# ---- in a run: the values reach the step, TensorBoard shows them, resume is exact
GAMMA = "+schedules.gamma={key:regularizer.r1.weight,kind:linear,start:1.0,end:0.2,length:6}"
BETA2 = "+schedules.beta2={key:optimizer.d.betas.1,kind:cosine,start:0.9,end:0.99,unit:kimg,length:0.08}"
HALF_LIFE = "+schedules.ema={key:ema.half_life_kimg,kind:linear,start:0,end:0.05,unit:kimg,length:0.096}"


def test_scheduled_values_reach_the_step_and_tensorboard(tmp_path, data_root, monkeypatch):
    weights, betas = [], []
    d_term = R1.d_term
    monkeypatch.setattr(R1, "d_term", lambda self, ctx: weights.append(self.weight) or d_term(self, ctx))
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: betas.append(self.param_groups[0]["betas"])
                        or step(self, *a, **k))
    train_in_process(tmp_path, data_root, "regularizer=r1", "ema.enabled=true", "ema.bn_batches=1", GAMMA, BETA2,
                     HALF_LIFE, steps=5, run_dir=tmp_path / "run")
    gamma = [value_at(s, "linear", 1.0, 0.2, 6) for s in range(6)]  # 16 images per step
    beta2 = [value_at(s * 16 / 1000, "cosine", 0.9, 0.99, 0.08) for s in range(6)]
    assert weights == pytest.approx(gamma[:5], rel=1e-12)
    assert [b[1] for b in betas[0::2]] == pytest.approx(beta2[:5], rel=1e-12)  # D's steps (G's keep 0.999)
    assert all(b == (0.5, 0.999) for b in betas[1::2])
    for tag, expected in (("schedule/gamma", gamma), ("schedule/beta2", beta2)):
        logged = scalars(tmp_path / "run", tag)
        assert sorted(logged) == [1, 2, 3, 4, 5]
        assert [logged[s] for s in range(1, 6)] == pytest.approx(expected[1:], rel=1e-6)  # float32 in the file
    half_life = scalars(tmp_path / "run", "schedule/ema")
    assert [half_life[s] for s in (1, 3)] == pytest.approx([0.05 / 6, 0.05 / 2], rel=1e-6)


def test_a_resumed_scheduled_run_ends_where_an_uninterrupted_one_ends(tmp_path, data_root):
    straight, split = straight_and_split(tmp_path, data_root, "regularizer=r1", "ema.enabled=true",
                                         "ema.bn_batches=1", GAMMA, BETA2, HALF_LIFE)
    a, b = (checkpoint.load(checkpoint.checkpoint_path(run, 6)) for run in (straight, split))
    assert a["images"] == b["images"] == 6 * 16
    for part in ("generator", "discriminator", "ema"):
        for name, tensor in a[part].items():
            if tensor.is_floating_point():
                torch.testing.assert_close(b[part][name], tensor, rtol=1e-5, atol=1e-6, msg=f"{part}.{name}")
    for tag in ("schedule/gamma", "schedule/beta2", "schedule/ema"):
        assert scalars(split, tag) == pytest.approx(scalars(straight, tag), rel=1e-6)


@pytest.mark.parametrize("overrides,message", [
    (["regularizer=r1", "+schedules.lazy={key:regularizer.r1.every,kind:linear,start:1,end:4}"],
     "schedules.lazy.key=regularizer.r1.every: R1 holds 1, not a real number"),
    (["scheduler=cosine", "+schedules.lr={key:optimizer.g.lr,kind:linear,start:1e-3,end:0}"],
     "schedules.lr.key=optimizer.g.lr is scheduled twice: the scheduler group"),
    (["ema.enabled=false", HALF_LIFE], "schedules.ema.key=ema.half_life_kimg: the EMA is off"),
    (["+schedules.x={key:optimizer.g.lr,kind:linear,start:1,end:0,warmup:5}"],
     "schedules.x.warmup=5.0 must be below the schedule's length (2 steps)"),
])
def test_a_schedule_this_run_cannot_follow_is_refused_before_training(tmp_path, data_root, overrides, message):
    with pytest.raises(ConfigError) as refused:
        train_in_process(tmp_path, data_root, *overrides)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_a_user_lr_schedule_replaces_the_constant_scheduler_group(tmp_path, data_root, monkeypatch):
    used = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: used.append(self.param_groups[0]["lr"])
                        or step(self, *a, **k))
    train_in_process(tmp_path, data_root, "+schedules.lr={key:optimizer.g.lr,kind:linear,start:4e-4,end:1e-4}",
                     steps=3)  # no length: the whole run, 1e-4 after its last step
    assert used[1::2] == pytest.approx([4e-4, 3e-4, 2e-4]) and used[0::2] == pytest.approx([2e-4] * 3)


# ---- budgets in images
@pytest.mark.parametrize("kimg,batch,n_critic,world,steps", [
    (1, 64, 2, 1, 8), (1, 64, 2, 2, 4), (0.064, 64, 1, 1, 1), (0.065, 64, 1, 1, 2), (25000, 32, 1, 8, 97657)])
def test_a_budget_in_kimg_is_the_fewest_steps_that_show_d_that_many_images(kimg, batch, n_critic, world, steps):
    trainer = {"steps": 5000, "kimg": kimg, "batch_size": batch, "n_critic": n_critic}
    assert budget_steps(trainer, world) == steps
    assert budget_steps({**trainer, "kimg": None}, world) == 5000


def test_a_kimg_run_trains_its_images_logs_kimg_and_sec_per_kimg_and_resumes_to_a_raised_budget(tmp_path, data_root):
    run_dir = tmp_path / "run"
    result = train_in_process(tmp_path, data_root, "trainer.kimg=0.04", steps=None, run_dir=run_dir)
    assert result.step == 3  # 40 images at 16 per step: 2.5, rounded up
    kimg, ips, spk = (scalars(run_dir, t) for t in ("progress/kimg", "throughput/images_per_sec",
                                                     "throughput/sec_per_kimg"))
    assert kimg == pytest.approx({1: 0.016, 2: 0.032, 3: 0.048})
    assert all(spk[s] * ips[s] == pytest.approx(1000, rel=1e-4) for s in (1, 2, 3))
    result = train_in_process(tmp_path, data_root, f"resume={run_dir}", "trainer.kimg=0.08", steps=None,
                              run_dir=run_dir)
    state = checkpoint.load(checkpoint.checkpoint_path(run_dir, 5))
    assert result.step == 5 and state["images"] == 80 and state["config"]["trainer"]["steps"] == 5
    assert scalars(run_dir, "progress/kimg")[5] == pytest.approx(0.08)


def test_steps_and_kimg_on_one_command_line_are_refused(tmp_path, data_root):
    with pytest.raises(ConfigError, match="trainer.steps=2 and trainer.kimg=0.04: give one budget"):
        train_in_process(tmp_path, data_root, "trainer.kimg=0.04", steps=2)


def test_a_resume_may_not_change_a_schedule_unless_forced(tmp_path, data_root):
    """A schedule is part of the experiment (not a resumable key): changing one on resume is refused, naming it."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "regularizer=r1", GAMMA, steps=1, run_dir=run_dir)
    changed = GAMMA.replace("end:0.2", "end:0.5")
    with pytest.raises(ConfigError, match=r"schedules.gamma.end: 0.2 -> 0.5"):
        train_in_process(tmp_path, data_root, "regularizer=r1", changed, f"resume={run_dir}", steps=2,
                         run_dir=run_dir)
    train_in_process(tmp_path, data_root, "regularizer=r1", GAMMA, f"resume={run_dir}", steps=2, run_dir=run_dir)


# ---- defaults, refusals and the `schedules:` mapping, without a run
def test_the_defaults_are_the_schemas():
    """A schedule entry's optional fields default in ganrun.schema (no warm-up, from 0, in steps); the Schedule
    dataclass and value_at, the public spellings of the same schedule, default alike. The scheduler group's
    function defaults to what every conf/scheduler option sets (no warm-up, to 0): the constant lr."""
    import dataclasses
    import inspect
    from pathlib import Path

    from omegaconf import OmegaConf

    from ganrun.schema import ScheduleSchema

    schema = OmegaConf.structured(ScheduleSchema)
    fields = {f.name: f.default for f in dataclasses.fields(Schedule)}
    signature = inspect.signature(value_at).parameters
    assert (fields["warmup"], fields["warmup_start"], fields["unit"]) == \
        (schema.warmup, schema.warmup_start, schema.unit) == (0.0, 0.0, "steps")
    assert (signature["warmup"].default, signature["warmup_start"].default) == (schema.warmup, schema.warmup_start)
    assert Schedule("linear", 2.0, 4.0, 10).at(5, 0.5) == value_at(5, "linear", 2.0, 4.0, 10) == 3.0
    defaults = inspect.signature(warmup_then_decay).parameters
    for option in ("constant", "linear", "cosine"):
        yaml = OmegaConf.load(Path(__file__).parents[1] / "conf" / "scheduler" / f"{option}.yaml")
        assert (defaults["warmup_steps"].default, defaults["final_factor"].default) == \
            (yaml.warmup_steps, yaml.final_factor)
    assert defaults["decay"].default == "constant"


def test_a_warmup_ramps_from_its_start_and_meets_the_decay_at_its_end():
    """Linear from warmup_start at 0 to start at `warmup`, continuous there, for steps and kimg alike."""
    for unit, at in (("steps", lambda p: (p, 0.0)), ("kimg", lambda p: (0, p))):
        schedule = Schedule("cosine", 2.0, 0.5, 10.0, warmup=4.0, warmup_start=0.4, unit=unit)
        assert [schedule.at(*at(p)) for p in (0, 1, 2, 3, 4)] == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0])
        assert schedule.at(*at(7)) == pytest.approx(1.25) and schedule.at(*at(10)) == pytest.approx(0.5)


def test_an_unset_attribute_may_be_scheduled_and_adas_adaptive_p_may_not():
    """A float or unset (None) scalar is schedulable; an object may refuse one of its scalars with its reason
    (ADA's p while the adaptive rule tunes it), before the run starts."""
    from types import SimpleNamespace

    from ganrun.ada import ADA

    unset = SimpleNamespace(std=None)
    setter_for("augment.noise.std", {"augment": {"noise": unset}}, "schedules.s.key")(0.25)
    assert unset.std == 0.25
    with pytest.raises(ConfigError, match="schedules.p.key=augment.ada.p: the adaptive rule tunes p"):
        setter_for("augment.ada.p", {"augment": {"ada": ADA("bgc", target=0.6)}}, "schedules.p.key")
    fixed = ADA("bgc", target=None)
    setter_for("augment.ada.p", {"augment": {"ada": fixed}}, "schedules.p.key")(0.5)
    assert fixed.p.item() == 0.5


def _lr_groups(objects, kind="constant", warmup=0):
    return [warmup_then_decay(objects[f"optimizer.{who}"], kind, warmup_steps=warmup, total_steps=10)
            for who in ("g", "d")]


def test_a_user_schedule_of_ds_lr_replaces_ds_constant_group_only():
    """optimizer.d.lr in `schedules:` takes D's lr over from the scheduler group (constant, no warm-up); G's lr
    stays the group's."""
    from omegaconf import OmegaConf

    from ganrun.schedules import build_schedules

    objects = _objects()
    groups = _lr_groups(objects)
    cfg = OmegaConf.create({"schedules": {"dlr": {"key": "optimizer.d.lr", "kind": "linear", "start": 1e-3,
                                                   "end": 0.0}}})
    built = build_schedules(cfg, objects, groups, budget_steps=10, budget_kimg=0.16)
    built.apply(5, 0.08)
    assert objects["optimizer.d"].param_groups[0]["lr"] == pytest.approx(5e-4)
    assert objects["optimizer.g"].param_groups[0]["lr"] == pytest.approx(2e-4)
    assert built.logged() == {"schedule/dlr": pytest.approx(5e-4)}
    with pytest.raises(ConfigError, match="optimizer.d.lr is scheduled twice"):
        build_schedules(cfg, _objects(), _lr_groups(_objects(), "linear"), budget_steps=10, budget_kimg=0.16)


@pytest.mark.parametrize("warmup,refused", [(0.0, False), (3.0, False), (5.9, False), (6.0, True), (7.0, True)])
def test_a_warmup_must_end_before_the_schedule_does(warmup, refused):
    """The warm-up is part of `length`: one as long as the schedule leaves nothing to decay and is refused."""
    from omegaconf import OmegaConf

    from ganrun.schedules import build_schedules

    cfg = OmegaConf.create({"schedules": {"gamma": {"key": "regularizer.r1.weight", "kind": "linear", "start": 1.0,
                                                     "end": 0.2, "length": 6, "warmup": warmup}}})
    objects = _objects()
    if refused:
        with pytest.raises(ConfigError, match=f"schedules.gamma.warmup={warmup} must be below the schedule's length"):
            build_schedules(cfg, objects, [], budget_steps=10, budget_kimg=0.16)
        return
    built = build_schedules(cfg, objects, [], budget_steps=10, budget_kimg=0.16)
    built.apply(6, 0.0)
    assert objects["regularizers"]["r1"].weight == pytest.approx(0.2)
