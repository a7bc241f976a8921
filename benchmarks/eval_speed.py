"""Time one evaluation of 10k generated samples with the offline extractor, with and without the real-data
statistics cache, and report the offline classifier's test accuracy.

    python benchmarks/eval_speed.py [--num-samples 10000] [--checkpoint RUN_DIR] [--cache-dir DIR]
    python benchmarks/eval_speed.py --random-features [--dim 2048] [--num-samples 10000] [--device cuda]

Uses Fashion-MNIST (apt-get install dataset-fashion-mnist). The classifier is trained once into the cache
(minutes on a CPU) before timing; "without cache" deletes only the real statistics.

`--random-features` times only the score maths (statistics, FID, KID with the default 100 subsets of 1000,
precision/recall) on random features of Inception's 2048 dimensions: no data, no network.
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


def time_scores(num_samples: int, dim: int, device: str) -> dict:
    """Seconds of each score on `num_samples` random `dim`-d real and generated features on `device`."""
    from ganrun.metrics import scores

    generator = torch.Generator().manual_seed(0)
    real = torch.randn(num_samples, dim, generator=generator).to(device)
    fake = (torch.randn(num_samples, dim, generator=generator) * 1.1 + 0.1).to(device)
    timings = {}

    def timed(name, fn):
        start = time.perf_counter()
        value = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        timings[name] = time.perf_counter() - start
        return value

    real_stats = timed("statistics (real)", lambda: scores.feature_statistics(real))
    fake_stats = timed("statistics (generated)", lambda: scores.feature_statistics(fake))
    timed("FID", lambda: scores.frechet_distance(*real_stats, *fake_stats))
    timed("KID (100 subsets of 1000)", lambda: scores.kernel_inception_distance(real, fake, 100, 1000))
    timed("precision/recall (k=3)", lambda: scores.precision_recall(real, fake, k=3))
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--checkpoint", default=None, help="score this run's generator (default: untrained DCGAN)")
    parser.add_argument("--cache-dir", default=str(Path("~/.cache/ganrun").expanduser()))
    parser.add_argument("--random-features", action="store_true", help="time the score maths alone (see above)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.random_features:
        timings = time_scores(args.num_samples, args.dim, args.device)
        print(f"torch threads: {torch.get_num_threads()}, device: {args.device}, {args.num_samples} real and "
              f"{args.num_samples} generated random {args.dim}-d features")
        for name, seconds in {**timings, "total": sum(timings.values())}.items():
            print(f"{name:28s}: {seconds:7.2f} s")
        return
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
