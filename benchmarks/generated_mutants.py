"""Generated mutants (mutmut 2's mutation operators), not chosen ones: every mutant of a module, one at a time, against
that module's fast tests; a kill table per module (docs/mutation.md).

mutmut's own runner starts a new interpreter per mutant; importing torch, Hydra and TensorBoard costs 15-30 s on
the shared 2-core host, so this runner imports them once and forks a child per mutant, which imports ganrun from
a temporary copy of the repository holding the mutant and runs the module's tests with pytest.main (the working
tree is never touched). Mutants that only change a string literal (messages, log lines) are counted apart.

    pip install --no-deps mutmut==2.5.1 glob2 pony junit-xml toml   # mutmut 2's generator only
    python benchmarks/generated_mutants.py [--until HH:MM] [--out results.jsonl] [module ...]
    python benchmarks/generated_mutants.py --summary results.jsonl [more.jsonl ...]   # the kill table
    python benchmarks/generated_mutants.py --rerun results.jsonl --out after.jsonl   # its survivors, against today's tests
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import signal
import sys
import time
from pathlib import Path

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
    "ganrun/models/r3gan.py": ["tests/test_r3gan.py", "tests/test_models.py"],
    "ganrun/ada.py": ["tests/test_ada.py"],
    "ganrun/ema.py": ["tests/test_ema.py"],
    "ganrun/run_state.py": ["tests/test_run_state.py", "tests/test_build_run_state.py"],
}
TIMEOUT_S = 240


def mutants(source: str, filename: str):
    """(mutation id, mutated source) for every mutant mutmut generates."""
    import mutmut  # here, not at the top: --summary needs no mutmut

    for mutation_id in mutmut.list_mutations(mutmut.Context(source=source, filename=filename)):
        mutated, _ = mutmut.mutate(mutmut.Context(source=source, filename=filename, mutation_id=mutation_id))
        yield mutation_id, mutated


def diff_of(original: str, mutated: str) -> str:
    """The changed lines, `old -> new`, as a mutant's record names them."""
    changed = [(a, b) for a, b in zip(original.splitlines(), mutated.splitlines()) if a != b]
    return " / ".join(f"{a.strip()} -> {b.strip()}" for a, b in changed)[:300]


def string_only(old: str, new: str) -> bool:
    """Whether the mutant only wraps a string literal in XX...XX (mutmut's string mutation)."""
    return new.replace("XX", "") == old


def without_annotations(source: str) -> str:
    """The module's AST with every annotation blanked: under `from __future__ import annotations` annotations
    are strings that ganrun never evaluates, so a mutant that changes only them is equivalent."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
        elif isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
    return ast.dump(tree)


def annotation_only(original: str, mutated: str) -> bool:
    if "from __future__ import annotations" not in original:
        return False
    try:
        return without_annotations(original) == without_annotations(mutated)
    except SyntaxError:  # a mutant that does not compile is no annotation change (and is killed)
        return False


class _TestContexts:
    """pytest plugin: coverage's context is the running test's node id, so each line knows which tests run it."""

    def __init__(self, cov):
        self.cov = cov

    def pytest_runtest_protocol(self, item, nextitem):
        self.cov.switch_context(item.nodeid)


def run_tests(repo: Path, tests: list[str], trace: tuple[Path, Path, str] | None = None) -> int:
    """Exit code of the tests in a forked child. With `trace` = (module file, out, module name): for each line of
    the module, the node ids of the tests that execute it go to out (JSON); "" for lines run at import."""
    pid = os.fork()
    if pid == 0:  # child: a fresh ganrun from the copy, the heavy libraries already imported
        os.chdir(repo)
        sys.path[:0] = [str(repo), str(repo / "tests")]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1), os.dup2(devnull, 2)
        import pytest
        import torch

        torch.set_num_threads(1)
        plugins = []
        if trace is not None:
            import importlib

            import coverage

            cov = coverage.Coverage(data_file=None, include=[str(trace[0])])
            cov.start()
            importlib.import_module(trace[2])  # import-time lines (defaults, class bodies) get the context ""
            plugins.append(_TestContexts(cov))
        rc = int(pytest.main(["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", *tests], plugins=plugins))
        if trace is not None:
            cov.stop()
            data = cov.get_data()
            by_line: dict[int, set] = {}
            for measured in data.measured_files():
                for line, contexts in data.contexts_by_lineno(measured).items():
                    by_line.setdefault(line, set()).update(contexts)
            trace[1].write_text(json.dumps({line: sorted(c) for line, c in by_line.items()}))
        os._exit(rc)
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
    """Per module: mutants run, killed, survived, kill rate (string-only mutants apart). A mutant recorded in
    several files counts once, with its last record (`--summary run.jsonl rerun.jsonl`: the re-run's verdict)."""
    last = {}
    for path in paths:
        for record in map(json.loads, open(path)):
            last[record["module"], record["line"], record["diff"]] = record["status"]
    rows: dict[str, dict[str, int]] = {}
    for (module, _, _), status in last.items():
        counts = rows.setdefault(module, {"killed": 0, "survived": 0, "unexecuted": 0, "string": 0, "annotation": 0})
        counts[status] += 1
    print("| module | mutants | killed | survived | of which never executed | kill rate | string-only | annotation-only |\n"
          "|---|---|---|---|---|---|---|---|")
    for module, c in rows.items():
        survived = c["survived"] + c["unexecuted"]
        total = c["killed"] + survived
        print(f"| {module} | {total} | {c['killed']} | {survived} | {c['unexecuted']} | "
              f"{100 * c['killed'] / max(total, 1):.0f}% | {c['string']} | {c['annotation']} |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--until", help="stop starting mutants after this UTC time (HH:MM)")
    parser.add_argument("--out", default="generated_mutants.jsonl")
    parser.add_argument("--summary", nargs="+", metavar="JSONL")
    parser.add_argument("--rerun", metavar="JSONL", help="run only the survivors recorded there (same module source)")
    args = parser.parse_args()
    wanted = None
    if args.rerun:
        wanted = {(r["module"], r["line"], r["diff"]) for r in map(json.loads, open(args.rerun))
                  if r["status"] in ("survived", "unexecuted")}
        args.modules = args.modules or sorted({module for module, _, _ in wanted})
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
    done = {(r["module"], r["line"], r["diff"]) for r in map(json.loads, open(args.out))} \
        if os.path.exists(args.out) else set()  # an interrupted run goes on where it stopped
    out = open(args.out, "a")
    with tempfile.TemporaryDirectory(prefix="ganrun-generated-") as tmp:
        repo = Path(tmp) / "repo"
        copy_repo(repo)
        for module in args.modules or MODULES:
            tests, target = MODULES[module], repo / module
            original = target.read_text()
            trace = Path(tmp) / (target.name + ".json")
            name = module.removesuffix(".py").replace("/", ".")
            if run_tests(repo, tests, (target, trace, name)) != 0:
                print(f"{module}: the unmutated tests fail", file=sys.stderr)
                continue
            runs = {int(line): contexts for line, contexts in json.loads(trace.read_text()).items()}
            for mutation_id, mutated in mutants(original, module):
                now = time.gmtime()
                if until and (now.tm_hour, now.tm_min) >= (until.tm_hour, until.tm_min):
                    return 0
                old, new = original.splitlines(), mutated.splitlines()
                lineno, diff = mutation_id.line_number + 1, diff_of(original, mutated)
                key = (module, lineno, diff)
                if (wanted is not None and key not in wanted) or key in done:
                    continue
                lines = [i + 1 for i, (a, b) in enumerate(zip(old, new)) if a != b]
                if lines and all(string_only(old[i - 1], new[i - 1]) for i in lines):
                    status = "string"
                elif annotation_only(original, mutated):
                    status = "annotation"
                elif lines and not any(runs.get(line) for line in lines):
                    status = "unexecuted"
                else:
                    # Only the tests that execute a changed line can see the mutant (a test that never reaches it
                    # runs exactly as before); a line run at import time ("") may affect any test: all of them.
                    selected = set().union(*(runs.get(line, ()) for line in lines))
                    selection = tests if "" in selected else sorted(selected)
                    target.write_text(mutated)
                    try:
                        rc = run_tests(repo, selection)
                    finally:
                        target.write_text(original)
                    status = "killed" if rc not in (0, 5) else "survived"
                out.write(json.dumps({"module": module, "line": lineno, "status": status, "diff": diff}) + "\n")
                out.flush()
                print(f"{status:8s} {module}:{lineno} {diff[:120]}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
