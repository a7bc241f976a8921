"""The run state and the reporter under faults: exact resume everywhere, no lost or foreign work, clear stops."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import time

import pytest
import torch
from helpers import scalars, straight_and_split, train_in_process, write_mnist_like

from ganrun import checkpoint
from ganrun.errors import ConfigError, TrainingDivergedError, TrainingInterrupted
from ganrun.outputs import load_generator
from ganrun.reporter import Reporter


# ---- RunState's own definitions, on a minimal state (fast; first, so a broken definition stops the file early)
class _Stream:
    def __init__(self):
        self.position = 0

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


class _Objective(_Stream):
    def load_state_dict(self, state):  # older checkpoints: {} (the objective's terms start afresh)
        self.position = state.get("position", 0)


class _Schedules:
    def __init__(self):
        self.applied = []

    def apply(self, step, kimg):
        self.applied.append((step, kimg))


class _RecordingEMA:
    def __init__(self):
        self.updates = []

    def update(self, G, step, images):
        self.updates.append((step, images))


def _minimal_state(ema=None, seed=0, hidden=(3,), **fields):
    from ganrun.models import mlp
    from ganrun.run_state import RunState

    torch.manual_seed(seed)
    G, D = mlp.Generator(z_dim=2, resolution=2, channels=1, hidden=list(hidden)), torch.nn.Linear(4, 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=4e-3, betas=(0.5, 0.9))
    return RunState(G, D, opt_g, opt_d, _Schedules(), ema, _Stream(), _Objective(), torch.randn(3, 2), {"seed": seed},
                    **fields)


def _cpu_rng():
    from ganrun.runtime import rng_state

    return rng_state(torch.device("cpu"))


def test_a_new_run_state_is_a_fresh_run_and_saves_as_one():
    from ganrun.diagnostics import TrainingDiagnostics
    from ganrun.tasks import Generate
    from ganrun.window import LogWindow

    state = _minimal_state()
    assert (state.step, state.images, state.kimg, state.images_per_step) == (0, 0, 0.0, 1)
    assert state.best == {"FID": None, "step": None} and state.last_scalars == {}
    assert state.overrides == [] and state.forced_changes == [] and state.run_id == "" and state.data_fingerprint == ""
    assert isinstance(state.window, LogWindow) and isinstance(state.diagnostics, TrainingDiagnostics)
    assert isinstance(state.task, Generate)
    other = _minimal_state()
    assert other.overrides is not state.overrides and other.forced_changes is not state.forced_changes
    saved = state.state_dict([_cpu_rng()])
    assert (saved["step"], saved["images"], saved["overrides"], saved["run_id"], saved["forced_changes"],
            saved["ema"], saved["best"]) == (0, 0, [], "", [], None, {"FID": None, "step": None})
    other.load_state_dict(saved)
    assert (other.step, other.images, other.best) == (0, 0, {"FID": None, "step": None})


def test_advance_counts_the_step_and_its_images_after_the_ema_update():
    """The EMA update of step n has seen the images of the steps before it; the schedules then take the values of
    step n at the images counted so far (kimg = images / 1000)."""
    ema = _RecordingEMA()
    state = _minimal_state(ema=ema, images_per_step=64)
    for _ in range(3):
        state.advance()
    assert (state.step, state.images) == (3, 192) and state.kimg == pytest.approx(0.192, rel=1e-12)
    assert ema.updates == [(1, 0), (2, 64), (3, 128)]
    assert state.schedules.applied == [(1, pytest.approx(0.064)), (2, pytest.approx(0.128)), (3, pytest.approx(0.192))]
    plain = _minimal_state()  # no EMA; one image per step unless told
    for _ in range(2):
        plain.advance()
    assert (plain.step, plain.images) == (2, 2)
    plain.images = 2500
    assert plain.kimg == pytest.approx(2.5, rel=1e-12)


def test_the_best_fid_is_the_strictly_lowest_one_seen():
    state = _minimal_state()
    improved = []
    for step, fid in enumerate([None, 30.0, 31.0, 30.0, 12.5, None], start=1):
        state.step = step
        improved.append(state.improves_best(fid))
    assert improved == [False, True, False, False, True, False]  # none, first, worse, equal, better, none
    assert state.best == {"FID": 12.5, "step": 5}


def test_forced_changes_accumulate_with_the_step_they_were_made_at():
    state = _minimal_state()
    state.step = 3
    state.record_forced_changes(["trainer.steps: 10 -> 20"])
    state.step = 9
    state.record_forced_changes(None)
    state.record_forced_changes(["loss.flip_prob: 0.0 -> 0.1", "seed: 0 -> 1"])
    assert state.forced_changes == ["step 3: trainer.steps: 10 -> 20", "step 9: loss.flip_prob: 0.0 -> 0.1",
                                    "step 9: seed: 0 -> 1"]


def test_a_checkpoint_puts_every_part_of_the_state_back():
    from ganrun.ema import GeneratorEMA

    state = _minimal_state(images_per_step=8)
    state.ema = GeneratorEMA(state.G, 2, decay=0.5, rampup=False, bn="raw")
    for _ in range(3):
        with torch.no_grad():
            for p in state.G.parameters():
                p.add_(0.25)
        state.advance()
    state.improves_best(4.5)
    state.record_forced_changes(["seed: 0 -> 1"])
    state.run_id, state.last_scalars, state.stream.position, state.objective.position = "abc", {"loss/D": 0.5}, 7, 2
    state.window.add("loss/D", torch.tensor(1.5))
    state.window.steps = 1
    state.diagnostics.logs = 4
    torch.manual_seed(11)
    rank0 = _cpu_rng()
    expected_draw = torch.rand(4)
    torch.manual_seed(22)
    saved = state.state_dict([rank0, _cpu_rng()])  # rank 1's RNG is another stream

    resumed = _minimal_state(seed=5, images_per_step=8)
    resumed.ema = GeneratorEMA(resumed.G, 2, decay=0.5, rampup=False, bn="raw")
    resumed.load_state_dict(saved)  # rank 0 by default
    assert torch.equal(torch.rand(4), expected_draw)
    assert (resumed.step, resumed.images, resumed.best, resumed.run_id) == (3, 24, {"FID": 4.5, "step": 3}, "abc")
    assert resumed.last_scalars == {"loss/D": 0.5} and resumed.forced_changes == ["step 3: seed: 0 -> 1"]
    assert (resumed.stream.position, resumed.objective.position, resumed.diagnostics.logs) == (7, 2, 4)
    assert resumed.window.steps == 1 and torch.equal(resumed.window.sums["loss/D"], torch.tensor(1.5))
    assert resumed.schedules.applied[-1] == (3, pytest.approx(0.024))
    assert torch.equal(resumed.fixed_noise, state.fixed_noise)
    for ours, theirs in [(resumed.G, state.G), (resumed.D, state.D), (resumed.ema.average, state.ema.average)]:
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert resumed.opt_g.state_dict()["state"].keys() == state.opt_g.state_dict()["state"].keys()


def test_an_older_checkpoint_loads_with_todays_fresh_values(caplog):
    """A checkpoint from before images, best, run ids, log windows, scalars, forced changes, objectives and the
    failure-mode detector: images are counted by steps, the rest starts afresh, the EMA keeps its own average."""
    from ganrun.ema import GeneratorEMA

    old = _minimal_state(seed=1).state_dict([_cpu_rng()])
    old = {k: old[k] for k in ("generator", "discriminator", "opt_g", "opt_d", "data", "rng", "fixed_noise", "step")}
    old["step"] = 5
    state = _minimal_state(images_per_step=64, run_id="mine")
    state.ema = GeneratorEMA(state.G, 2)
    held = [p.clone() for p in state.ema.average.parameters()]
    state.fixed_noise = torch.zeros(3, 2, device="meta")  # a run's noise lives on its device (meta: not the cpu)
    with caplog.at_level("WARNING"):
        state.load_state_dict(old)
    assert not caplog.records
    assert (state.step, state.images, state.run_id, state.best) == (5, 320, "mine", {"FID": None, "step": None})
    assert state.schedules.applied[-1] == (5, pytest.approx(0.32))
    assert (state.last_scalars, state.forced_changes, state.diagnostics.logs) == ({}, [], 0)
    assert state.fixed_noise.device.type == "meta"
    assert all(torch.equal(a, b) for a, b in zip(state.ema.average.parameters(), held))
    without_ema = _minimal_state()  # and a run without an EMA ignores a checkpoint's average
    without_ema.load_state_dict({**old, "ema": state.ema.state_dict()})
    assert without_ema.ema is None


def test_an_unreadable_detector_state_starts_the_detector_afresh_with_a_warning(caplog):
    saved = _minimal_state().state_dict([_cpu_rng()])
    saved["diagnostics"] = {"logs": 3}  # no episodes, streaks...
    state = _minimal_state()
    with caplog.at_level("WARNING"):
        state.load_state_dict(saved)
    assert "failure-mode detector state is unreadable" in caplog.text and state.diagnostics.logs == 0


def test_a_checkpoint_of_another_architecture_is_refused_with_torchs_first_line():
    saved = _minimal_state(hidden=(5,)).state_dict([_cpu_rng()])
    with pytest.raises(ConfigError, match=r"generator does not fit the configured network \(Error\(s\) in loading "
                                          r"state_dict for Generator: \.\.\.\)"):
        _minimal_state().load_state_dict(saved)


def test_save_refuses_non_finite_weights_and_passes_on_a_failed_write(tmp_path, monkeypatch):
    from ganrun.errors import StorageError

    state = _minimal_state(run_id="r1")
    state.step = 4
    path = tmp_path / "checkpoints" / "step_00000004.pt"
    with torch.no_grad():
        next(state.G.parameters())[0, 0] = float("inf")
    with pytest.raises(TrainingDivergedError, match="generator's weights became non-finite by step 4. Training "
                                                    "stopped; no checkpoint was written before that"):
        state.save(path, tmp_path, keep=2)
    with torch.no_grad():
        next(state.G.parameters())[0, 0] = 0.5
    torch.manual_seed(3)
    state.save(path, tmp_path, keep=2)
    expected_draw = torch.rand(3)  # the stream a resume from this checkpoint goes on with
    resumed = _minimal_state(seed=9)
    resumed.load_state_dict(checkpoint.load(path))
    assert resumed.step == 4 and torch.equal(torch.rand(3), expected_draw)
    monkeypatch.setattr(checkpoint, "save_atomic", lambda *a: (_ for _ in ()).throw(StorageError("disk full")))
    with pytest.raises(StorageError, match="disk full"):
        state.save(path, tmp_path, keep=2)


def _trained_adam(params, **hyper):
    optimizer = torch.optim.Adam(params, **hyper)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    return optimizer


def test_restore_optimizer_takes_the_files_moments_and_keeps_the_configured_hyperparameters(caplog):
    from ganrun.run_state import restore_optimizer

    saved = _trained_adam([torch.zeros(3, requires_grad=True)], lr=7e-4, betas=(0.5, 0.999)).state_dict()
    saved["param_groups"][0]["initial_lr"] = 7e-4  # what LambdaLR added to checkpoints before schedules.py
    fresh = torch.optim.Adam([torch.zeros(3, requires_grad=True)], lr=1e-3, betas=(0.0, 0.99))
    with caplog.at_level("WARNING"):
        restore_optimizer(fresh, saved, "opt_g")
    assert not caplog.records
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], saved["state"][0]["exp_avg"])
    assert fresh.param_groups[0]["betas"] == (0.0, 0.99)  # the config's, not the file's
    assert fresh.param_groups[0]["lr"] == 7e-4  # the file's until the schedules set it


@pytest.mark.parametrize("saved", ["none", "sgd", "more_parameters"])
def test_restore_optimizer_starts_fresh_from_a_state_it_cannot_take(saved, caplog):
    from ganrun.run_state import restore_optimizer

    if saved == "sgd":
        other = torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1, momentum=0.9)
        saved_state = other.state_dict()
    elif saved == "more_parameters":
        saved_state = _trained_adam([torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)],
                                    lr=1e-3, betas=(0.0, 0.99)).state_dict()
    else:
        saved_state = None
    fresh = torch.optim.Adam([torch.zeros(3, requires_grad=True)], lr=1e-3, betas=(0.0, 0.99))
    with caplog.at_level("WARNING"):
        restore_optimizer(fresh, saved_state, "opt_d")
    assert "Optimizer state opt_d not restored" in caplog.text
    assert fresh.state_dict()["state"] == {} and fresh.param_groups[0]["betas"] == (0.0, 0.99)


def final_state(run_dir):
    return checkpoint.load(checkpoint.step_checkpoints(run_dir)[0])


def assert_same_weights(a, b):
    for part in ("generator", "discriminator"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def test_resume_between_log_steps_logs_what_an_uninterrupted_run_logs(tmp_path, data_root):
    straight, split = straight_and_split(tmp_path, data_root, "trainer.log_every=2")  # checkpoint at 3, logs at 2/4/6
    for tag in ("loss/D", "loss/G", "scores/D(x)"):
        assert scalars(straight, tag) == scalars(split, tag) and set(scalars(split, tag)) == {2, 4, 6}
    # The failure-mode detector reading those curves is resumed too: it has seen the same three log steps.
    detector = final_state(split)["diagnostics"]
    assert detector == final_state(straight)["diagnostics"] and detector["logs"] == 3


def test_streaming_dataset_resumes_exactly(tmp_path, data_root):
    straight, split = straight_and_split(tmp_path, data_root, "dataset.in_memory=false")
    assert_same_weights(final_state(straight), final_state(split))


def test_metrics_never_move_the_training_rng(tmp_path, data_root, monkeypatch):
    from ganrun.metrics import report

    def hungry_evaluator(*args, **kwargs):  # a classifier trained / statistics computed on a cold cache
        torch.rand(100)
        return object()

    def hungry_evaluation(evaluator, G, z_dim, num_samples, seed):
        torch.randn(100)
        return {"extractor": "stub", "metrics": {"FID": float(torch.rand(1))}, "protocol": {"n_generated": 1}}

    monkeypatch.setattr(report, "make_evaluator", hungry_evaluator)
    monkeypatch.setattr(report, "evaluate_generator", hungry_evaluation)
    train_in_process(tmp_path, data_root, "metrics.every=1", "metrics.final_num_samples=10", steps=3,
                     run_dir=tmp_path / "with")
    train_in_process(tmp_path, data_root, steps=3, run_dir=tmp_path / "without")
    assert_same_weights(final_state(tmp_path / "with"), final_state(tmp_path / "without"))
    assert scalars(tmp_path / "with", "loss/D") == scalars(tmp_path / "without", "loss/D")


def test_resuming_a_finished_run_keeps_its_losses_in_metrics_json(tmp_path, data_root):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    before = json.loads((run_dir / "metrics.json").read_text())
    result = train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=2, run_dir=run_dir)
    after = json.loads((run_dir / "metrics.json").read_text())
    assert before["losses"] and after["losses"] == before["losses"] and result.step == 2


def test_nan_before_the_first_checkpoint_says_none_was_written(tmp_path, data_root):
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written before that"):
        train_in_process(tmp_path, data_root, "loss._target_=faulty_losses.NaNAfter", "+loss.calls=2", steps=5)
    assert checkpoint.step_checkpoints(tmp_path / "run") == []


def test_nan_after_a_checkpoint_names_it(tmp_path, data_root):
    with pytest.raises(TrainingDivergedError, match="the last good checkpoint is .*step_00000002.pt"):
        train_in_process(tmp_path, data_root, "loss._target_=faulty_losses.NaNAfter", "+loss.calls=4",
                         "trainer.ckpt_every=2", steps=6)


def test_a_foreign_checkpoint_in_a_run_dir_is_not_adopted(tmp_path, data_root):
    mine, other = tmp_path / "mine", tmp_path / "other"
    train_in_process(tmp_path, data_root, steps=2, run_dir=mine)
    train_in_process(tmp_path, data_root, steps=2, run_dir=other)
    config_before = (mine / "config.yaml").read_text()
    shutil.copy(checkpoint.checkpoint_path(other, 2), checkpoint.checkpoint_path(mine, 9))
    with pytest.raises(ConfigError, match="belongs to another run"):
        train_in_process(tmp_path, data_root, f"resume={mine}", steps=12, run_dir=mine)
    assert (mine / "config.yaml").read_text() == config_before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_final_evaluation_stops_with_a_message(tmp_path, data_root, monkeypatch, signum):
    def slow_final_evaluation(self, overrides):
        os.kill(os.getpid(), signum)
        time.sleep(5)

    monkeypatch.setattr(Reporter, "finish", slow_final_evaluation)
    with pytest.raises(TrainingInterrupted, match="during the final evaluation; the checkpoint at step 2 is saved"):
        train_in_process(tmp_path, data_root, steps=2)
    assert checkpoint.step_checkpoints(tmp_path / "run")[0].name == "step_00000002.pt"


def test_resume_force_into_another_optimizer_starts_its_state_fresh(tmp_path, data_root, caplog):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "optimizer=sgd", "optimizer.g.momentum=0.9", "optimizer.d.momentum=0.9",
                     steps=2, run_dir=run_dir)
    result = train_in_process(tmp_path, data_root, "optimizer=adam", f"resume={run_dir}", "resume_force=true",
                              steps=4, run_dir=run_dir)
    assert result.step == 4 and "the checkpoint's is of another optimizer" in caplog.text


def test_g_batch_size_sets_the_fakes_per_generator_step(tmp_path, data_root, monkeypatch):
    from ganrun.objective import GANObjective

    sizes = []
    g_loss = GANObjective.g_loss
    monkeypatch.setattr(GANObjective, "g_loss", lambda self, n, *a: sizes.append(n) or g_loss(self, n, *a))
    train_in_process(tmp_path, data_root, "trainer.g_batch_size=24", steps=2)
    assert sizes == [24, 24]
    with pytest.raises(ConfigError, match="trainer.g_batch_size=0 must be >= 1"):
        train_in_process(tmp_path, data_root, "trainer.g_batch_size=0", steps=2)


def test_resume_on_changed_data_is_refused_unless_forced(tmp_path, data_root, caplog):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    write_mnist_like(data_root / "FashionMNIST" / "raw", seed=9)  # same files, other pixels
    with pytest.raises(ConfigError, match="the training data changed since the checkpoint"):
        train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=3, run_dir=run_dir)
    result = train_in_process(tmp_path, data_root, f"resume={run_dir}", "resume_force=true", steps=3, run_dir=run_dir)
    assert result.step == 3 and "Continuing on the new data" in caplog.text


def edit_checkpoint(run_dir, step, edit):
    """Rewrite a run's checkpoint as a hand-edited or crafted file would be (torch.save, plain data)."""
    path = checkpoint.checkpoint_path(run_dir, step)
    state = checkpoint.load(path)
    edit(state)
    torch.save(state, path)
    return path


def test_resume_continues_the_saved_experiment_whatever_the_defaults_are(tmp_path, data_root):
    """Nothing is replayed: a plain `resume=` trains the checkpoint's values, even where today's defaults (or the
    saved overrides) say otherwise."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "optimizer.d.lr=1e-3", "augment=diffaugment", steps=2, run_dir=run_dir)

    def forget_the_command_line(state):
        state["overrides"] = []  # the experiment lives in the config alone
        state["config"]["optimizer"]["g"]["betas"] = [0.1, 0.9]  # as if a default had changed since
    edit_checkpoint(run_dir, 2, forget_the_command_line)
    result = train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=3, run_dir=run_dir)
    saved = final_state(run_dir)["config"]
    assert result.step == 3 and saved["optimizer"]["d"]["lr"] == 1e-3 and saved["optimizer"]["g"]["betas"] == [0.1, 0.9]
    assert saved["augment"]["diffaugment"]["_target_"] == "ganrun.augment.DiffAugment"


@pytest.mark.parametrize("override, key", [("optimizer.d.lr=1e-3", "optimizer.d.lr: 0.0002 -> 0.001"),
                                           ("loss=hinge", "loss._target_: 'ganrun.losses.NonSaturating' -> "
                                                          "'ganrun.losses.Hinge'"),
                                           ("regularizer=r1", "regularizer.r1._target_: '<absent>' -> 'ganrun.regularizers.R1'"),
                                           ("model.generator.width=16", "model.generator.width: 8 -> 16")])
def test_changing_the_experiment_on_resume_is_refused_naming_the_keys_unless_forced(tmp_path, data_root, override,
                                                                                   key):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    with pytest.raises(ConfigError, match="these overrides change it") as refused:
        train_in_process(tmp_path, data_root, f"resume={run_dir}", override, steps=3, run_dir=run_dir)
    assert key in str(refused.value)


def test_a_forced_change_is_applied_and_recorded_in_the_run(tmp_path, data_root, caplog):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    train_in_process(tmp_path, data_root, f"resume={run_dir}", "optimizer.d.lr=1e-3", "resume_force=true", steps=3,
                     run_dir=run_dir)
    state = final_state(run_dir)
    assert state["config"]["optimizer"]["d"]["lr"] == 1e-3
    assert state["forced_changes"] == ["step 2: optimizer.d.lr: 0.0002 -> 0.001"]
    assert "Resuming with a changed experiment (resume_force=true)" in caplog.text


def test_resumable_keys_change_and_derived_lengths_follow_unless_set_by_hand(tmp_path, data_root):
    """trainer.steps may change; lengths the YAML derives from it (scheduler.total_steps) follow it, one set by hand
    (instance-noise annealing over 1 step) stays; keys not given keep the checkpoint's values."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "scheduler=linear", "augment=instance_noise",
                     "augment.instance_noise.anneal_steps=1", "trainer.sample_every=7", steps=2, run_dir=run_dir)
    train_in_process(tmp_path, data_root, f"resume={run_dir}", "trainer.ckpt_every=5", steps=4, run_dir=run_dir)
    config = final_state(run_dir)["config"]
    assert config["trainer"]["steps"] == 4 and config["scheduler"]["total_steps"] == 4
    assert config["augment"]["instance_noise"]["anneal_steps"] == 1
    assert config["trainer"]["ckpt_every"] == 5 and config["trainer"]["sample_every"] == 7


def test_a_key_the_checkpoint_predates_takes_todays_default_with_a_warning(tmp_path, data_root, caplog):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    edit_checkpoint(run_dir, 2, lambda state: state["config"]["trainer"].pop("reuse_fakes"))
    assert train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=3, run_dir=run_dir).step == 3
    assert "predates the keys trainer.reuse_fakes" in caplog.text


@pytest.mark.parametrize("dataset", ["ring8", "mnist"])
def test_a_run_on_another_dataset_resumes_without_naming_it(tmp_path, data_root, dataset):
    """The experiment comes from the checkpoint: `resume=` alone continues a run whose groups differ from today's
    defaults (here the dataset and model)."""
    options = [f"dataset={dataset}", *(["model=mlp"] if dataset == "ring8" else [])]
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, *options, steps=2, run_dir=run_dir)
    again = options if dataset == "ring8" else []  # the helper's tiny widths are DCGAN keys: an MLP has none
    assert train_in_process(tmp_path, data_root, *again, f"resume={run_dir}", steps=3, run_dir=run_dir).step == 3
    assert final_state(run_dir)["config"]["dataset"]["name"] == dataset


def test_a_preset_cannot_be_applied_to_a_resumed_run(tmp_path, data_root):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    with pytest.raises(ConfigError, match="experiment=... cannot change a resumed run"):
        train_in_process(tmp_path, data_root, f"resume={run_dir}", "experiment=dcgan", steps=3, run_dir=run_dir)


def test_a_new_run_in_a_dir_holding_another_runs_checkpoints_is_refused(tmp_path, data_root):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    with pytest.raises(ConfigError, match="holds another run"):
        train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before


@pytest.mark.parametrize("content", [{"weight": torch.zeros(2)}, torch.zeros(3), [1, 2]])
def test_resuming_a_file_that_is_no_ganrun_checkpoint_is_a_clear_error(tmp_path, caplog, content):
    """A weights file (torch.save(G.state_dict())) or any other tensor file given as resume=: a ConfigError saying
    so, not a KeyError / AttributeError from the resume code."""
    path = tmp_path / "weights.pt"
    torch.save(content, path)
    with pytest.raises(ConfigError, match=r"none of the checkpoints could be loaded \(1 tried\)"):
        checkpoint.load_newest(str(path))
    assert f"Skipping checkpoint {path}: it is not a ganrun checkpoint" in caplog.text
    with pytest.raises(ConfigError):
        load_generator(str(path))


@pytest.mark.slow  # inductor compiles G and D on CPU first (tens of seconds)
def test_compiled_networks_train_like_plain_ones_and_save_plain_checkpoints(tmp_path, data_root):
    common = ("dataset=ring8", "model=mlp", "trainer.ckpt_every=2")
    plain = train_in_process(tmp_path, data_root, *common, run_dir=tmp_path / "plain")
    compiled = train_in_process(tmp_path, data_root, *common, "trainer.compile=true", run_dir=tmp_path / "compiled")
    for tag in ("loss/D", "loss/G"):
        assert compiled.scalars[tag] == pytest.approx(plain.scalars[tag], rel=1e-4)
    a = checkpoint.load(tmp_path / "plain" / "checkpoints" / "step_00000002.pt")
    b = checkpoint.load(tmp_path / "compiled" / "checkpoints" / "step_00000002.pt")
    assert a["generator"].keys() == b["generator"].keys()  # no `_orig_mod.` prefixes: loads into plain modules
