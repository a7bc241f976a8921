"""Time one evaluation of 10k generated samples with the offline extractor, with and without the real-data
statistics cache, and report the offline classifier's test accuracy.

    python benchmarks/eval_speed.py [--num-samples 10000] [--checkpoint RUN_DIR] [--cache-dir DIR]

Uses Fashion-MNIST (apt-get install dataset-fashion-mnist). The classifier is trained once into the cache
(minutes on a CPU) before timing; "without cache" deletes only the real statistics.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.outputs import load_generator
from ganrun.config import build
from ganrun.metrics.evaluator import Evaluator
from ganrun.metrics.report import evaluate_generator


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--checkpoint", default=None, help="score this run's generator (default: untrained DCGAN)")
    parser.add_argument("--cache-dir", default=str(Path("~/.cache/ganrun").expanduser()))
    args = parser.parse_args()
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=["metrics.extractor=classifier", f"metrics.cache_dir={args.cache_dir}"])
    if args.checkpoint:
        G = load_generator(args.checkpoint)[0]
    else:
        torch.manual_seed(0)
        G = build(cfg.model.generator)
    Evaluator(cfg.metrics, cfg.dataset, "cpu")  # trains/caches the classifier once, outside the timings

    shutil.rmtree(Path(args.cache_dir) / "real_stats", ignore_errors=True)
    timings = {}
    for label in ("without real-statistics cache", "with real-statistics cache"):
        start = time.perf_counter()
        evaluator = Evaluator(cfg.metrics, cfg.dataset, "cpu")
        setup = time.perf_counter() - start
        result = evaluate_generator(evaluator, G, cfg.model.z_dim, args.num_samples, seed=0)
        timings[label] = (setup, time.perf_counter() - start, evaluator.stats_computed, evaluator.cache_hits)

    print(f"torch threads: {torch.get_num_threads()}, device: cpu, {args.num_samples} generated samples, "
          f"{result['protocol']['n_real']} real images (Fashion-MNIST {cfg.metrics.real_split})")
    print(f"offline classifier test accuracy: {result['protocol']['classifier_test_accuracy']:.4f}")
    for label, (setup, total, computed, hits) in timings.items():
        print(f"{label:32s}: {total:6.1f} s total ({setup:5.1f} s setup; stats computed {computed}, cache hits {hits})")
    print("metrics:", {k: round(v, 4) for k, v in result["metrics"].items()})


if __name__ == "__main__":
    main()
