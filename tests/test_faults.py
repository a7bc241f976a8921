"""Faults injected for real: SIGKILL at arbitrary moments, SIGTERM/SIGINT, truncated checkpoints, NaN losses,
corrupt images and bad values. Each test asserts the promised message, exit code and files on disk."""

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY, cpu_env, run_ganrun, scalars, write_png

from ganrun import checkpoint

pytestmark = pytest.mark.slow  # subprocess runs of the real commands


def start_ganrun(args, data_root, cwd):
    env = cpu_env(GANRUN_DATA=str(data_root))
    return subprocess.Popen([shutil.which("ganrun"), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def newest_step(run_dir) -> int:
    found = checkpoint.step_checkpoints(run_dir)
    return int(found[0].stem.split("_")[1]) if found else 0


def test_repeated_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, data_root):
    common = [*TINY, "trainer.steps=60", "trainer.ckpt_every=1", "trainer.log_every=1", "seed=3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_ganrun([*common, f"hydra.run.dir={straight}"], data_root, cwd=tmp_path)

    rng = random.Random(0)
    args = [*common, f"hydra.run.dir={killed}"]
    for target in (8, 25, 42):
        proc = start_ganrun(args, data_root, tmp_path)
        deadline = time.time() + 120
        while newest_step(killed) < target and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.05))  # land anywhere: mid-step, mid-checkpoint-write
        proc.kill()
        proc.communicate()
        args = [f"resume={killed}"]
    run_ganrun(args, data_root, cwd=tmp_path)

    a = checkpoint.load(straight / "checkpoints" / "step_00000060.pt")
    b = checkpoint.load(killed / "checkpoints" / "step_00000060.pt")
    for part in ("generator", "discriminator"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert scalars(straight, "loss/G") == scalars(killed, "loss/G")
    assert not list((killed / "checkpoints").glob(".*.tmp-*"))  # temporaries of killed writers cleaned up


def test_truncated_checkpoint_is_skipped_with_the_reason(tmp_path, data_root):
    run_dir = tmp_path / "run"
    run_ganrun([*TINY, "trainer.steps=4", "trainer.ckpt_every=2", f"hydra.run.dir={run_dir}"], data_root,
               cwd=tmp_path)
    newest = run_dir / "checkpoints" / "step_00000004.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    proc = run_ganrun([f"resume={run_dir}", "trainer.steps=6"], data_root, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert f"Skipping checkpoint {newest}: it cannot be loaded" in output
    assert "Resumed from" in output and "step_00000002.pt at step 2" in output
    assert checkpoint.load(run_dir / "checkpoints" / "step_00000006.pt")["step"] == 6


def test_only_damaged_checkpoints_is_a_clear_error(tmp_path, data_root):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step_00000002.pt").write_bytes(b"garbage")
    proc = run_ganrun([f"resume={tmp_path / 'run'}"], data_root, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "none of the checkpoints could be loaded (1 tried)" in proc.stdout + proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_prints_the_resume_command(tmp_path, data_root, signum):
    run_dir = tmp_path / "run"
    proc = start_ganrun([*TINY, "trainer.steps=100000", "trainer.log_every=1", f"hydra.run.dir={run_dir}"],
                        data_root, tmp_path)
    deadline = time.time() + 120
    while not list(run_dir.glob("events.out.tfevents.*")) or not scalars(run_dir, "loss/D"):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert f"Resume with: ganrun resume={run_dir}" in output
    saved = checkpoint.step_checkpoints(run_dir)
    assert len(saved) == 1 and checkpoint.load(saved[0])["step"] >= 1


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, data_root):
    run_dir = tmp_path / "run"
    proc = run_ganrun([*TINY, "loss._target_=faulty_losses.NaNAfter", "+loss.calls=5", "trainer.steps=10",
                       "trainer.ckpt_every=2", "trainer.log_every=1", f"hydra.run.dir={run_dir}"], data_root,
                      cwd=tmp_path, check=False, extra_path=Path(__file__).parent)
    assert proc.returncode == 3
    output = proc.stdout + proc.stderr
    assert "loss/D, loss/D_adversarial" in output and "became non-finite (nan) between steps 5 and 5" in output
    assert [p.name for p in checkpoint.step_checkpoints(run_dir)] == ["step_00000004.pt", "step_00000002.pt"]


def folder_args(folder, run_dir):
    return [*TINY, "dataset=folder", f"dataset.path={folder}", "dataset.resolution=32", "trainer.batch_size=2",
            "trainer.steps=2", f"hydra.run.dir={run_dir}"]


def test_corrupt_image_is_refused_or_skipped_and_counted(tmp_path, data_root):
    folder = tmp_path / "images"
    for i in range(3):
        write_png(folder / f"ok{i}.png", size=(40 + i, 30), mode=["L", "RGBA", "P"][i], seed=i)
    good = write_png(folder / "truncated.png", size=(64, 64)).read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])

    refused = run_ganrun(folder_args(folder, tmp_path / "a"), data_root, cwd=tmp_path, check=False)
    assert refused.returncode == 1
    output = refused.stdout + refused.stderr
    assert "1 unreadable image file(s)" in output and str(folder / "truncated.png") in output
    assert "dataset.source.skip_unreadable=true" in output and not (tmp_path / "a" / "checkpoints").exists()

    skipped = run_ganrun([*folder_args(folder, tmp_path / "b"), "dataset.source.skip_unreadable=true"], data_root,
                         cwd=tmp_path)
    assert "Skipped 1 unreadable image file(s) of 4" in skipped.stdout + skipped.stderr
    assert (tmp_path / "b" / "checkpoints" / "step_00000002.pt").exists()


@pytest.mark.parametrize("args,message", [
    (["trainer.batch_size=0"], "trainer.batch_size=0 must be >= 1"),
    (["trainer.steps=-5"], "trainer.steps=-5 must be >= 1"),
    (["trainer.n_critic=0"], "trainer.n_critic=0 must be >= 1"),
    (["optimizer=sgd", "optimizer.g.lr=0"], "optimizer.g.lr=0 must be > 0"),
    (["optimizer.d.lr=-1"], "optimizer.d.lr=-1 must be > 0"),
    (["optimizer.d.betas=[0.5,2.0]"], "optimizer.d.betas[1]=2.0 must be < 1"),
    (["trainer.batch_size=1000"], "trainer.batch_size=1000 is larger than the dataset (128 images)"),
    (["trainer.steps=ten"], "Value 'ten' of type 'str' could not be converted to Integer"),
    (["trainer.stepz=3"], "Key 'stepz' not in 'TrainerSchema'"),
    (["dataset=folder", "dataset.path=EMPTY"], "has no image files"),
    (["hydra.run.dir=/proc/ganrun-out"], "the output dir hydra.run.dir=/proc/ganrun-out cannot be written"),
])
def test_bad_values_are_refused_before_training_naming_the_key(tmp_path, data_root, args, message):
    (tmp_path / "EMPTY").mkdir()
    args = [a.replace("EMPTY", str(tmp_path / "EMPTY")) for a in args]
    run_dir = tmp_path / "run"
    proc = run_ganrun([*TINY, *args] + ([] if any(a.startswith("hydra.run.dir") for a in args)
                                       else [f"hydra.run.dir={run_dir}"]), data_root, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert message in output and "Traceback" not in output
    assert not (run_dir / "checkpoints").exists()
