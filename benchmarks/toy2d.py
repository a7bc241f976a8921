"""Toy 2-D benchmark: modes covered and % high-quality samples for several losses on ring8 and grid25.

Runs `ganrun` itself (one job per loss and dataset) and prints a markdown table from each run's metrics.json:

    python benchmarks/toy2d.py                       # 3000 generator steps per run, seed 0
    python benchmarks/toy2d.py --steps 10000 --seeds 0 1 2 --losses ns wgan_gp

Same MLP for every run (3 x 256 ReLU in G and D, linear G output), batch 256, Adam 2e-4 (0.5, 0.999);
WGAN-GP takes 5 critic steps per generator step as in its paper, the others 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CRITIC = {"wgan_gp": 5, "wgan": 5}


def run(dataset: str, loss: str, seed: int, steps: int, out: Path) -> dict:
    run_dir = out / f"{dataset}-{loss}-{seed}"
    command = [shutil.which("ganrun") or "ganrun", f"dataset={dataset}", "model=mlp", f"loss={loss}", f"seed={seed}",
               "model.generator.hidden=[256,256,256]", "model.discriminator.hidden=[256,256,256]",
               f"trainer.steps={steps}", "trainer.batch_size=256", f"trainer.n_critic={N_CRITIC.get(loss, 1)}",
               f"trainer.log_every={max(steps // 10, 1)}", f"trainer.sample_every={steps}", "metrics.every=0",
               "metrics.final_num_samples=2500", f"hydra.run.dir={run_dir}"]
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"run failed: {' '.join(command)}")
    metrics = json.loads((run_dir / "metrics.json").read_text())["final"]["metrics"]
    return {**metrics, "seconds": time.time() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ring8", "grid25"])
    parser.add_argument("--losses", nargs="+", default=["ns", "lsgan", "hinge", "wgan_gp", "ragan"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="ganrun-toy2d-"))
    print(f"{args.steps} generator steps per run, seeds {args.seeds}, runs in {out}\n")
    print("| dataset | loss | modes covered | high-quality samples | seconds per run |")
    print("|---|---|---|---|---|")
    for dataset in args.datasets:
        for loss in args.losses:
            results = [run(dataset, loss, seed, args.steps, out) for seed in args.seeds]
            modes = statistics.mean(r["modes_covered"] for r in results)
            quality = statistics.mean(r["high_quality_percent"] for r in results)
            seconds = statistics.mean(r["seconds"] for r in results)
            print(f"| {dataset} | {loss} | {modes:.1f} / {results[0]['num_modes']} | {quality:.1f}% | {seconds:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
