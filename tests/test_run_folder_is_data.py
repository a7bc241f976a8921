"""A received run folder or checkpoint is data (issue 18's probes): nothing in it is resolved, instantiated beyond
ganrun's own classes, followed out of the run dir or written where it says; damaged, oversized or foreign files are
refused by name. Every crafted file is tiny and made here; a payload that ran would leave a marker file."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch
from helpers import TINY, run_ganrun, train_in_process

from ganrun import checkpoint, rundir
from ganrun.errors import ConfigError, StorageError
from ganrun.outputs import load_generator
from ganrun.rundir import RunDirLock, RunDirLocked, refuse_links
from ganrun.trust import check_saved_config

GENERATOR = {"_target_": "ganrun.models.dcgan.Generator", "z_dim": 8, "resolution": 32, "channels": 1, "width": 8}


def crafted(run_dir, config, step=1, **extra):
    """A checkpoint file as a sender could write it (loadable with weights_only=True, as real ones are)."""
    state = {"format": checkpoint.CHECKPOINT_FORMAT, "run_id": "sender", "step": step, "config": config,
             "overrides": [], "generator": {}, **extra}
    path = checkpoint.checkpoint_path(run_dir, step)
    checkpoint.save_atomic(state, path)
    return path


@pytest.mark.parametrize("value", [
    "${oc.create:{_target_: pathlib.Path.write_text, self: MARKER, data: x}}",
    "${oc.decode:'{_tar'}${oc.decode:'get_: os.system}'}",
    "${oc.env:SECRET}",
    "\\${escaped}",
])
def test_an_interpolation_in_a_saved_value_is_refused_naming_the_key(tmp_path, monkeypatch, value):
    monkeypatch.setenv("SECRET", "hunter2")
    marker = tmp_path / "pwned"
    config = {"model": {"generator": {**GENERATOR, "width": value.replace("MARKER", str(marker))}}}
    crafted(tmp_path / "run", config)
    with pytest.raises(ConfigError, match=r"refusing the saved value model\.generator\.width=") as refused:
        load_generator(str(tmp_path / "run"))
    assert "hunter2" not in str(refused.value) and not marker.exists()


def test_an_interpolation_in_a_resumed_checkpoint_is_refused_before_anything_is_built(tmp_path, data_root,
                                                                                      monkeypatch):
    monkeypatch.setenv("SECRET", "hunter2")
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=1, run_dir=run_dir)
    path = checkpoint.checkpoint_path(run_dir, 1)
    state = checkpoint.load(path)
    state["config"]["metrics"]["real_split"] = "${oc.env:SECRET}"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"refusing the saved value metrics\.real_split="):
        train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=2, run_dir=run_dir)
    assert "hunter2" not in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("key, target", [
    ("model.generator._target_", "torch.load"),
    ("dataset.source._target_", "ganrun.sweep.callbacks.SweepSummary"),  # a ganrun class, but no dataset option's
    ("loss._target_", "ganrun.models.dcgan.Generator"),
    ("optimizer.g._target_", "ganrun.checkpoint.save_atomic"),
])
def test_a_target_outside_its_groups_shipped_options_is_refused(key, target):
    config = {"model": {"generator": dict(GENERATOR)}}
    group, *path = key.split(".")
    node = config.setdefault(group, {})
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node["_target_"] = target
    with pytest.raises(ConfigError, match=f"refusing to build {key}='{target}'"):
        check_saved_config(config, "x.pt")


def test_trusted_targets_are_exact_names_never_prefixes(monkeypatch):
    config = {"model": {"generator": {"_target_": "mymodels.torch.load"}}}
    monkeypatch.setenv("GANRUN_TRUSTED_TARGETS", "mymodels.,mymodels")
    with pytest.raises(ConfigError, match="exact name"):
        check_saved_config(config, "x.pt")
    monkeypatch.setenv("GANRUN_TRUSTED_TARGETS", "other.Thing, mymodels.torch.load")
    check_saved_config(config, "x.pt")


def test_non_plain_values_and_keys_are_refused():
    with pytest.raises(ConfigError, match="plain names"):
        check_saved_config({"model": {1: 2}}, "x.pt")
    with pytest.raises(ConfigError, match="not plain data"):
        check_saved_config({"model": {"w": torch.zeros(1)}}, "x.pt")


def test_companion_commands_never_download_into_a_folder_the_checkpoint_names(tmp_path, monkeypatch):
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "my cache"))
    G = torch.nn.Module()
    run_dir = tmp_path / "run"
    train_state = {"generator": {}}
    config = {"model": {"generator": dict(GENERATOR)}, "dataset": {"name": "fashion_mnist", "source": {
        "_target_": "ganrun.data.sources.fashion_mnist", "root": str(tmp_path / "victim"), "train": True,
        "download": True}}, "metrics": {"cache_dir": str(tmp_path / "victim cache")}}
    crafted(run_dir, config, **train_state)
    monkeypatch.setattr("ganrun.validate.validate", lambda cfg: None)
    monkeypatch.setattr("ganrun.config.build", lambda node: G)
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, state: None)
    _, cfg, _, _ = load_generator(str(run_dir))
    assert cfg.dataset.source.download is False and cfg.metrics.cache_dir == str(tmp_path / "my cache")


def test_a_checkpoint_with_one_flipped_byte_is_skipped_for_the_older_intact_one(tmp_path, caplog):
    older = crafted(tmp_path / "run", {"seed": 1}, step=1, weights=torch.arange(64.0))
    newer = crafted(tmp_path / "run", {"seed": 2}, step=2, weights=torch.arange(64.0))
    entry = next(e for e in zipfile.ZipFile(newer).infolist() if "/data/" in e.filename)
    data = bytearray(newer.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    data[entry.header_offset + 30 + name_length + extra_length + 5] ^= 0x01  # a byte of the tensor's data
    newer.write_bytes(data)
    state, found = checkpoint.load_newest(str(tmp_path / "run"))
    assert found == older and state["config"] == {"seed": 1}
    assert "the checksum of its entry" in caplog.text and str(newer) in caplog.text


def test_a_compressed_entry_cannot_make_a_small_file_allocate_much(tmp_path):
    """A deflated run of zeros is tiny on disk and huge in memory: torch.save never compresses, so any
    compressed entry is refused before torch reads the file."""
    plain = crafted(tmp_path / "run", {"seed": 0}, weights=torch.zeros(1 << 18))
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for entry in source.infolist():
            out.writestr(entry.filename, source.read(entry))
    assert bomb.stat().st_size < plain.stat().st_size / 20
    with pytest.raises(checkpoint.DamagedFile, match="compressed"):
        checkpoint.load_data(bomb)
    with pytest.raises(ConfigError, match="compressed"):
        checkpoint.load(bomb)


@pytest.mark.parametrize("edit, message", [({"format": 99}, "checkpoint format 99"),
                                           ({"run_id": ""}, "names no run"),
                                           ({"config": None}, "holds no saved config")])
def test_unknown_formats_and_checkpoints_without_a_run_are_refused(tmp_path, edit, message):
    path = crafted(tmp_path / "run", {"seed": 0})
    state = torch.load(path, weights_only=True)
    torch.save({**state, **edit}, path)
    with pytest.raises(ConfigError, match=message):
        checkpoint.load(path)


def test_a_full_disk_is_a_storage_error_naming_the_file(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    monkeypatch.setattr(torch, "save", full_disk)
    path = tmp_path / "checkpoints" / "step_00000001.pt"
    with pytest.raises(StorageError, match=f"cannot write {path}: .*file write failed"):
        checkpoint.save_atomic({"x": 1}, path)
    assert list(path.parent.iterdir()) == []  # no temporary left behind


@pytest.mark.parametrize("name", [".ganrun.lock", "run_id", "config.yaml", "metrics.json", ".hydra/config.yaml",
                                  "ganrun.log", "checkpoints/step_00000009.pt"])
def test_a_run_dir_holding_a_link_is_refused_naming_it(tmp_path, name):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    run_dir = tmp_path / "run"
    (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / name).symlink_to(outside)
    with pytest.raises(ConfigError, match=f"{run_dir / name} is a symbolic link"):
        refuse_links(run_dir)
    with pytest.raises(ConfigError):
        with RunDirLock(run_dir):
            pass
    assert outside.read_text() == "precious"


@pytest.mark.parametrize("make, what", [(lambda p: p.mkdir(), "is a folder"),
                                        (lambda p: p.symlink_to(p.parent / "nowhere"), "symbolic link")])
def test_an_odd_lock_file_is_one_clear_line(tmp_path, make, what):
    make(tmp_path / ".ganrun.lock")
    with pytest.raises(ConfigError, match=what):
        rundir.refuse_if_in_use(tmp_path)
    with pytest.raises(ConfigError, match=what if what != "symbolic link" else "symbolic link"):
        with RunDirLock(tmp_path):
            pass


HOLD_AND_FORK = textwrap.dedent("""
    import os, sys, time
    from ganrun.rundir import RunDirLock
    with RunDirLock(sys.argv[1]):
        if os.fork() == 0:  # a DataLoader worker, forked while the lock is held
            time.sleep(60)
            os._exit(0)
        print("locked", flush=True)
        time.sleep(60)
""")


def test_the_lock_dies_with_its_process_not_with_its_forked_workers(tmp_path):
    run_dir = tmp_path / "run"
    owner = subprocess.Popen([sys.executable, "-c", HOLD_AND_FORK, str(run_dir)], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert owner.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirLocked):
            rundir.refuse_if_in_use(run_dir)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        rundir.refuse_if_in_use(run_dir)  # the worker still lives; the lock is gone with its owner
        with RunDirLock(run_dir):
            pass
    finally:
        os.killpg(owner.pid, signal.SIGKILL)


def test_default_run_dirs_are_unique_within_one_second(tmp_path, monkeypatch):
    default = str(tmp_path / "outputs" / "2026-12-06" / "10-00-00")
    first = rundir.new_run_dir(default)
    monkeypatch.setattr(rundir, "_claimed", {})  # another process, started in the same second
    second = rundir.new_run_dir(default)
    assert first == default and second == default + "_1"
    assert rundir.new_run_dir(default) == second  # Hydra resolves the dir several times: one answer


@pytest.mark.slow
def test_resume_of_a_run_folder_with_links_writes_nothing_outside_it(tmp_path, data_root):
    """End to end, as a user resumes a received folder: refused before Hydra writes anything, files outside
    untouched."""
    run_dir = tmp_path / "received"
    run_ganrun([*TINY, "trainer.steps=1", f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    outside = {name: tmp_path / f"outside-{name.replace('/', '_')}" for name in
               ("config.yaml", ".hydra/overrides.yaml", "ganrun.log", "run_id")}
    for name, target in outside.items():
        target.write_text("precious")
        (run_dir / name).unlink()
        (run_dir / name).symlink_to(target)
    proc = run_ganrun([f"resume={run_dir}", "trainer.steps=2"], data_root, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "is a symbolic link" in proc.stderr and "Traceback" not in proc.stderr
    assert all(target.read_text() == "precious" for target in outside.values())


@pytest.mark.slow
def test_saved_overrides_are_never_replayed(tmp_path, data_root):
    """The overrides a checkpoint carries are a record, not a command: a Hydra callback, a group option read from a
    path in the folder, a group@package key: none of them acts on `ganrun resume=`."""
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "received"
    run_ganrun([*TINY, "trainer.steps=1", f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    (run_dir / "evil.yaml").write_text(f"source: {{_target_: pathlib.Path.touch, self: {marker}}}\n")
    path = checkpoint.checkpoint_path(run_dir, 1)
    state = checkpoint.load(path)
    state["overrides"] = ["+hydra.callbacks.evil._target_=pathlib.Path.touch", f"+hydra.callbacks.evil.self={marker}",
                          f"dataset=../../../../..{run_dir}/evil", "+loss@hydra.callbacks.x=hinge"]
    torch.save(state, path)
    proc = run_ganrun([f"resume={run_dir}", "trainer.steps=2"], data_root, cwd=tmp_path)
    assert checkpoint.step_checkpoints(run_dir)[0].name == "step_00000002.pt" and not marker.exists()
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_rerunning_a_sweep_skips_finished_jobs_and_says_so(tmp_path, data_root):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "trainer.steps=2", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    run_ganrun(args, data_root, cwd=tmp_path)
    before = {p: p.read_bytes() for p in sweep.glob("*/checkpoints/*.pt")}
    assert len(before) == 2
    proc = run_ganrun(args, data_root, cwd=tmp_path)
    assert proc.stdout.count("finished before (metrics.json): skipped") + proc.stderr.count(
        "finished before (metrics.json): skipped") == 2
    assert {p: p.read_bytes() for p in sweep.glob("*/checkpoints/*.pt")} == before


@pytest.mark.parametrize("text", ["loss: 3\n", "[1, 2]\n", "loss: {_target_: ganrun.losses.Hinge}\ndataset: {num_classes: x}\n",
                                  "a: [\n"])
def test_diagnose_on_a_malformed_config_is_one_line_naming_the_file(tmp_path, capsys, text):
    from ganrun import diagnostics

    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        diagnostics.main([str(tmp_path)])
    assert exit_info.value.code == 1
    assert f"{tmp_path / 'config.yaml'} is not a ganrun config" in capsys.readouterr().err


@pytest.mark.parametrize("fingerprint", ["", None])
def test_a_checkpoint_without_a_data_fingerprint_resumes_only_when_forced(tmp_path, data_root, fingerprint):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=1, run_dir=run_dir)
    path = checkpoint.checkpoint_path(run_dir, 1)
    state = checkpoint.load(path)
    state["data_fingerprint"] = fingerprint
    torch.save(state, path)
    with pytest.raises(ConfigError, match="holds no fingerprint of its training data"):
        train_in_process(tmp_path, data_root, f"resume={run_dir}", steps=2, run_dir=run_dir)
    assert train_in_process(tmp_path, data_root, f"resume={run_dir}", "resume_force=true", steps=2,
                            run_dir=run_dir).step == 2


@pytest.mark.parametrize("argv", [["hydra.run.dir="], ["hydra.run.dir=''"], ["-m", "hydra.sweep.dir="]])
def test_an_empty_run_or_sweep_dir_is_refused_naming_the_key(argv):
    from ganrun.cli import check_run_dir

    key = argv[-1].split("=")[0]
    with pytest.raises(ConfigError, match=f"{key} is empty"):
        check_run_dir(argv)


def test_resume_force_into_another_width_is_one_line_not_a_state_dict_traceback(tmp_path, data_root):
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, steps=1, run_dir=run_dir)
    with pytest.raises(ConfigError, match="the checkpoint's generator does not fit the configured network"):
        train_in_process(tmp_path, data_root, f"resume={run_dir}", "model.generator.width=16", "resume_force=true",
                         steps=2, run_dir=run_dir)
