"""Image-to-image benchmark: pix2pix (model=pix2pix) on Fashion-MNIST after a fixed number of CPU steps, against
the classical answer to each task, on the first 1000 test images (PSNR in dB per image then averaged, SSIM; both
on [0, 1]):

- task=superres (x4): vs bicubic upsampling of the antialiased low-res image (G's own input);
- task=inpaint (rectangles of 25-50 % of the side): vs filling the hole with the mean of the image's visible pixels;
- task=denoise (sigma 0.1 of the [0, 1] range): vs the noisy input.

    python benchmarks/i2i_baselines.py                   # 500 steps per task, batch 16, seed 0
    python benchmarks/i2i_baselines.py --steps 2000 --tasks superres --grid grids/

Runs `ganrun` itself (one job per task), then scores the run's final G with ganrun.task_report on the evaluation
set and writes an input | output | target grid of its first pairs (`--grid`) to look at.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVAL_SAMPLES = 1000
COMMON = ["model=pix2pix", "model.generator.width=32", "model.discriminator.width=32", "model.discriminator.n_layers=1",
          "trainer.batch_size=16", "metrics.every=0", "metrics.final_num_samples=0", "ema.enabled=false",
          f"task.eval_samples={EVAL_SAMPLES}"]


def train(task: str, steps: int, seed: int, out: Path) -> tuple[Path, float]:
    run_dir = out / task
    installed = Path(sys.executable).with_name("ganrun")  # this environment's ganrun, not another on PATH
    command = [str(installed) if installed.exists() else shutil.which("ganrun") or "ganrun", f"task={task}", *COMMON, f"seed={seed}", f"trainer.steps={steps}",
               f"trainer.log_every={max(steps // 10, 1)}", f"trainer.sample_every={steps}",
               f"trainer.ckpt_every={steps}", f"hydra.run.dir={run_dir}"]
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"run failed: {' '.join(command)}")
    return run_dir, time.time() - start


def mean_filled(inputs, channels: int):
    """The inpainting baseline: each hole filled with the mean of its image's visible pixels."""
    image, mask = inputs[:, :channels], inputs[:, channels:]
    visible = (1 - mask).expand_as(image)
    mean = (image * visible).sum((1, 2, 3), keepdim=True) / visible.sum((1, 2, 3), keepdim=True)
    return image * (1 - mask) + mean * mask


def score(run_dir: Path, grid_dir: Path | None) -> dict:
    import torchvision

    from ganrun.config import build
    from ganrun.data import load_dataset
    from ganrun.outputs import load_generator
    from ganrun.task_report import EvalPairs, scores

    G, cfg, _, _ = load_generator(run_dir, "cpu", image_to_image=True)
    source, _ = load_dataset(cfg.dataset)
    task = build(cfg.task)
    pairs = EvalPairs(task, cfg.dataset, source, "cpu", cfg.seed, 250)
    channels = pairs.channels
    baseline = mean_filled(pairs.inputs, channels) if task.name == "inpaint" else pairs.inputs[:, :channels]
    outputs = pairs.outputs(G, pairs.inputs)
    if grid_dir is not None:
        grid_dir.mkdir(parents=True, exist_ok=True)
        torchvision.utils.save_image(pairs.grid(G, 16), grid_dir / f"{task.name}.png")
    result = {f"{k}_G": float(v) for k, v in scores(outputs, pairs.targets).items()}
    result.update({f"{k}_baseline": float(v) for k, v in scores(baseline, pairs.targets).items()})
    result["L1_G"] = float((outputs - pairs.targets).abs().mean() / 2)  # on [0, 1]
    result["L1_baseline"] = float((baseline - pairs.targets).abs().mean() / 2)
    return result


BASELINES = {"superres": "bicubic x4", "inpaint": "hole = mean of visible pixels", "denoise": "noisy input"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", default=["superres", "inpaint", "denoise"])
    parser.add_argument("--grid", type=Path, default=None, help="folder for the input | output | target grids")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            run_dir, seconds = train(task, args.steps, args.seed, Path(tmp))
            rows.append((task, seconds, score(run_dir, args.grid)))
    print(f"Fashion-MNIST (32 px), {args.steps} steps of batch 16 on the CPU, seed {args.seed}, "
          f"first {EVAL_SAMPLES} test images\n")
    print("| task | baseline | PSNR baseline | PSNR pix2pix | SSIM baseline | SSIM pix2pix | L1 baseline | L1 pix2pix "
          "| train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, seconds, r in rows:
        print(f"| {task} | {BASELINES[task]} | {r['PSNR_baseline']:.2f} | {r['PSNR_G']:.2f} | "
              f"{r['SSIM_baseline']:.3f} | {r['SSIM_G']:.3f} | {r['L1_baseline']:.4f} | {r['L1_G']:.4f} | "
              f"{seconds:.0f} |")


if __name__ == "__main__":
    main()
