"""Generated mutants (mutmut 2's mutation operators), not chosen ones: every mutant of a module, one at a time, against
that module's fast tests; a kill table per module (docs/mutation.md).

mutmut's own runner starts a new interpreter per mutant; importing torch, Hydra and TensorBoard costs 15-30 s on
the shared 2-core host, so this runner imports them once and forks a child per mutant, which imports ganrun from
a temporary copy of the repository holding the mutant and runs the module's tests with pytest.main (the working
tree is never touched). Mutants that only change a string literal (messages, log lines) are counted apart.

    pip install --no-deps mutmut==2.5.1 glob2 pony junit-xml toml   # mutmut 2's generator only
    python benchmarks/generated_mutants.py [--until HH:MM] [--out results.jsonl] [module ...]
    python benchmarks/generated_mutants.py --summary results.jsonl [more.jsonl ...]   # the kill table
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
import time
from pathlib import Path

import mutmut

sys.path.insert(0, str(Path(__file__).parent))
from mutation_pass import copy_repo  # noqa: E402

# The science modules and the fast tests that state their definitions.
MODULES = {
    "ganrun/losses.py": ["tests/test_losses.py"],
    "ganrun/schedules.py": ["tests/test_schedules.py"],
    "ganrun/regularizers.py": ["tests/test_regularizers.py"],
    "ganrun/objective.py": ["tests/test_objective.py"],
    "ganrun/metrics/scores.py": ["tests/test_metric_references.py",
                                 "tests/test_metrics.py::test_fid_equals_the_scipy_reference"],
    "ganrun/augment.py": ["tests/test_augment.py"],
    "ganrun/models/layers.py": ["tests/test_models.py"],
    "ganrun/models/dcgan.py": ["tests/test_models.py"],
    "ganrun/models/mlp.py": ["tests/test_models.py"],
    "ganrun/models/conditioning.py": ["tests/test_models.py"],
    "ganrun/models/resnet.py": ["tests/test_models.py"],
}
TIMEOUT_S = 240


def mutants(source: str, filename: str):
    """(mutation id, mutated source) for every mutant mutmut generates."""
    for mutation_id in mutmut.list_mutations(mutmut.Context(source=source, filename=filename)):
        mutated, _ = mutmut.mutate(mutmut.Context(source=source, filename=filename, mutation_id=mutation_id))
        yield mutation_id, mutated


def string_only(old: str, new: str) -> bool:
    """Whether the mutant only wraps a string literal in XX...XX (mutmut's string mutation)."""
    return new.replace("XX", "") == old


def run_tests(repo: Path, tests: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # child: a fresh ganrun from the copy, the heavy libraries already imported
        os.chdir(repo)
        sys.path[:0] = [str(repo), str(repo / "tests")]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1), os.dup2(devnull, 2)
        import pytest
        import torch

        torch.set_num_threads(1)
        os._exit(int(pytest.main(["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", *tests])))
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1  # timed out: counted as killed (an endless loop is caught)


def summary(paths: list[str]) -> None:
    """Per module: mutants run, killed, survived, kill rate (string-only mutants apart)."""
    rows: dict[str, dict[str, int]] = {}
    for path in paths:
        for record in map(json.loads, open(path)):
            counts = rows.setdefault(record["module"], {"killed": 0, "survived": 0, "string": 0})
            counts[record["status"]] += 1
    print("| module | mutants run | killed | survived | kill rate | string-only (not run) |\n|---|---|---|---|---|---|")
    for module, c in rows.items():
        run = c["killed"] + c["survived"]
        print(f"| {module} | {run} | {c['killed']} | {c['survived']} | {100 * c['killed'] / max(run, 1):.0f}% | "
              f"{c['string']} |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--until", help="stop starting mutants after this UTC time (HH:MM)")
    parser.add_argument("--out", default="generated_mutants.jsonl")
    parser.add_argument("--summary", nargs="+", metavar="JSONL")
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
        return 0
    sys.dont_write_bytecode = True
    import hydra  # noqa: F401  (imported once, before the forks)
    import omegaconf  # noqa: F401
    import pytest  # noqa: F401
    import scipy.linalg  # noqa: F401
    import torch  # noqa: F401
    import torchvision  # noqa: F401
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    import tempfile
    until = time.strptime(args.until, "%H:%M") if args.until else None
    out = open(args.out, "a")
    with tempfile.TemporaryDirectory(prefix="ganrun-generated-") as tmp:
        repo = Path(tmp) / "repo"
        copy_repo(repo)
        for module in args.modules or MODULES:
            tests, target = MODULES[module], repo / module
            original = target.read_text()
            if run_tests(repo, tests) != 0:
                print(f"{module}: the unmutated tests fail", file=sys.stderr)
                continue
            for mutation_id, mutated in mutants(original, module):
                now = time.gmtime()
                if until and (now.tm_hour, now.tm_min) >= (until.tm_hour, until.tm_min):
                    return 0
                old, new = original.splitlines(), mutated.splitlines()
                changed = [(a, b) for a, b in zip(old, new) if a != b]
                diff = " / ".join(f"{a.strip()} -> {b.strip()}" for a, b in changed)[:300]
                if changed and all(string_only(a, b) for a, b in changed):
                    status = "string"
                else:
                    target.write_text(mutated)
                    try:
                        start = time.time()
                        rc = run_tests(repo, tests)
                    finally:
                        target.write_text(original)
                    status = "killed" if rc not in (0, 5) else "survived"
                out.write(json.dumps({"module": module, "line": mutation_id.line_number + 1, "status": status,
                                      "diff": diff}) + "\n")
                out.flush()
                print(f"{status:8s} {module}:{mutation_id.line_number + 1} {diff[:120]}", file=sys.stderr,
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
