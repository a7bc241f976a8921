"""Mutation pass: apply one deliberate error at a time to ganrun's science (losses, penalties, augmentation,
architectures, conditioning, metrics, the loop's maths), run the fast tests that should catch it, print a kill table.

Each mutant is made in a temporary copy of the repository (the working tree is never touched), and the tests run
there with that copy first on sys.path (its conf/ linked in as ganrun/conf, which the editable install would
otherwise take from the working tree). A mutant is *killed* when a test fails; *survived* means the suite cannot
tell the wrong version from the right one.

    python benchmarks/mutation_pass.py            # all mutants
    python benchmarks/mutation_pass.py kid hinge  # the mutants whose name contains one of these words
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Mutant:
    name: str
    path: str  # file relative to the repository root
    old: str  # exact text, must occur once
    new: str
    tests: tuple[str, ...]  # pytest node ids or files (fast tier)


REG = ("tests/test_regularizers.py", "tests/test_science.py")
LOSS = ("tests/test_losses.py", "tests/test_science.py")
AUG = ("tests/test_augment.py", "tests/test_science.py")
MODEL = ("tests/test_models.py", "tests/test_presets.py", "tests/test_science.py")
METRIC = ("tests/test_metric_references.py",)
OBJ = ("tests/test_objective.py", "tests/test_science.py")

MUTANTS = [
    # penalties
    Mutant("GP epsilon per element instead of per sample", "ganrun/regularizers.py",
           "eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)",
           "eps = torch.rand_like(real)", REG),
    Mutant("GP one-sided clamp dropped", "ganrun/regularizers.py",
           "gap = gap.clamp(min=0.0)", "gap = gap", REG),
    Mutant("lazy penalty not scaled by its interval", "ganrun/regularizers.py",
           "return None if penalty is None else self.weight * self.every * penalty",
           "return None if penalty is None else self.weight * penalty", REG),
    Mutant("R1 without the 1/2", "ganrun/regularizers.py",
           "return 0.5 * input_gradient_norm(critic, x).pow(2).mean()",
           "return input_gradient_norm(critic, x).pow(2).mean()", REG),
    Mutant("R2 on reals instead of fakes", "ganrun/regularizers.py",
           "return zero_centred(critic, fake)", "return zero_centred(critic, real)", REG),
    Mutant("R1R2 without R2", "ganrun/regularizers.py",
           "return zero_centred(critic, real) + zero_centred(critic, fake)", "return zero_centred(critic, real)", REG),
    Mutant("penalties never through the augmentation", "ganrun/regularizers.py",
           "if not through_augment or self.augment is None:", "if True:", REG),
    Mutant("LeCam averages not debiased", "ganrun/regularizers.py",
           "return self.averages / self.debias", "return self.averages", REG),
    Mutant("LeCam without the relu", "ganrun/regularizers.py",
           "penalty = (torch.relu(ctx.real_out - alpha_fake).pow(2).mean()",
           "penalty = ((ctx.real_out - alpha_fake).pow(2).mean()", REG),
    Mutant("LeCam averages only on the steps it is due", "ganrun/regularizers.py",
           "        alpha_real, alpha_fake = self.update(ctx.real_out, ctx.fake_out)\n        if not self.due(ctx):\n"
           "            return None\n",
           "        if not self.due(ctx):\n            return None\n"
           "        alpha_real, alpha_fake = self.update(ctx.real_out, ctx.fake_out)\n", REG),
    Mutant("DRAGAN perturbation per sample instead of per element", "ganrun/regularizers.py",
           "delta = self.spread * real.std() * torch.rand_like(real)",
           "delta = self.spread * real.std() * torch.rand(real.shape[0], *([1] * (real.ndim - 1)))", REG),
    Mutant("DRAGAN alpha per element instead of per sample", "ganrun/regularizers.py",
           "alpha = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)",
           "alpha = torch.rand_like(real)", REG),
    Mutant("BN warning never fires", "ganrun/regularizers.py",
           "        return []\n    names = [name for name, reg in regularizers.items() if getattr(reg, \"input_gradient\", False) "
           "and reg.weight]", "        return []\n    names = []", ("tests/test_presets.py",)),
    Mutant("regularizer group adds a second GP instead of replacing", "ganrun/regularizers.py",
           "                combined.pop(carried_name)\n", "", ("tests/test_presets.py",)),
    # losses
    Mutant("hinge margin 0.5 instead of 1", "ganrun/losses.py",
           "return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()",
           "return F.relu(1.0 - real).mean() + F.relu(0.5 + fake).mean()", LOSS),
    Mutant("LSGAN fake target -1 instead of 0", "ganrun/losses.py",
           "0.5 * fake.pow(2).mean()", "0.5 * (fake + 1.0).pow(2).mean()", LOSS),
    Mutant("non-saturating G loss is the minimax one", "ganrun/losses.py",
           "    def g_loss(self, fake, real=None):\n        return F.softplus(-fake).mean()",
           "    def g_loss(self, fake, real=None):\n        return -F.softplus(fake).mean()", LOSS),
    Mutant("loss=wgan_gp keeps BatchNorm in D", "conf/loss/wgan_gp.yaml", "    norm: layer\n", "    norm: batch\n",
           ("tests/test_presets.py",)),
    Mutant("SNGAN preset G batch 64", "conf/experiment/sngan.yaml", "  g_batch_size: 128\n", "  g_batch_size: null\n",
           ("tests/test_presets.py",)),
    Mutant("WGAN critic sign flipped", "ganrun/losses.py",
           "return fake.mean() - real.mean()", "return real.mean() - fake.mean()", LOSS),
    Mutant("RpGAN compares with the batch mean", "ganrun/losses.py",
           "return F.softplus(fake - real).mean()", "return F.softplus(fake - real.mean()).mean()", LOSS),
    Mutant("RaGAN G does not swap the roles", "ganrun/losses.py",
           "return self.towards_real(fake - real.mean()) + self.towards_fake(real - fake.mean())",
           "return self.towards_real(real - fake.mean()) + self.towards_fake(fake - real.mean())", LOSS),
    # augmentation
    Mutant("instance noise per sample instead of per element", "ganrun/augment.py",
           "return x + sigma * torch.randn_like(x) if sigma > 0 else x",
           "return x + sigma * torch.randn(x.shape[0], *([1] * (x.ndim - 1))) if sigma > 0 else x", AUG),
    Mutant("DiffAugment translation one shift per batch", "ganrun/augment.py",
           "dy = torch.randint(-max_dy, max_dy + 1, (batch, 1, 1), device=x.device)\n"
           "    dx = torch.randint(-max_dx, max_dx + 1, (batch, 1, 1), device=x.device)",
           "dy = torch.randint(-max_dy, max_dy + 1, (1, 1, 1), device=x.device)\n"
           "    dx = torch.randint(-max_dx, max_dx + 1, (1, 1, 1), device=x.device)", AUG),
    Mutant("DiffAugment only on fakes in D's step", "ganrun/objective.py",
           "real, real_grads = self.d_input(real, \"real\", shared, step)", "real_grads = {}", OBJ),
    Mutant("zero-centred penalties never share D's forward", "ganrun/objective.py",
           "if eager(self.D) is not self.D:\n            return set()", "if True:\n            return set()", OBJ),
    Mutant("shared penalty at D's augmented input when asked through the augmentation", "ganrun/regularizers.py",
           "inputs = [ctx.grad_inputs.get((kind, self.through_augment)) for kind in self.at]",
           "inputs = [ctx.grad_inputs.get((kind, False)) for kind in self.at]", REG),
    Mutant("RpGAN's G step on D's last real batch", "ganrun/objective.py",
           "if not getattr(self.loss, \"fresh_real_in_g\", False):", "if True:", OBJ),
    Mutant("DiffAugment not on G's fakes in G's step", "ganrun/objective.py",
           "fake = self.augment(generated, step)", "fake = generated", OBJ),
    Mutant("cutout of a quarter instead of half the size", "ganrun/augment.py",
           "def cutout(x: torch.Tensor, ratio: float = 0.5)", "def cutout(x: torch.Tensor, ratio: float = 0.25)", AUG),
    # architecture details
    Mutant("SNGAN D with a ReLU before its first conv", "ganrun/models/resnet.py",
           "*([] if first else [nn.ReLU()])", "nn.ReLU()", MODEL),
    Mutant("SNGAN D mean pooling instead of sum", "ganrun/models/resnet.py",
           "F.relu(self.blocks(x)).sum(dim=(2, 3))", "F.relu(self.blocks(x)).mean(dim=(2, 3))", MODEL),
    Mutant("SNGAN residual init gain 1 instead of sqrt(2)", "ganrun/models/resnet.py",
           "_init(main, gain=math.sqrt(2))", "_init(main)", MODEL),
    Mutant("SNGAN D head with a bias", "ganrun/models/resnet.py",
           "self.make_heads(widths[-1], bias=False)", "self.make_heads(widths[-1])", MODEL),
    Mutant("no spectral norm on the projection embedding", "ganrun/models/layers.py",
           "+ ((nn.Embedding,) if kind == \"spectral\" else ())", "+ ()", MODEL),
    Mutant("DCGAN init std 0.01 instead of 0.02", "ganrun/models/layers.py",
           "nn.init.normal_(layer.weight, 0.0, 0.02)", "nn.init.normal_(layer.weight, 0.0, 0.01)", MODEL),
    Mutant("DCGAN D LeakyReLU slope 0.1", "ganrun/models/dcgan.py",
           "layers = [nn.Conv2d(self.in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]",
           "layers = [nn.Conv2d(self.in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.1, True)]", MODEL),
    # conditioning
    Mutant("projection D without the embedding term", "ganrun/models/conditioning.py",
           "out = out + (self.embed(y) * h).sum(dim=1)", "out = out", MODEL),
    Mutant("concat D ignores the label", "ganrun/models/conditioning.py",
           "            x = self.join_labels(x, y)", "            x = self.join_labels(x, torch.zeros_like(y))",
           MODEL),
    Mutant("AC-GAN without the fake-class term in D", "ganrun/models/conditioning.py",
           "+ F.cross_entropy(ctx.fake_classes, ctx.labels))", "+ 0 * F.cross_entropy(ctx.fake_classes, ctx.labels))",
           OBJ),
    Mutant("AC-GAN G term dropped", "ganrun/models/conditioning.py",
           "        return self.weight * F.cross_entropy(ctx.fake_classes, ctx.labels)",
           "        return 0 * F.cross_entropy(ctx.fake_classes, ctx.labels)", OBJ),
    Mutant("conditional D fakes with fresh labels instead of the real batch's", "ganrun/objective.py",
           "generated = self.G(z, y)\n", "generated = self.G(z, y if y is None else y.roll(1))\n", OBJ),
    Mutant("G batch ignores trainer.g_batch_size", "ganrun/train.py",
           "g_batch_size = trainer.g_batch_size or trainer.batch_size", "g_batch_size = trainer.batch_size",
           ("tests/test_run_state.py::test_g_batch_size_sets_the_fakes_per_generator_step",)),
    # the loop and its run state: exact resume, reused fakes, logging
    Mutant("reused fakes conditioned on fresh labels in G's step", "ganrun/objective.py",
           "return d_step.fake, d_step.labels", "return d_step.fake, random_labels(self.G, batch_size, d_step.fake.device)",
           ("tests/test_objective.py",)),
    Mutant("fakes reused with n_critic > 1", "ganrun/config.py", "return n_critic == 1 and ", "return ",
           ("tests/test_objective.py",)),
    Mutant("lazy penalties count G steps instead of D steps", "ganrun/train.py",
           "d_step=state.step * n_critic + i", "d_step=state.step + i", ("tests/test_golden.py",)),
    Mutant("D's logged losses summed over its n_critic steps", "ganrun/train.py",
           "reporter.add(d_step.logs, divide_by=n_critic)", "reporter.add(d_step.logs)", ("tests/test_golden.py",)),
    Mutant("data position not advanced past an epoch end", "ganrun/data/stream.py",
           "self.epoch, self.batch = self.epoch + 1, 0", "self.batch = 0", ("tests/test_data.py",)),
    Mutant("evaluation draws from the training RNG", "ganrun/runtime.py",
           "    with torch.random.fork_rng(devices=[device] if device.type == \"cuda\" else []):\n        yield",
           "    yield", ("tests/test_run_state.py::test_metrics_never_move_the_training_rng",)),
    # a saved run is data (issue 18)
    Mutant("a _target_ allowed in any group that ships it somewhere", "ganrun/trust.py",
           "target in shipped_targets().get(group, ())", "target in set().union(*shipped_targets().values())",
           ("tests/test_run_folder_is_data.py",)),
    Mutant("trusted targets taken as prefixes", "ganrun/trust.py", "or target in user_trusted())",
           "or any(target.startswith(e) for e in user_trusted()))", ("tests/test_run_folder_is_data.py",)),
    Mutant("interpolations in saved values let through", "ganrun/trust.py",
           'elif isinstance(node, str) and "${" in node:', "elif False:", ("tests/test_run_folder_is_data.py",)),
    Mutant("'..' kept in sweep job and cache names", "ganrun/trust.py",
           "    name = re.sub(r\"\\.{2,}\", \"_\", name)\n", "", ("tests/test_security.py",)),
    Mutant("checkpoint CRCs not checked", "ganrun/checkpoint.py", "bad = archive.testzip()", "bad = None",
           ("tests/test_run_folder_is_data.py",)),
    Mutant("compressed checkpoint entries allowed", "ganrun/checkpoint.py",
           "if any(e.compress_type != zipfile.ZIP_STORED for e in entries):", "if False:",
           ("tests/test_run_folder_is_data.py",)),
    Mutant("unknown checkpoint formats accepted", "ganrun/checkpoint.py",
           'if state.get("format") != CHECKPOINT_FORMAT:', "if False:", ("tests/test_run_folder_is_data.py",)),
    # resume and run dirs
    Mutant("derived lengths never follow a changed trainer.steps", "ganrun/resume.py",
           "            assign(merged, key, derive(merged))\n", "            pass\n",
           ("tests/test_run_state.py::test_resumable_keys_change_and_derived_lengths_follow_unless_set_by_hand",)),
    Mutant("an explicit resumable key not applied", "ganrun/resume.py",
           "            assign(merged, key, select(current, key))\n", "            pass\n",
           ("tests/test_run_state.py::test_resumable_keys_change_and_derived_lengths_follow_unless_set_by_hand",)),
    Mutant("forced changes not recorded in the run", "ganrun/train.py",
           "        state.record_forced_changes(forced)\n", "",
           ("tests/test_run_state.py::test_a_forced_change_is_applied_and_recorded_in_the_run",)),
    Mutant("failure-mode detector not restored on resume", "ganrun/diagnostics.py",
           "        self.__dict__.update(loaded)\n", "", ("tests/test_diagnostics.py",)),
    Mutant("a run dir in use not checked before Hydra starts", "ganrun/rundir.py",
           "        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe: released when the descriptor closes below\n",
           "        pass\n", ("tests/test_rundir.py",)),
    Mutant("links in a run dir followed", "ganrun/rundir.py",
           "            if not stat.S_ISDIR(info.st_mode) and not (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):",
           "            if False:",
           ("tests/test_run_folder_is_data.py",)),
    Mutant("a new run takes over another run's dir", "ganrun/rundir.py",
           "    if holds_a_run(run_dir):\n        raise", "    if False:\n        raise",
           ("tests/test_run_state.py::test_a_new_run_in_a_dir_holding_another_runs_checkpoints_is_refused",)),
    # metrics
    Mutant("KID kernel degree 2", "ganrun/metrics/scores.py", "(a @ b.T / d + 1) ** 3", "(a @ b.T / d + 1) ** 2",
           METRIC),
    Mutant("KID std with ddof=1", "ganrun/metrics/scores.py",
           "return float(np.mean(values)), float(np.std(values))",
           "return float(np.mean(values)), float(np.std(values, ddof=1))", METRIC),
    Mutant("precision/recall k off by one", "ganrun/metrics/scores.py", "kthvalue(k + 1, dim=1)",
           "kthvalue(k, dim=1)", METRIC),
    Mutant("IS std with ddof=1", "ganrun/metrics/scores.py",
           "return float(np.mean(scores)), float(np.std(scores))",
           "return float(np.mean(scores)), float(np.std(scores, ddof=1))", METRIC),
    Mutant("IS on torch.chunk splits", "ganrun/metrics/scores.py",
           "part = p[i * n // splits : (i + 1) * n // splits]", "part = p.chunk(splits)[i]", METRIC),
    Mutant("FID without the factor 2 on the cross term", "ganrun/metrics/scores.py",
           "- 2 * sqrt_trace", "- sqrt_trace",
           ("tests/test_metrics.py::test_fid_equals_the_scipy_reference",)),
    Mutant("cache key without n_real", "ganrun/metrics/evaluator.py",
           "\"n_real\": n_real,\n", "\n", METRIC),
    Mutant("cache key without num_real_kept", "ganrun/metrics/evaluator.py",
           "\"n_kept\": min(metrics_cfg.num_real_kept, n_real), ", "", METRIC),
    Mutant("KID protocol reports the requested subset size", "ganrun/metrics/evaluator.py",
           "subsets of {kid_m},", "subsets of {self.cfg.kid_subset_size},", METRIC),
]


def copy_repo(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".git", "outputs", "multirun", "__pycache__", "*.egg-info", ".pytest_cache")
    shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True)
    # The editable install maps `ganrun.conf` to the working tree's conf/: give the copy its own, so that
    # mutants of the YAML configs take effect.
    (dest / "ganrun" / "conf").symlink_to(dest / "conf", target_is_directory=True)


def run_tests(repo: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider",
                           *tests], cwd=repo, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FAILED") or line.startswith("ERROR")]
    return proc.returncode, time.time() - start, (lines[0] if lines else proc.stdout.strip().splitlines()[-1])


def main(words: list[str]) -> int:
    if any(w in ("-h", "--help") for w in words):
        print(__doc__)
        return 0
    chosen = [m for m in MUTANTS if not words or any(w.lower() in m.name.lower() for w in words)]
    if not chosen:
        print(f"no mutant's name contains any of {words}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganrun-mutants-") as tmp:
        repo = Path(tmp) / "repo"
        copy_repo(repo)
        rc, seconds, _ = run_tests(repo, tuple(sorted({t for m in chosen for t in m.tests})))
        if rc != 0:
            print(f"the unmutated tests fail (rc {rc}): fix them first", file=sys.stderr)
            return 2
        for mutant in chosen:
            target = repo / mutant.path
            original = target.read_text()
            count = original.count(mutant.old)
            if count != 1:
                rows.append((mutant, "STALE", 0.0, f"pattern found {count} times"))
                continue
            target.write_text(original.replace(mutant.old, mutant.new))
            try:
                rc, seconds, detail = run_tests(repo, mutant.tests)
            finally:
                target.write_text(original)
            status = "killed" if rc not in (0, 5) else "SURVIVED"
            rows.append((mutant, status, seconds, detail))
            print(f"{status:8s} {seconds:5.1f}s  {mutant.name}", file=sys.stderr, flush=True)
    width = max(len(m.name) for m, *_ in rows)
    print(f"\n| {'mutant'.ljust(width)} | result | caught by |")
    print(f"|{'-' * (width + 2)}|--------|-----------|")
    for mutant, status, _, detail in rows:
        caught = detail.removeprefix("FAILED ").split(" - ")[0] if status == "killed" else detail
        print(f"| {mutant.name.ljust(width)} | {status} | {caught} |")
    killed = sum(status == "killed" for _, status, *_ in rows)
    print(f"\n{killed}/{len(rows)} mutants killed by the fast tier")
    return 0 if killed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
