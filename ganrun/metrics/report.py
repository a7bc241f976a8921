"""Run a generator through the evaluator and report the result: TensorBoard, metrics.jsonl, metrics.json."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from ganrun.config import build
from ganrun.data import dataset_info
from ganrun.metrics.evaluator import Evaluator, MetricsUnavailable
from ganrun.models.conditioning import random_labels

log = logging.getLogger(__name__)
LOG_NAMES = {"metrics": "metrics", "metrics_final": "final metrics"}  # a section's TensorBoard tag -> the log's words


def make_evaluator(metrics_cfg, dataset_cfg, device, num_workers=0, largest: int | None = None) -> Evaluator | None:
    """The run's evaluator, or None (with the reason logged) when no extractor can be had. Toy 2-D datasets
    score themselves (modes covered, high-quality samples). `largest`: see `Evaluator`."""
    if dataset_info(dataset_cfg).points:
        return build(dataset_cfg.source)
    try:
        return Evaluator(metrics_cfg, dataset_cfg, device, num_workers, largest)
    except MetricsUnavailable as exc:
        log.warning("Metrics are off: %s", exc)
        return None


def evaluate_generator(evaluator: Evaluator, G, z_dim: int, num_samples: int, seed: int) -> dict:
    """Score G on the same latent vectors every time, without touching the training RNG (exact resume)."""
    device = next(G.parameters()).device
    generator = torch.Generator(device).manual_seed(seed + 1)
    was_training = G.training
    G.eval()

    @torch.no_grad()
    def generate(batch_size: int) -> torch.Tensor:
        z = torch.randn(batch_size, z_dim, device=device, generator=generator)
        return G(z, random_labels(G, batch_size, device, generator)).float()

    started = time.perf_counter()
    try:
        result = evaluator.evaluate(generate, num_samples)
    finally:
        G.train(was_training)
    return {**result, "seconds": round(time.perf_counter() - started, 3)}  # this device's cost, in the log line


def tag(name: str, result: dict, suffix: str = "", section: str = "metrics") -> str:
    """`metrics/FID_inception` or `metrics/FID_offline_classifier` (+ `_ema` for the averaged G): the extractor
    is part of every tag. The final report (another sample count) goes to `metrics_final/...`, never onto the
    training curve."""
    return f"{section}/{name}_{result['extractor']}{suffix}"


def log_result(writer, run_dir: Path, result: dict, step: int, suffix: str = "", section: str = "metrics") -> None:
    """`suffix` "_ema" marks the EMA generator's numbers, logged next to raw G's; `section` "metrics_final" the
    final report's."""
    for name, value in result["metrics"].items():
        if value is not None:
            writer.add_scalar(tag(name, result, suffix, section), value, step)
    writer.add_text(f"{section}/protocol_{result['extractor']}",
                    f"```\n{json.dumps(result['protocol'], indent=2)}\n```", step)
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "generator": "ema" if suffix else "raw", "section": section, **result})
                + "\n")
    shown = ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items() if v is not None and not k.endswith("_std"))
    protocol, seconds = result["protocol"], result.get("seconds")
    sizes = f"{protocol['n_generated']} samples" + (f" vs {protocol['n_real']} real" if "n_real" in protocol else "")
    log.info("step %d %s%s (%s, %s%s): %s", step, LOG_NAMES.get(section, section), " of EMA G" if suffix
             else "", result["extractor"], sizes, f", {seconds:.1f} s" if seconds is not None else "", shown)
