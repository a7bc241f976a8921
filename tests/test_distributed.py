"""torchrun with 2 CPU processes (gloo): one run, sharded data, rank-0 logging, identical weights, resume."""

import re
import subprocess
import sys

import pytest
from helpers import TINY, cpu_env

from ganrun import checkpoint

pytestmark = pytest.mark.slow  # subprocess runs of the real commands


def torchrun(args, data_root, cwd):
    env = cpu_env(GANRUN_DATA=str(data_root), GANRUN_CACHE=str(cwd / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "ganrun", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def final_digests(output):
    return dict(re.findall(r"rank (\d)/2 final weights: (G \w+ D \w+) \(identical on all ranks\)", output))


def test_two_processes_train_one_run_with_identical_weights(tmp_path, data_root):
    run_dir = tmp_path / "run"
    common = [*TINY, "loss=wgan_gp", "trainer.log_every=1", "seed=5"]
    output = torchrun([*common, "trainer.steps=4", "trainer.ckpt_every=4", f"hydra.run.dir={run_dir}"], data_root,
                      tmp_path)
    digests = final_digests(output)
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    assert "Distributed: 2 ranks, batch 16 per rank = 32 effective batch size" in output
    # One logger and one checkpointer: rank 0.
    assert [p.name for p in checkpoint.step_checkpoints(run_dir)] == ["step_00000004.pt"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert (run_dir / "ganrun_rank1.log").exists()
    assert len(checkpoint.load(run_dir / "checkpoints" / "step_00000004.pt")["rng"]) == 2  # one RNG state per rank

    # Resume the same way as a single-process run, and land exactly where an uninterrupted run does.
    split = tmp_path / "split"
    torchrun([*common, "trainer.steps=2", "trainer.ckpt_every=2", f"hydra.run.dir={split}"], data_root, tmp_path)
    resumed = torchrun([f"resume={split}", "trainer.steps=4"], data_root, tmp_path)
    assert final_digests(resumed) == digests
