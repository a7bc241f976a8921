"""No lost work around run dirs: one writer per run dir (stale locks taken over), resuming an older checkpoint
branches instead of pruning newer work, and run dirs with spaces/non-ASCII names resume with a pasteable command."""

import logging
import os
import shlex
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import TINY, run_ganrun
from hydra.core.override_parser.overrides_parser import OverridesParser

from ganrun import checkpoint
from ganrun.cli import check_run_dir
from ganrun.errors import ConfigError
from ganrun.rundir import (
    LOCK_FILE,
    RunDirLock,
    RunDirLocked,
    hydra_quote,
    refuse_to_prune_newer_work,
    resume_command,
    run_dir_for_resume,
)

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from ganrun.rundir import RunDirLock
    with RunDirLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def hold_lock_in_another_process(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_naming_the_owner(tmp_path):
    owner = hold_lock_in_another_process(tmp_path / "run")
    try:
        with pytest.raises(RunDirLocked) as refused:
            with RunDirLock(tmp_path / "run"):
                pass
        assert f"in use by pid {owner.pid} on " in str(refused.value) and str(tmp_path / "run") in str(refused.value)
    finally:
        owner.kill()
        owner.wait()


def test_in_one_process_too_and_released_on_exit(tmp_path):
    with RunDirLock(tmp_path):
        with pytest.raises(RunDirLocked, match=f"pid {os.getpid()}"):
            RunDirLock(tmp_path).__enter__()
    with RunDirLock(tmp_path):  # released: taken again, with no stale-owner warning (the file names nobody)
        pass
    assert (tmp_path / LOCK_FILE).read_text() == ""
    with RunDirLock(tmp_path):
        pass


def test_the_stale_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
    owner = hold_lock_in_another_process(tmp_path)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert (tmp_path / LOCK_FILE).exists()  # left behind: SIGKILL runs no cleanup
    with caplog.at_level(logging.WARNING), RunDirLock(tmp_path):
        pass
    assert any(f"left by pid {owner.pid}" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_ganrun_refuses_a_run_dir_another_run_is_writing(tmp_path, data_root):
    run_dir = tmp_path / "run"
    owner = hold_lock_in_another_process(run_dir)
    try:
        proc = run_ganrun([*TINY, "trainer.steps=2", f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path, check=False)
    finally:
        owner.kill()
        owner.wait()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and f"is in use by pid {owner.pid}" in output and "Traceback" not in output
    assert not (run_dir / "checkpoints").exists()
    assert not (run_dir / ".hydra").exists()  # refused before Hydra writes its files over the running one's


def fake_run(run_dir, steps):
    for step in steps:
        checkpoint.save_atomic({"step": step, "config": {}, "overrides": [], "format": checkpoint.CHECKPOINT_FORMAT,
                                "run_id": "fake"}, checkpoint.checkpoint_path(run_dir, step))
    checkpoint.save_atomic({"step": steps[0]}, run_dir / "checkpoints" / checkpoint.BEST_FILE)


def test_a_resume_of_a_run_dir_in_use_is_refused_before_hydra_starts(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir, [200, 100])
    owner = hold_lock_in_another_process(run_dir)
    try:
        for argv in ([f"resume={run_dir}"], [f"resume={checkpoint.checkpoint_path(run_dir, 200)}"],
                     [f"hydra.run.dir={run_dir}", "trainer.steps=5"]):
            with pytest.raises(RunDirLocked, match=f"in use by pid {owner.pid}"):
                check_run_dir(argv)
        # An older checkpoint branches into a new dir, and a sweep's jobs get their own: neither is refused.
        check_run_dir([f"resume={checkpoint.checkpoint_path(run_dir, 100)}"])
        check_run_dir(["-m", f"hydra.run.dir={run_dir}"])
    finally:
        owner.kill()
        owner.wait()
    check_run_dir([f"resume={run_dir}"])  # the stale lock file of a dead owner blocks nothing


def test_resuming_an_older_checkpoint_branches_into_a_new_run_dir(tmp_path, caplog):
    run = tmp_path / "run"
    fake_run(run, [2, 4])
    new = str(tmp_path / "outputs" / "new")
    assert run_dir_for_resume(str(run), new) == str(run)
    assert run_dir_for_resume(str(checkpoint.checkpoint_path(run, 4)), new) == str(run)  # the newest: in place
    with caplog.at_level(logging.WARNING):
        assert run_dir_for_resume(str(checkpoint.checkpoint_path(run, 2)), new) == new
        assert run_dir_for_resume(str(run / "checkpoints" / "best.pt"), new) == new
    assert any("branches into the new run dir" in r.getMessage() and "step_00000004.pt" in r.getMessage()
               for r in caplog.records)


def test_an_older_checkpoint_forced_into_its_own_run_dir_is_refused(tmp_path):
    run = tmp_path / "run"
    fake_run(run, [2, 4])
    with pytest.raises(ConfigError, match="older than step_00000004.pt in the same run dir"):
        refuse_to_prune_newer_work(str(checkpoint.checkpoint_path(run, 2)), run)
    refuse_to_prune_newer_work(str(checkpoint.checkpoint_path(run, 4)), run)  # the newest: fine
    refuse_to_prune_newer_work(str(checkpoint.checkpoint_path(run, 2)), tmp_path / "elsewhere")  # a branch: fine
    refuse_to_prune_newer_work(str(run), run)


@pytest.mark.slow
def test_resume_from_an_older_checkpoint_never_deletes_newer_work(tmp_path, data_root):
    run = tmp_path / "run"
    run_ganrun([*TINY, "trainer.steps=4", "trainer.ckpt_every=1", "trainer.keep_ckpts=2", f"hydra.run.dir={run}"],
               data_root, cwd=tmp_path)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert sorted(before) == ["step_00000003.pt", "step_00000004.pt"]
    proc = run_ganrun([f"resume={checkpoint.checkpoint_path(run, 3)}", "trainer.steps=5"], data_root, cwd=tmp_path)
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before
    branches = list((tmp_path / "outputs").glob("*/*/checkpoints/step_00000005.pt"))
    assert len(branches) == 1 and checkpoint.load(branches[0])["step"] == 5
    assert "branches into the new run dir" in proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["my runs/exp ü 1", "it's a run", "plain-run_1", "a,b=c $HOME"])
def test_resume_command_is_quoted_for_the_shell_and_for_hydra(tmp_path, name):
    run_dir = str(tmp_path / name)
    words = shlex.split(resume_command(run_dir))
    assert words[0] == "ganrun" and len(words) == 2
    assert OverridesParser.create().parse_override(words[1]).value() == run_dir
    assert OverridesParser.create().parse_override("resume=" + hydra_quote(run_dir)).value() == run_dir


@pytest.mark.slow
def test_a_run_dir_with_spaces_and_non_ascii_resumes(tmp_path, data_root):
    run_dir = tmp_path / "my runs" / "exp ü 1"
    quoted = hydra_quote(str(run_dir))
    run_ganrun([*TINY, "trainer.steps=2", "loss=hinge", f"hydra.run.dir={quoted}"], data_root, cwd=tmp_path)
    command = shlex.split(resume_command(run_dir))
    proc = run_ganrun([*command[1:], "trainer.steps=3"], data_root, cwd=tmp_path)
    assert checkpoint.load(checkpoint.checkpoint_path(run_dir, 3))["config"]["loss"]["_target_"].endswith("Hinge")
    assert "change it" not in proc.stdout + proc.stderr
