"""Benchmark scripts run on the CPU at tiny sizes, so they cannot rot before a GPU (or a person) runs them."""

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


@pytest.mark.slow  # makes a folder, starts fresh processes
def test_folder_io_benchmark_runs_at_a_tiny_size(tmp_path):
    script = SCRIPT.with_name("folder_io.py")
    proc = subprocess.run([sys.executable, str(script), "--n", "8", "--batches", "1", "--batch-size", "4", "--formats", "png",
                           "--dir", str(tmp_path)], cwd=tmp_path, env=cpu_env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for part in ("start-up at 256 px", "start-up at  64 px", "streamed, num_workers=2", "antialias=True (ganrun)"):
        assert part in out, out
    psnr = {name.strip(): float(db) for name, db in re.findall(r"^(.{48}) +([\d.]+) dB", out, re.M)}
    # The antialiased filter is closer to the area average than the one without a low-pass (the zone plate aliases).
    assert psnr["torchvision bilinear, antialias=True (ganrun)"] > psnr["torchvision bilinear, antialias=False"] + 3
    assert (tmp_path / "cache" / "prepared").is_dir()  # the streamed settings read a prepared file


def test_the_mutant_summary_counts_each_mutant_once_with_its_last_verdict(tmp_path):
    """`--summary run.jsonl rerun.jsonl`: a survivor re-run and killed counts as killed, once (no mutmut needed)."""
    import json

    def record(line, status, diff="a -> b"):
        return json.dumps({"module": "ganrun/m.py", "line": line, "diff": diff, "status": status})

    run, rerun = tmp_path / "run.jsonl", tmp_path / "rerun.jsonl"
    run.write_text("\n".join([record(1, "killed"), record(2, "survived"), record(3, "survived"),
                              record(4, "unexecuted"), record(5, "string"), record(2, "survived", "c -> d")]) + "\n")
    rerun.write_text("\n".join([record(2, "killed"), record(3, "survived")]) + "\n")
    proc = subprocess.run([sys.executable, str(SCRIPT.with_name("generated_mutants.py")), "--summary", str(run),
                           str(rerun)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # 5 mutants apart from the string-only one: killed lines 1 and 2 (a -> b); survivors 2 (c -> d), 3 and 4
    assert "| ganrun/m.py | 5 | 2 | 3 | 1 | 40% | 1 | 0 |" in proc.stdout, proc.stdout


def test_every_chosen_mutant_still_finds_its_code_exactly_once(monkeypatch):
    """A mutant whose code has moved on applies to nothing and reports STALE instead of a verdict: the quick
    regression list (benchmarks/mutation_pass.py) must keep up with the code it mutates."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from mutation_pass import MUTANTS, ROOT

    found = {m.name: (ROOT / m.path).read_text().count(m.old) for m in MUTANTS}
    stale = {name: count for name, count in found.items() if count != 1}
    assert stale == {}, stale
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)  # names select mutants on the command line
