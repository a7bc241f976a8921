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

    python benchmarks/loop_overhead.py --threads 2 --pairs 3 --variant fresh=trainer.reuse_fakes=false
    python benchmarks/loop_overhead.py --variant cl=trainer.channels_last=true --variant ema=ema.enabled=true

`--model r3gan` is the R3GAN-class pair: ganrun's `experiment=r3gan_small` with R1 + R2 on every step (R3GAN's
choice; `regularizer.r1r2.every=1`), its schedules on, against a hand-written RpGAN + gamma/2 (R1 + R2) step on the
same networks (ganrun.models.r3gan at the preset's widths), G's step on a fresh real batch and the D step's fakes.
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


def read_images(root: str) -> torch.Tensor:
    """Fashion-MNIST's training images zero-padded to 32 px (ganrun's default geometry) as (60000, 1, 32, 32)
    uint8, read as a hand-written script would."""
    raw = gzip.open(Path(root) / "train-images-idx3-ubyte.gz").read()
    images = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(-1, 1, 28, 28)
    return F.pad(images, [2, 2, 2, 2])


def clock(device) -> float:
    """Now, once the device has finished what was queued (the timed steps start here)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def handwritten(images: torch.Tensor, steps: int, warmup: int, device) -> float:
    """The loop a researcher writes by hand on ganrun's default DCGAN; images/s after `warmup` steps."""
    from ganrun.models.dcgan import Discriminator, Generator

    torch.manual_seed(0)
    G = Generator(z_dim=Z_DIM, resolution=RESOLUTION, channels=1).to(device)
    D = Discriminator(resolution=RESOLUTION, channels=1).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    images = images.to(device)
    start = time.perf_counter()
    for step in range(steps):
        if step == warmup:
            start = clock(device)
        idx = torch.randint(0, len(images), (BATCH,), device=device)
        real = images[idx].float() / 127.5 - 1
        fake = G(torch.randn(BATCH, Z_DIM, device=device))
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
    rate = (steps - warmup) * BATCH / (time.perf_counter() - start)
    return rate, G, D


R3GAN_SMALL = dict(z_dim=64, resolution=RESOLUTION, channels=1, widths=[128, 64, 32, 16], blocks=1, group_size=8,
                   expansion=2)  # conf/experiment/r3gan_small.yaml's networks
R3GAN_OVERRIDES = ["experiment=r3gan_small", "trainer.kimg=null", "regularizer.r1r2.every=1",
                   "~schedules.ema"]  # no EMA in either loop (the ema.enabled=false below)


def handwritten_r3gan(images: torch.Tensor, steps: int, warmup: int, device, gamma: float = 0.05):
    """R3GAN's step written by hand (R3GAN/Trainer.py): D minimises softplus(-(D(x) - D(G(z)))) + gamma/2 (R1 + R2),
    each penalty the per-sample squared input-gradient norm averaged; G minimises softplus(-(D(G(z)) - D(x')))
    on a fresh real batch x'. Adam(2e-4, betas (0, 0.9)); images/s after `warmup` steps."""
    from ganrun.models.r3gan import Discriminator, Generator

    torch.manual_seed(0)
    G = Generator(**R3GAN_SMALL).to(device)
    D = Discriminator(**{k: v[::-1] if k == "widths" else v for k, v in R3GAN_SMALL.items() if k != "z_dim"}).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    images = images.to(device)

    def penalty(x):
        x = x.detach().requires_grad_(True)
        out = D(x)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        return out, grad.square().sum((1, 2, 3)).mean()

    start = time.perf_counter()
    for step in range(steps):
        if step == warmup:
            start = clock(device)
        real = images[torch.randint(0, len(images), (BATCH,), device=device)].float() / 127.5 - 1
        fake = G(torch.randn(BATCH, R3GAN_SMALL["z_dim"], device=device))
        (real_out, r1), (fake_out, r2) = penalty(real), penalty(fake)
        d_loss = F.softplus(-(real_out - fake_out)).mean() + gamma / 2 * (r1 + r2)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        real = images[torch.randint(0, len(images), (BATCH,), device=device)].float() / 127.5 - 1
        g_loss = F.softplus(-(D(fake) - D(real))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    loss_value = g_loss.item()
    assert loss_value == loss_value
    return (steps - warmup) * BATCH / (time.perf_counter() - start), G, D


def ganrun_overrides(root: str, steps: int, device: str, extra: list[str]) -> list[str]:
    return [f"trainer.steps={steps}", f"trainer.log_every={max(1, steps // 2)}", f"trainer.device={device}",
            f"trainer.batch_size={BATCH}", f"dataset.source.root={root}", "metrics.every=0",
            "metrics.final_num_samples=0", "ema.enabled=false", *extra]  # the hand-written loop keeps no EMA


def ganrun_in_process(root: str, steps: int, device: str, extra: list[str]) -> float:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
    from ganrun.train import train

    GlobalHydra.instance().clear()
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=ganrun_overrides(root, steps, device, extra))
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
    loop = handwritten_r3gan if args.model == "r3gan" else handwritten
    _, G, D = loop(read_images(args.root), args.process_steps, 0, device)
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
    parser.add_argument("--model", choices=["dcgan", "r3gan"], default="dcgan",
                        help="r3gan: the R3GAN-class pair (experiment=r3gan_small, R1 + R2 every step)")
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
    variants = {"ganrun": R3GAN_OVERRIDES if args.model == "r3gan" else []}
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        variants[name] = variants["ganrun"] + (overrides.split(",") if overrides else [])
    images = read_images(args.root)
    warmup = args.steps // 2
    loop = handwritten_r3gan if args.model == "r3gan" else handwritten
    contenders = {"hand-written": lambda: loop(images, args.steps, warmup, device)[0]}
    contenders.update({name: (lambda extra=extra: ganrun_in_process(args.root, args.steps, args.device, extra))
                       for name, extra in variants.items()})
    script = [sys.executable, os.path.abspath(__file__), "--handwritten-process", "--root", args.root,
              "--process-steps", str(args.process_steps), "--device", args.device, "--model", args.model]
    processes = {"hand-written": script}
    processes.update({name: ["ganrun", *ganrun_overrides(args.root, args.process_steps, args.device, extra)]
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
    print(f"\ndevice: {device}, threads: {torch.get_num_threads()}, Fashion-MNIST, {args.model} 32 px (28 px padded), "
          f"batch {BATCH}, {args.pairs} interleaved pairs, medians")
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
