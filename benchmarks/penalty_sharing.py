"""CPU time of one R3GAN-class D step (R1 + R2 every step, gamma 0.05, non-saturating loss, forward + backward):
ganrun's objective with the penalties sharing D's forward, the same with a pass of their own (as before, and as a
compiled D still runs them), and the hand-written step of benchmarks/loop_overhead.py --arch r3gan.

CPU time (time.process_time, one torch thread), the three alternating in order, so a loaded shared host changes
the ratios little (wall time there is erratic); medians over `--reps`.

    python benchmarks/penalty_sharing.py --width 16 --batch 16 --reps 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from loop_overhead import R3GAN_Z, r3gan_pair  # noqa: E402

from ganrun.augment import Pipeline  # noqa: E402
from ganrun.losses import NonSaturating  # noqa: E402
from ganrun.objective import GANObjective  # noqa: E402
from ganrun.regularizers import R1, R2  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--gamma", type=float, default=0.05)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    G, D = r3gan_pair(args.width)
    real = torch.randn(args.batch, 1, 32, 32)

    def objective():
        terms = {"r1": R1(args.gamma), "r2": R2(args.gamma)}
        return GANObjective(G, D, NonSaturating(), terms, Pipeline(None), R3GAN_Z)

    shared, separate = objective(), objective()
    separate.shared_inputs = lambda d_step: set()  # what a compiled D gets: each penalty's own eager pass

    def handwritten():
        x = real.clone().requires_grad_(True)
        fake = G(torch.randn(args.batch, R3GAN_Z)).detach().requires_grad_(True)
        real_logits, fake_logits = D(x), D(fake)
        r1, r2 = (torch.autograd.grad(logits.sum(), inp, create_graph=True)[0].square().sum(dim=(1, 2, 3)).mean()
                  for logits, inp in ((real_logits, x), (fake_logits, fake)))
        (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean() + args.gamma / 2 * (r1 + r2)).backward()

    steps = {"hand-written": handwritten, "ganrun shared": lambda: shared.d_loss(real, None, 0, 0).total.backward(),
             "ganrun own pass": lambda: separate.d_loss(real, None, 0, 0).total.backward()}
    times = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        step()
    for rep in range(args.reps):
        for name in (list(steps) if rep % 2 == 0 else list(steps)[::-1]):
            start = time.process_time()
            steps[name]()
            times[name].append(time.process_time() - start)
    hand = statistics.median(times["hand-written"])
    print(f"R3GAN width {args.width}, batch {args.batch}, 32 px, R1 + R2 every step; one D step, CPU time, 1 thread, "
          f"median of {args.reps}")
    for name, values in times.items():
        print(f"  {name:16s} {1000 * statistics.median(values):6.0f} ms  {hand / statistics.median(values):.2f}x "
              "the hand-written speed")


if __name__ == "__main__":
    main()
