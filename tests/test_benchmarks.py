"""The GPU check script runs on the CPU at tiny sizes, so it cannot rot before a GPU runs it (issue 20)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cpu_env

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "gpu_check.py"


@pytest.mark.slow  # a dozen tiny training runs and an evaluation in a subprocess
def test_gpu_check_runs_on_the_cpu_and_finds_no_host_syncs(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny"], cwd=tmp_path, env=cpu_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"default\s+0\.00\n", out) and re.search(r"conditional, fresh fakes\s+0\.00\n", out), out
    for part in ("hand-written loop", "ema.enabled=false", "trainer.channels_last=true", "regularizer=r1",
                 "one evaluation of 256 generated samples", "score maths on 300 random 64-d features"):
        assert part in out, out
