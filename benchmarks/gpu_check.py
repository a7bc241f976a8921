"""One check of ganrun on a GPU (issue 20), from the working tree alone (it writes its own tiny data):

1. host syncs per plain training step (ganrun.host_syncs, plus torch's own CUDA sync reports), default and
   conditional runs;
2. steps/s of ganrun against the hand-written loop of benchmarks/loop_overhead.py on the same DCGAN: ganrun's
   default (EMA on), ema.enabled=false, trainer.amp=true, trainer.compile=true, trainer.channels_last=true;
3. steps/s of trainer.compile=true with an input-gradient penalty (regularizer=r1, loss=wgan_gp);
4. the time of one evaluation of 10k generated samples (offline classifier features), and of the score maths
   alone on 10k random 2048-d features (Inception's size).

    python benchmarks/gpu_check.py                    # CUDA, under 8 minutes on one H100
    python benchmarks/gpu_check.py --device cpu --tiny  # what the slow test tier runs: tiny sizes, no compile
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import eval_speed  # noqa: E402
import loop_overhead  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from helpers import write_mnist_like  # noqa: E402  (the tests' tiny IDX writer)


def compose(root: Path, cache: Path, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import ganrun.resolvers  # noqa: F401

    GlobalHydra.instance().clear()
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return hydra_compose("config", overrides=[f"dataset.source.root={root}", "dataset.source.download=false",
                                                  f"metrics.cache_dir={cache}", *overrides])


def train(root: Path, cache: Path, *overrides: str):
    from ganrun.train import train as ganrun_train

    cfg = compose(root, cache, "metrics.every=0", "metrics.final_num_samples=0", "trainer.num_workers=0", *overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        return ganrun_train(cfg, Path(run_dir), list(overrides))


def syncs_per_plain_step(root: Path, cache: Path, device: str, *overrides: str) -> tuple[float, list[str]]:
    """Mean syncing calls per step over steps 2..9 of a 10-step run logging at step 10 only, and where."""
    from ganrun.host_syncs import per_training_step

    with per_training_step() as counter:
        train(root, cache, f"trainer.device={device}", "trainer.steps=10", "trainer.log_every=10",
              "trainer.sample_every=1000", "trainer.ckpt_every=1000", *overrides)
    plain = [c for c in counter.calls if c.label is not None and 2 <= c.label <= 9]
    return len(plain) / 8, sorted({f"{c.call} at {c.where}" for c in plain})


def steps_per_second(root: Path, cache: Path, device: str, steps: int, *overrides: str) -> float:
    """ganrun's throughput over the second half of `steps` (its last log window), in G steps/s."""
    result = train(root, cache, f"trainer.device={device}", f"trainer.steps={steps}",
                   f"trainer.log_every={max(1, steps // 2)}", f"trainer.batch_size={loop_overhead.BATCH}",
                   "trainer.ckpt_every=100000", "trainer.sample_every=100000", *overrides)
    return result.scalars["throughput/images_per_sec"] / loop_overhead.BATCH


def evaluation_seconds(root: Path, cache: Path, device: str, num_samples: int, *overrides: str) -> float:
    from ganrun.config import build
    from ganrun.metrics.evaluator import Evaluator
    from ganrun.metrics.report import evaluate_generator

    cfg = compose(root, cache, "metrics.extractor=classifier", "metrics.download=false", *overrides)
    Evaluator(cfg.metrics, cfg.dataset, device)  # trains and caches the classifier and real statistics first
    torch.manual_seed(0)
    G = build(cfg.model.generator).to(device)
    start = time.perf_counter()
    evaluate_generator(Evaluator(cfg.metrics, cfg.dataset, device), G, cfg.model.z_dim, num_samples, seed=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: checks the script runs, times nothing")
    args = parser.parse_args()
    device, tiny = args.device, args.tiny
    steps, eval_samples, feature_samples, dim = (4, 256, 300, 64) if tiny else (300, 10000, 10000, 2048)
    small = ["model.generator.width=8", "model.discriminator.width=8"] if tiny else []
    start = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"ganrun GPU check on {name} (torch {torch.__version__}){' [tiny sizes]' if tiny else ''}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, cache = tmp / "data", tmp / "cache"
        n_images = 512 if tiny else 8192
        write_mnist_like(root / "FashionMNIST" / "raw", n=n_images)
        common = ["trainer.batch_size=16"] if tiny else []

        print("\n1. host syncs per plain step (steps 2-9 of 10; 0 expected)")
        for label, overrides in (("default", []), ("conditional, fresh fakes",
                                                   ["model.conditioning=projection", "trainer.reuse_fakes=false"])):
            mean, where = syncs_per_plain_step(root, cache, device, *small, *common, *overrides)
            print(f"   {label:26s} {mean:.2f}" + "".join(f"\n      {w}" for w in where), flush=True)

        print(f"\n2. G steps/s ({loop_overhead.BATCH} images per step, second half of {steps} steps timed)")
        images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n_images, 1, 32, 32), dtype=np.uint8))
        hand = loop_overhead.handwritten(images, steps, steps // 2, torch.device(device))[0] / loop_overhead.BATCH
        print(f"   {'hand-written loop':26s} {hand:8.1f}", flush=True)
        variants = {"ganrun default (EMA on)": [], "ema.enabled=false": ["ema.enabled=false"],
                    "trainer.amp=true": ["trainer.amp=true"], "trainer.compile=true": ["trainer.compile=true"],
                    "trainer.channels_last=true": ["trainer.channels_last=true"]}
        for label, overrides in variants.items():
            if ("trainer.amp=true" in overrides and not device.startswith("cuda")) or (
                    tiny and "trainer.compile=true" in overrides):
                continue  # amp is off on the CPU; compiling takes minutes on a CPU (tests/test_compile.py)
            rate = steps_per_second(root, cache, device, steps, *small, *overrides)
            print(f"   {label:26s} {rate:8.1f}  ({rate / hand:.2f}x the hand-written loop)", flush=True)

        print("\n3. trainer.compile=true with input-gradient penalties, G steps/s")
        for label, overrides in (("regularizer=r1", ["regularizer=r1"]),
                                 ("loss=wgan_gp (n_critic=1)", ["loss=wgan_gp", "trainer.n_critic=1"])):
            plain = steps_per_second(root, cache, device, steps, *small, *overrides)
            compiled = (float("nan") if tiny else
                        steps_per_second(root, cache, device, steps, *small, *overrides, "trainer.compile=true"))
            print(f"   {label:26s} eager {plain:8.1f}  compiled {compiled:8.1f}", flush=True)

        print("\n4. evaluation")
        seconds = evaluation_seconds(root, cache, device, eval_samples, *small, "metrics.num_real=2000",
                                     f"metrics.pr_samples={eval_samples}")
        print(f"   one evaluation of {eval_samples} generated samples (offline classifier): {seconds:.1f} s")
        timings = eval_speed.time_scores(feature_samples, dim, device)
        print(f"   score maths on {feature_samples} random {dim}-d features: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
