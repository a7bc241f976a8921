"""task=style on Fashion-MNIST content: does the Gram distance to the style fall while the content loss stays bounded?

    python benchmarks/style_transfer.py                          # 300 CPU steps, a made stripes style
    python benchmarks/style_transfer.py --steps 600 --weights ~/vgg16-397923af.pth   # ImageNet VGG16 features

Makes a style folder (two images of diagonal stripes, a texture whose Gram matrix no garment has), trains
`task=style model=transformer_net` (small widths for the CPU) through ganrun itself, and prints, at every evaluation,
the fixed evaluation set's Gram distance to the style, the content loss, and the content images' own Gram distance
(where an unstylised output stands). The content | style | output grid of the last step is copied next to the
run as grid.png: look at it. Without --weights the features are the offline fallback (a fixed random VGG16, said in
the log and the protocol): the numbers are then not comparable with anything published.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from PIL import Image

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.train import train


def make_styles(folder: Path) -> Path:
    """Two 64 px grey images of diagonal stripes of periods 8 and 10 px."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:64, 0:64]
    for period in (8, 10):
        stripes = (((rows + cols) % period) < period // 2) * 255
        Image.fromarray(stripes.astype(np.uint8)).save(folder / f"stripes_{period}.png")
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50, help="steps between evaluations")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--weights", default=None, help="vgg16-397923af.pth (default: the offline fallback)")
    parser.add_argument("--root", default=None, help="Fashion-MNIST root (default: a temporary copy)")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ganrun-style-"))
    run_dir = Path(args.out) if args.out else work / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    styles = make_styles(work / "styles")
    overrides = [
        "task=style", "model=transformer_net", "dataset=fashion_mnist", f"task.style.root={styles}",
        f"dataset.source.root={args.root or work / 'data'}", "trainer.device=cpu", "trainer.num_workers=0",
        f"trainer.steps={args.steps}", f"trainer.batch_size={args.batch_size}", f"trainer.sample_every={args.steps}",
        f"trainer.log_every={args.every}", f"metrics.every={args.every}", "metrics.num_samples=16",
        "metrics.final_num_samples=16", "task.eval_samples=16", "model.generator.width=8",
        "model.generator.num_residual=3", "model.discriminator.width=16", "ema.enabled=false",
        f"task.features.download={'true' if args.weights else 'false'}",
        *([f"task.features.weights={args.weights}"] if args.weights else []),
    ]
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    start, cpu_start = time.perf_counter(), time.process_time()
    train(cfg, run_dir, overrides)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    print(f"{args.steps} steps, batch {args.batch_size}: {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU "
          f"({args.threads} thread(s)); features: {rows[-1]['protocol']['features']['network']}")
    print("step  style_distance  content_loss  style_distance_input")
    for row in rows:
        m = row["metrics"]
        print(f"{row['step']:>4}  {m['style_distance']:.5f}         {m['content_loss']:.5f}       "
              f"{m['style_distance_input']:.5f}   ({row['section']})")
    grid = sorted((run_dir / "samples").glob("step_*.png"))[-1]
    shutil.copy(grid, run_dir / "grid.png")
    print(f"grid: {run_dir / 'grid.png'} (content | style | output, 4 triplets per row)")


if __name__ == "__main__":
    main()
