"""ganrun's training loop against a hand-written PyTorch loop: same networks, data, loss and batch, in one run.

Two measures, each over `--pairs` interleaved pairs (the order alternates inside a pair; medians reported):
- in-process: images/s over the second half of the steps (the first half is warm-up), ganrun's from its
  throughput scalar of the last log window, the hand-written loop's timed the same way;
- whole-process: wall time of `ganrun ...` against `python loop_overhead.py --handwritten-process` (a complete
  script: read the IDX files, build the networks, train, save them), each a fresh Python process.

The hand-written loop is PyTorch's DCGAN example: non-saturating loss, Adam(2e-4, 0.5), the D step's fakes
reused in the G step, one host sync at the end. ganrun runs its defaults with metrics and EMA off (the
hand-written loop has neither) plus any `--variant`: `fresh=trainer.reuse_fakes=false` gives G's step fresh
fakes (one more G forward per step); `ema=ema.enabled=true` prices the default EMA.

`--arch r3gan`: the R3GAN-class pair instead, R3GAN's networks (`model=r3gan` at `--width`, 32 px) with the
R1 + R2 penalties every step (the paper's choice; gamma `--gamma`, ganrun's `regularizer=[r1,r2]`), non-saturating
loss, Adam(2e-4, 0.5). The hand-written step is written as R3GAN's trainer does it: D's logits on the reals and on
the detached fakes are computed once, with the images requiring grad, and serve the loss and both penalties.

    python benchmarks/loop_overhead.py --arch r3gan --width 16 --batch 32 --steps 60 --pairs 2 --skip-process
    python benchmarks/loop_overhead.py --threads 2 --pairs 3 --variant fresh=trainer.reuse_fakes=false
    python benchmarks/loop_overhead.py --variant cl=trainer.channels_last=true --variant ema=ema.enabled=true
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
BATCH, Z_DIM, RESOLUTION = 64, 100, 32
R3GAN_Z = 64  # the reference z for CIFAR-10 (model=r3gan)


def read_images(root: str) -> torch.Tensor:
    """Fashion-MNIST's training images zero-padded to 32 px (ganrun's default geometry) as (60000, 1, 32, 32)
    uint8, read as a hand-written script would."""
    raw = gzip.open(Path(root) / "train-images-idx3-ubyte.gz").read()
    images = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(-1, 1, 28, 28)
    return F.pad(images, [2, 2, 2, 2])


def r3gan_pair(width: int):
    """R3GAN's G and D at `width` channels per stage, as `model=r3gan model.*.width=width` builds them."""
    from ganrun.models import r3gan

    return (r3gan.Generator(z_dim=R3GAN_Z, resolution=RESOLUTION, channels=1, width=width),
            r3gan.Discriminator(resolution=RESOLUTION, channels=1, width=width))


def handwritten(images: torch.Tensor, steps: int, warmup: int, device, args=None) -> float:
    """The loop a researcher writes by hand on ganrun's default DCGAN (or, `--arch r3gan`, on R3GAN's networks
    with R1 + R2); images/s after `warmup` steps."""
    from ganrun.models.dcgan import Discriminator, Generator

    r3 = args is not None and args.arch == "r3gan"
    batch, z_dim = (args.batch, R3GAN_Z) if r3 else (BATCH if args is None else args.batch, Z_DIM)
    torch.manual_seed(0)
    if r3:
        G, D = r3gan_pair(args.width)
        G, D = G.to(device), D.to(device)
    else:
        G = Generator(z_dim=Z_DIM, resolution=RESOLUTION, channels=1).to(device)
        D = Discriminator(resolution=RESOLUTION, channels=1).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    images = images.to(device)
    start = time.perf_counter()
    for step in range(steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        idx = torch.randint(0, len(images), (batch,), device=device)
        real = images[idx].float() / 127.5 - 1
        fake = G(torch.randn(batch, z_dim, device=device))
        if r3:  # one D forward per side serves the loss and its penalty (R3GAN's Trainer.py does the same)
            real.requires_grad_(True)
            detached = fake.detach().requires_grad_(True)
            real_logits, fake_logits = D(real), D(detached)
            r1, r2 = (torch.autograd.grad(logits.sum(), x, create_graph=True)[0].square().sum(dim=(1, 2, 3)).mean()
                      for logits, x in ((real_logits, real), (fake_logits, detached)))
            d_loss = (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
                      + args.gamma / 2 * (r1 + r2))
        else:
            d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    loss_value = g_loss.item()  # one sync at the end, as a hand-written loop that logs rarely would
    assert loss_value == loss_value
    rate = (steps - warmup) * batch / (time.perf_counter() - start)
    return rate, G, D


def arch_overrides(args) -> list[str]:
    """ganrun's config for the networks and penalties of the hand-written loop."""
    if args.arch != "r3gan":
        return []
    return ["model=r3gan", f"model.generator.width={args.width}", f"model.discriminator.width={args.width}",
            "regularizer=[r1,r2]", f"regularizer.r1.weight={args.gamma}", f"regularizer.r2.weight={args.gamma}"]


def ganrun_overrides(root: str, steps: int, device: str, extra: list[str], batch: int = BATCH) -> list[str]:
    return [f"trainer.steps={steps}", f"trainer.log_every={max(1, steps // 2)}", f"trainer.device={device}",
            f"trainer.batch_size={batch}", f"dataset.source.root={root}", "metrics.every=0",
            "metrics.final_num_samples=0", "ema.enabled=false", *extra]  # the hand-written loop keeps no EMA


def ganrun_in_process(root: str, steps: int, device: str, extra: list[str], batch: int = BATCH) -> float:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
    from ganrun.train import train

    GlobalHydra.instance().clear()
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=ganrun_overrides(root, steps, device, extra, batch))
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, run_dir)
    return result.scalars["throughput/images_per_sec"]  # the last window: the second half of the steps


def whole_process(command: list[str], threads: int | None) -> float:
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def handwritten_process(args) -> None:
    """The whole-process contender: a complete hand-written training script (read data, train, save)."""
    from ganrun.runtime import select_device

    device = select_device(args.device)
    _, G, D = handwritten(read_images(args.root), args.process_steps, 0, device, args)
    torch.save({"G": G.state_dict(), "D": D.state_dict()}, "final.pt")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="in-process steps (the second half is timed)")
    parser.add_argument("--process-steps", type=int, default=400, help="steps of each whole-process run")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (OMP_NUM_THREADS of processes)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--root", default=os.environ.get("GANRUN_DATA", DATA), help="Fashion-MNIST IDX .gz files")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE[,OVERRIDE]",
                        help="also time ganrun with these overrides (repeatable)")
    parser.add_argument("--skip-process", action="store_true", help="in-process measure only")
    parser.add_argument("--arch", choices=("dcgan", "r3gan"), default="dcgan",
                        help="dcgan: ganrun's default; r3gan: R3GAN's networks with R1 + R2 every step")
    parser.add_argument("--width", type=int, default=16, help="--arch r3gan: channels per stage")
    parser.add_argument("--gamma", type=float, default=0.05, help="--arch r3gan: R1/R2 weight (R3GAN CIFAR-10)")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--handwritten-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.handwritten_process:
        return handwritten_process(args)
    if not (Path(args.root) / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found in {args.root} (apt-get install dataset-fashion-mnist)")

    from ganrun.runtime import select_device

    device = select_device(args.device)
    variants = {"ganrun": arch_overrides(args)}
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        variants[name] = arch_overrides(args) + (overrides.split(",") if overrides else [])
    images = read_images(args.root)
    warmup = args.steps // 2
    contenders = {"hand-written": lambda: handwritten(images, args.steps, warmup, device, args)[0]}
    contenders.update({name: (lambda extra=extra: ganrun_in_process(args.root, args.steps, args.device, extra,
                                                                    args.batch))
                       for name, extra in variants.items()})
    script = [sys.executable, os.path.abspath(__file__), "--handwritten-process", "--root", args.root,
              "--process-steps", str(args.process_steps), "--device", args.device, "--arch", args.arch,
              "--width", str(args.width), "--gamma", str(args.gamma), "--batch", str(args.batch)]
    processes = {"hand-written": script}
    processes.update({name: ["ganrun", *ganrun_overrides(args.root, args.process_steps, args.device, extra,
                                                         args.batch)]
                      for name, extra in variants.items()})

    rates = {name: [] for name in contenders}
    walls = {name: [] for name in processes}
    for pair in range(args.pairs):
        order = list(contenders) if pair % 2 == 0 else list(contenders)[::-1]  # interleaved, alternating order
        for name in order:
            rates[name].append(contenders[name]())
        if not args.skip_process:
            for name in order:
                walls[name].append(whole_process(processes[name], args.threads))
        print(f"pair {pair + 1}/{args.pairs}: " + ", ".join(f"{n} {rates[n][-1]:.0f} img/s" for n in order)
              + ("" if args.skip_process else "; " + ", ".join(f"{n} {walls[n][-1]:.1f} s" for n in order)),
              flush=True)

    hand_rates, hand_walls = rates.pop("hand-written"), walls.pop("hand-written")
    nets = (f"R3GAN width {args.width} + R1/R2 (gamma {args.gamma}) every step" if args.arch == "r3gan"
            else "DCGAN")
    print(f"\ndevice: {device}, threads: {torch.get_num_threads()}, Fashion-MNIST, {nets}, 32 px (28 px padded), "
          f"batch {args.batch}, {args.pairs} interleaved pairs, medians")
    print(f"in-process ({args.steps - warmup} timed steps after {warmup} warm-up): hand-written "
          f"{statistics.median(hand_rates):.0f} images/s")
    for name, values in rates.items():
        ratios = [ours / hand for ours, hand in zip(values, hand_rates)]
        print(f"  {name:14s} {statistics.median(values):6.0f} images/s  {statistics.median(ratios):.2f}x the "
              f"hand-written throughput (pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
    if not args.skip_process:
        print(f"whole process ({args.process_steps} steps): hand-written {statistics.median(hand_walls):.1f} s")
        for name, values in walls.items():
            ratios = [hand / ours for ours, hand in zip(values, hand_walls)]
            print(f"  {name:14s} {statistics.median(values):6.1f} s  {statistics.median(ratios):.2f}x the "
                  f"hand-written speed (hand-written time / ganrun time; pairs: "
                  f"{', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
