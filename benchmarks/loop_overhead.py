"""ganrun's training loop against a hand-written PyTorch loop on the same model, data and loss.

Both train the default DCGAN with the non-saturating loss on Fashion-MNIST held in memory and report
images/s over the same window of steps after a warm-up. Run: python benchmarks/loop_overhead.py [--steps 150] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.config import build
from ganrun.data import BatchStream, load_dataset
from ganrun.errors import DataNotFoundError
from ganrun.runtime import select_device
from ganrun.train import train


def handwritten(cfg, images: torch.Tensor, steps: int, warmup: int, batch: int, device) -> float:
    """The loop a researcher would write by hand (PyTorch DCGAN example style) on the networks of `cfg`,
    images/s after warm-up."""
    torch.manual_seed(0)
    G, D = build(cfg.model.generator).to(device), build(cfg.model.discriminator).to(device)
    z_dim = cfg.model.z_dim
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    images = images.to(device)
    for step in range(steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        idx = torch.randint(0, len(images), (batch,), device=device)
        real = images[idx].float() / 127.5 - 1
        fake = G(torch.randn(batch, z_dim, device=device))
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
    return (steps - warmup) * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    warmup, batch = args.steps // 3, 64
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=[
            f"trainer.steps={args.steps}", f"trainer.log_every={warmup}", f"trainer.sample_every={10**9}",
            f"trainer.ckpt_every={10**9}", f"trainer.device={args.device}", f"trainer.batch_size={batch}",
            "metrics.every=0", "metrics.final_num_samples=0"])
    device = select_device(args.device)
    try:
        source, _ = load_dataset(cfg.dataset)
    except DataNotFoundError as exc:
        raise SystemExit(f"{exc}\n(apt-get install dataset-fashion-mnist provides it offline)")
    images = BatchStream(source, cfg.dataset.resolution, cfg.dataset.channels, batch, 0, "cpu").images

    hand = handwritten(cfg, images, args.steps, warmup, batch, device)
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, run_dir)
    # The last window covers steps after the first log: same warm-up as the hand-written loop.
    ours = result.scalars["throughput/images_per_sec"]
    print(f"device: {device}, data: Fashion-MNIST, model {cfg.model.name} {cfg.dataset.resolution} px, batch {batch}, "
          f"{args.steps - warmup} timed steps")
    print(f"hand-written loop: {hand:8.1f} images/s")
    print(f"ganrun loop:       {ours:8.1f} images/s  ({ours / hand:.2f}x the hand-written loop)")


if __name__ == "__main__":
    main()
