"""`experiment=r3gan_small` against the default `ganrun` at equal CPU time: FID against CPU seconds.

Both arms train on Fashion-MNIST padded to 32 px (the default dataset: dataset.resolution=32 dataset.resize=pad),
batch 64, on the CPU with one torch thread, one process per arm and seed (`--arm`, `--seed`; run them side by
side). The clock is the training process's CPU time (time.process_time(), from before the run is built, data
loading included), not wall time: the machine is shared, and CPU time is what the arm itself spent. Each
checkpoint (every --snap-every steps) records the CPU seconds at which it was written. `--report` scores every
snapshot, raw and EMA G, with ganrun's own evaluator (on CPU: the offline Fashion-MNIST classifier's features,
the FID ganrun reports) and prints FID against CPU seconds, and FID at equal CPU time (the last snapshot of each
run within the smallest final CPU time of all runs).

The modern arm's schedules follow its run (length null: the whole budget, given here as trainer.kimg); its EMA
half-life ends at a quarter of the budget, R3GAN's ratio (5000 of 20000 kimg), as the preset's 80 of 320.

    python benchmarks/modern_vs_default.py --arm default --seed 0 --steps 600 &
    python benchmarks/modern_vs_default.py --arm r3gan_small --seed 0 --steps 400 &
    ... (seed 1)
    python benchmarks/modern_vs_default.py --report
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun import checkpoint, run_state
from ganrun.metrics.report import evaluate_generator, make_evaluator
from ganrun.outputs import load_generator
from ganrun.train import train

BATCH = 64
ARMS = {"default": [], "r3gan_small": ["experiment=r3gan_small"]}


def config(root: str, overrides: list[str]):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        given = [f"dataset.source.root={root}", "trainer.device=cpu", "trainer.num_workers=0",
                 f"trainer.sample_every={10**9}", "metrics.every=0", "metrics.final_num_samples=0", *overrides]
        return compose("config", overrides=given), given


def run(arm: str, seed: int, steps: int, snap_every: int, root: str, out: Path) -> None:
    """Train one arm; OUT/ARM_sSEED/bench_cpu.json: {step: CPU seconds when its checkpoint was written}."""
    run_dir = out / f"{arm}_s{seed}"
    extra = []
    if arm == "r3gan_small":  # the budget in images, which the schedules span; the EMA half-life ends at 1/4
        kimg = steps * BATCH / 1000
        extra = [f"trainer.kimg={kimg}", f"schedules.ema.end={kimg / 4}"]
    else:
        extra = [f"trainer.steps={steps}"]
    cpu_start = time.process_time()
    cfg, given = config(root, [*ARMS[arm], *extra, f"trainer.batch_size={BATCH}", f"seed={seed}",
                               f"trainer.ckpt_every={snap_every}", "trainer.keep_ckpts=100000"])
    cpu: dict[int, float] = {}
    save = run_state.RunState.save

    def timed_save(self, path, *args, **kwargs):  # the CPU time before writing: saving is not training
        cpu.setdefault(int(self.step), time.process_time() - cpu_start)
        (run_dir / "bench_cpu.json").write_text(json.dumps(cpu))  # kept if the run is stopped early
        return save(self, path, *args, **kwargs)

    run_state.RunState.save = timed_save
    try:
        train(cfg, run_dir, given)
    finally:
        run_state.RunState.save = save


def report(out: Path, root: str, samples: int, num_real: int, every: int, only: list[str]) -> None:
    cfg, _ = config(root, [f"metrics.num_real={num_real}"])
    # largest: sized as an evaluation of 5000+ samples, so the offline classifier is trained on the whole training
    # split (the runs themselves evaluate nothing, which would size it as a smoke run's)
    evaluator = make_evaluator(cfg.metrics, cfg.dataset, torch.device("cpu"), largest=max(samples, 5000))
    curves = {}
    for run_dir in sorted(p for p in out.iterdir() if (p / "bench_cpu.json").exists()):
        if only and run_dir.name not in only:
            continue
        scores_path = run_dir / "bench_scores.json"  # one file per run: runs can be scored in parallel processes
        scores = json.loads(scores_path.read_text()) if scores_path.exists() else {}
        cpu = {int(k): v for k, v in json.loads((run_dir / "bench_cpu.json").read_text()).items()}
        for step in sorted(s for s in cpu if s % every == 0 or s == max(cpu)):
            path = checkpoint.checkpoint_path(run_dir, step)
            for which, ema in (("raw", False), ("ema", True)):
                key = f"{run_dir.name}@{step}/{which}@{samples}"
                if key not in scores:
                    G, saved, _, _ = load_generator(str(path), "cpu", ema=ema)
                    scores[key] = evaluate_generator(evaluator, G, saved.model.z_dim, samples, seed=0)["metrics"]["FID"]
                    scores_path.write_text(json.dumps(scores, indent=1))
                curves.setdefault((run_dir.name, which), []).append((step, cpu[step], scores[key]))
    print(f"\nFashion-MNIST padded to 32 px, batch {BATCH}, CPU, {samples} generated vs {evaluator.real['n']} real "
          f"images per score, {evaluator.extractor.protocol['extractor']}\n")
    print("| run | G | step | CPU s | FID |\n|---|---|---|---|---|")
    for (name, which), points in curves.items():
        for step, seconds, fid in points:
            print(f"| {name} | {which} | {step} | {seconds:.0f} | {fid:.2f} |")
    budget = min(points[-1][1] for points in curves.values())
    print(f"\nAt equal CPU time (the last snapshot within {budget:.0f} CPU s):\n\n| run | G | step | CPU s | FID |\n"
          "|---|---|---|---|---|")
    for (name, which), points in curves.items():
        step, seconds, fid = max((p for p in points if p[1] <= budget + 1e-9), key=lambda p: p[1])
        print(f"| {name} | {which} | {step} | {seconds:.0f} | {fid:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", choices=sorted(ARMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600, help="generator steps of this arm's run")
    parser.add_argument("--snap-every", type=int, default=100)
    parser.add_argument("--report", action="store_true", help="score every snapshot in --out and print the curves")
    parser.add_argument("--score-every", type=int, default=100, help="score the snapshots at multiples of this step")
    parser.add_argument("--only", nargs="*", default=[], help="with --report: score these runs (OUT/NAME) only")
    parser.add_argument("--samples", type=int, default=2000, help="generated samples per score")
    parser.add_argument("--num-real", type=int, default=5000, help="metrics.num_real of the evaluator")
    parser.add_argument("--root", default="data", help="dataset.source.root (Debian's package is found anyway)")
    parser.add_argument("--out", default="outputs/modern_vs_default")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(out, args.root, args.samples, args.num_real, args.score_every, args.only)
    else:
        run(args.arm, args.seed, args.steps, args.snap_every, args.root, out)


if __name__ == "__main__":
    main()
