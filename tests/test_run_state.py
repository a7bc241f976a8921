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
from ganrun.cli import with_saved_overrides
from ganrun.errors import ConfigError, TrainingDivergedError, TrainingInterrupted
from ganrun.reporter import Reporter


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


def test_a_checkpoint_from_before_the_data_package_resumes(tmp_path, data_root):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=2, run_dir=run_dir)
    path = checkpoint.checkpoint_path(run_dir, 2)
    state = checkpoint.load(path)
    state["config"]["dataset"]["source"]["_target_"] = "ganrun.datasets.fashion_mnist"  # the old module path
    torch.save(state, path)
    assert checkpoint.load_for_resume(str(run_dir))[0]["config"]["dataset"]["source"]["_target_"] == \
        "ganrun.data.sources.fashion_mnist"
    assert train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=3, run_dir=run_dir).step == 3


def test_a_checkpoint_from_before_changed_defaults_is_told_how_to_continue_as_it_was_trained(tmp_path, data_root):
    """Defaults change between versions; resuming an older run must not silently switch its method: the refusal
    gives the overrides that restore it, and with them the run continues as it was trained."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "trainer.reuse_fakes=false", steps=2, run_dir=run_dir)
    path = checkpoint.checkpoint_path(run_dir, 2)
    state = checkpoint.load(path)
    del state["config"]["trainer"]["reuse_fakes"]  # not there in older versions, which drew fresh fakes
    state["config"]["optimizer"]["d"]["lr"] = 1e-3  # a default that changed since
    state["config"]["optimizer"]["d"]["betas"] = [0.1, 0.9]  # a list: one shell word, as Hydra writes lists
    state["overrides"] = []
    torch.save(state, path)
    with pytest.raises(ConfigError) as refused:
        train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=3, run_dir=run_dir)
    message = str(refused.value)
    assert "trainer.reuse_fakes: False -> True" in message and "optimizer.d.lr: 0.001 -> 0.0002" in message
    restore = shlex.split(message.split("To continue as it was trained, add: ")[1].splitlines()[0])  # as pasted
    assert sorted(restore) == ["optimizer.d.betas=[0.1,0.9]", "optimizer.d.lr=0.001", "trainer.reuse_fakes=false"]
    result = train_in_process(tmp_path, data_root, f"resume={run_dir}", *restore, steps=3, run_dir=run_dir)
    assert result.step == 3 and checkpoint.load(checkpoint.checkpoint_path(run_dir, 3))["config"]["trainer"][
        "reuse_fakes"] is False


def test_a_changed_group_is_restored_by_its_option_and_later_resumes_replay_it(tmp_path, data_root):
    """When a group's classes differ (here: trained with DiffAugment, today's default has none), the refusal
    chooses the group's option instead of naming classes: overrides with `_target_` would be refused when the
    run replays its saved overrides, so the next plain resume would be blocked."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "augment=diffaugment", "augment.diffaugment.policy=color", steps=2,
                     run_dir=run_dir)
    path = checkpoint.checkpoint_path(run_dir, 2)
    state = checkpoint.load(path)
    state["overrides"] = []  # as if DiffAugment had been the default then
    torch.save(state, path)
    with pytest.raises(ConfigError) as refused:
        train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=3, run_dir=run_dir)
    restore = shlex.split(str(refused.value).split("To continue as it was trained, add: ")[1].splitlines()[0])
    assert restore == ["augment=diffaugment", "augment.diffaugment.policy=color"]
    assert "_target_" not in str(refused.value).split("To continue")[1]
    train_in_process(tmp_path, data_root, f"resume={run_dir}", *restore, steps=3, run_dir=run_dir)
    saved = checkpoint.load(checkpoint.checkpoint_path(run_dir, 3))
    assert saved["config"]["augment"] == state["config"]["augment"]
    replayed = with_saved_overrides([f"resume={run_dir}"])  # as the CLI replays them: the trust check passes
    assert "augment=diffaugment" in replayed
    assert train_in_process(tmp_path, data_root, *replayed, steps=4, run_dir=run_dir).step == 4


def test_a_group_matching_no_single_option_is_named_to_choose_by_hand():
    saved = {"regularizer": {"r1": {"_target_": "ganrun.regularizers.R1", "weight": 10.0, "every": 1},
                             "l2": {"_target_": "ganrun.regularizers.L2WeightPenalty", "weight": 1e-4}}}
    current = {"regularizer": {}}
    assert checkpoint.groups_to_choose_by_hand(saved, current) == ["regularizer"]
    assert not any("_target_" in word for word in checkpoint.restoring_overrides(saved, current))
    assert checkpoint.group_option("regularizer", {"r1": saved["regularizer"]["r1"]}) == "r1"


@pytest.mark.parametrize("dataset", ["ring8", "mnist"])
def test_a_run_on_a_dataset_without_a_newer_option_resumes(tmp_path, data_root, dataset):
    """VALUE_BEFORE_KEY_EXISTED stands in for keys an older checkpoint lacks, not for keys a dataset never has
    (only fashion_mnist has dataset.resize): resuming a run of this very version must not be refused."""
    options = [f"dataset={dataset}", *(["model=mlp"] if dataset == "ring8" else [])]
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, *options, steps=2, run_dir=run_dir)
    assert "resize" not in checkpoint.load(checkpoint.checkpoint_path(run_dir, 2))["config"]["dataset"]
    assert train_in_process(tmp_path, data_root, *options, f"resume={run_dir}", steps=3, run_dir=run_dir).step == 3


@pytest.mark.parametrize("method", [["trainer.n_critic=2"], ["trainer.g_batch_size=24"]])
def test_an_older_run_where_reused_fakes_would_not_act_resumes_without_a_refusal(tmp_path, data_root, method):
    """trainer.reuse_fakes acts only with n_critic=1 and g_batch_size=batch_size: an older checkpoint of any other
    run (every WGAN-GP run) trained exactly as the new default trains it, so resuming it is no change."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, *method, "trainer.reuse_fakes=false", steps=2, run_dir=run_dir)
    path = checkpoint.checkpoint_path(run_dir, 2)
    state = checkpoint.load(path)
    del state["config"]["trainer"]["reuse_fakes"]  # written before the key existed
    torch.save(state, path)
    assert train_in_process(tmp_path, data_root, *method, f"resume={run_dir}", steps=3, run_dir=run_dir).step == 3
    old_n_critic_1 = {"trainer": {"n_critic": 1, "g_batch_size": None, "batch_size": 16}}
    new_n_critic_2 = {"trainer": {"n_critic": 2, "g_batch_size": None, "batch_size": 16, "reuse_fakes": True}}
    assert checkpoint.config_changes(old_n_critic_1, new_n_critic_2) == [  # acts in the old run: both changes shown
        "trainer.n_critic: 1 -> 2", "trainer.reuse_fakes: False -> True"]


@pytest.mark.parametrize("content", [{"weight": torch.zeros(2)}, torch.zeros(3), [1, 2]])
def test_resuming_a_file_that_is_no_ganrun_checkpoint_is_a_clear_error(tmp_path, caplog, content):
    """A weights file (torch.save(G.state_dict())) or any other tensor file given as resume=: a ConfigError saying
    so, not a KeyError / AttributeError from the resume code."""
    path = tmp_path / "weights.pt"
    torch.save(content, path)
    with pytest.raises(ConfigError, match=r"none of the checkpoints could be loaded \(1 tried\)"):
        checkpoint.load_for_resume(str(path))
    assert f"Skipping checkpoint {path}: it is not a ganrun checkpoint" in caplog.text
    with pytest.raises(ConfigError):
        checkpoint.load_generator(str(path))


SAVED_VALUES = {"list": [0.1, 0.9], "nested": [[1, 2], {"a": "x y"}], "comma": "color,translation", "space": "my run",
                "quote": 'say "hi"', "apostrophe": "it's", "backslash": "C:\\data\\", "digits": "1", "number_like": "1e-3",
                "word_like": "null", "empty": "", "shell": "$HOME `ls` *", "unicode": "grün", "none": None,
                "float": 1e-05, "inf": float("inf"), "bool": True, "int": -3, "empty_list": []}


def test_the_overrides_that_restore_a_checkpoint_give_its_values_back_when_pasted_into_a_shell():
    """The refusal's overrides are pasted into a shell: shell words must survive quoting, and Hydra must read
    each back as the checkpoint's value (a list with spaces split into two arguments; quotes vanished)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = {"dataset": {"resize": "resize"}, "trainer": {"reuse_fakes": True}, "x": SAVED_VALUES}
    current = {**saved, "x": {key: 0 for key in SAVED_VALUES}}
    line = " ".join(checkpoint.restoring_overrides(saved, current))
    words = shlex.split(line)
    parser = OverridesParser.create()
    read_back = {}
    for word in words:
        override = parser.parse_override(word)
        read_back[override.key_or_group.split(".", 1)[1]] = override.value()
    assert read_back == SAVED_VALUES


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
