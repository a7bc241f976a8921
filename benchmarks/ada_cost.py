"""What `augment=ada` costs per D step on the CPU, against `augment=none`, on ganrun's default DCGAN.

One D step is what the loop does: `GANObjective.d_loss` (G's fakes, the augmentation of reals and fakes, D on
both), backward, Adam step. The two pipelines alternate step by step on the same networks and batches, after
`--warmup` steps of each; medians over `--steps` of the process's CPU time (the development machine is shared:
wall times follow the other jobs; with one thread CPU time is the step's cost). Also timed alone: the ADA
pipeline on one batch (`bgc`, and `bgc,cutout`). ADA computes every op for every sample and gates per sample,
so its cost does not depend on p.

    python benchmarks/ada_cost.py                     # 32 px grey (Fashion-MNIST) and 32 px RGB, one thread
    python benchmarks/ada_cost.py --sizes 1x32 3x32 3x64 --batch 64 --steps 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ganrun.ada import ADA
from ganrun.augment import Pipeline
from ganrun.losses import NonSaturating
from ganrun.models.dcgan import Discriminator, Generator
from ganrun.objective import GANObjective

Z_DIM = 100


def timed(fn) -> float:
    """CPU seconds of the process: on a shared machine, what other jobs take does not count (wall time does)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def d_step(objective: GANObjective, optimizer, real: torch.Tensor) -> None:
    step = objective.d_loss(real, None, step=0, d_step=0)
    optimizer.zero_grad(set_to_none=True)
    step.total.backward()
    optimizer.step()


def measure(channels: int, resolution: int, batch: int, steps: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    G = Generator(z_dim=Z_DIM, resolution=resolution, channels=channels)
    D = Discriminator(resolution=resolution, channels=channels)
    optimizer = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    pipelines = {"none": Pipeline(None), "ada": Pipeline({"ada": ADA("bgc", p=0.5, target=0.6)})}
    objectives = {name: GANObjective(G, D, NonSaturating(), {}, pipe, Z_DIM) for name, pipe in pipelines.items()}
    times: dict[str, list[float]] = {name: [] for name in objectives}
    for i in range(warmup + steps):
        real = torch.rand(batch, channels, resolution, resolution) * 2 - 1
        order = list(objectives) if i % 2 == 0 else list(reversed(objectives))
        for name in order:
            seconds = timed(lambda: d_step(objectives[name], optimizer, real))
            if i >= warmup:
                times[name].append(seconds)
    result = {f"D step, augment={name}": statistics.median(t) for name, t in times.items()}
    x = torch.rand(batch, channels, resolution, resolution) * 2 - 1
    for ops in ("bgc", "bgc,cutout"):
        ada = ADA(ops, p=0.5, target=None)
        ada(x, 0)
        result[f"ADA alone, ops={ops}"] = statistics.median(timed(lambda: ada(x, 0)) for _ in range(steps))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=["1x32", "3x32"], help="CHANNELSxRESOLUTION")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"median CPU time of {args.steps} steps")
    for size in args.sizes:
        channels, resolution = (int(v) for v in size.split("x"))
        result = measure(channels, resolution, args.batch, args.steps, args.warmup)
        none, ada = result["D step, augment=none"], result["D step, augment=ada"]
        print(f"\n{channels} x {resolution} x {resolution}:")
        for name, seconds in result.items():
            print(f"  {name:28s} {seconds * 1000:8.1f} ms")
        print(f"  {'ADA / none per D step':28s} {ada / none:8.2f}x")


if __name__ == "__main__":
    main()
