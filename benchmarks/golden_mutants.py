"""Is the golden test's tolerance still sharp? Every mutant of benchmarks/mutation_pass.py is applied in turn
(in a temporary copy), the golden cases are measured, and two verdicts are printed:
*exact*: some number differs at all from the unmutated code's on this machine (what an exact comparison on the
recording machine would kill), *tolerant*: tests/test_golden.py's comparison with its tolerances fails against
the committed golden numbers. Every mutant killed exactly must be killed tolerantly.

    python benchmarks/golden_mutants.py [word ...]   # mutants whose name contains a word; all by default
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mutation_pass import MUTANTS, copy_repo

MEASURE = """
import json, sys, tempfile, torch
from pathlib import Path
sys.path.insert(0, "tests")
import test_golden as tg
from hydra.core.global_hydra import GlobalHydra
torch.set_num_threads(tg.THREADS)
out = {}
for name, overrides in tg.CASES.items():
    GlobalHydra.instance().clear()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            out[name] = tg.measure(Path(tmp), overrides)
        except Exception as exc:
            out[name] = {"error": repr(exc)[:200]}
print(json.dumps(out))
"""


def measure(repo: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", MEASURE], cwd=repo, env=env, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"crash": proc.stderr[-300:]}


def main(words: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import GOLDEN, mismatches

    golden = json.loads(GOLDEN.read_text())
    chosen = [m for m in MUTANTS if not words or any(w.lower() in m.name.lower() for w in words)]
    lost = 0
    with tempfile.TemporaryDirectory(prefix="ganrun-golden-") as tmp:
        repo = Path(tmp) / "repo"
        copy_repo(repo)
        here = measure(repo)
        bad = {c: mismatches(here[c], golden[c]) for c in golden}
        if any(bad.values()):
            print(f"the unmutated code is outside the tolerance: {bad}", file=sys.stderr)
            return 2
        print("| mutant | exact | tolerant |\n|---|---|---|")
        for mutant in chosen:
            target = repo / mutant.path
            original = target.read_text()
            if original.count(mutant.old) != 1:
                print(f"| {mutant.name} | STALE | |")
                continue
            target.write_text(original.replace(mutant.old, mutant.new))
            try:
                got = measure(repo)
            finally:
                target.write_text(original)
            exact = got != here
            tolerant = "crash" in got or any(
                "error" in got[c] or mismatches(got[c], golden[c]) for c in golden)
            lost += exact and not tolerant
            print(f"| {mutant.name} | {'killed' if exact else 'survived'} | {'killed' if tolerant else 'survived'} |",
                  flush=True)
    print(f"\n{lost} mutant(s) killed by exact equality but not by the tolerance")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
