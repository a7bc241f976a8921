"""Default `ganrun` against the textbook DCGAN: same data, steps and batch, scored by ganrun's own extractor.

The textbook arm is a plain hand-written loop with the pytorch/examples DCGAN at 32 px (ngf = ndf = 64,
BatchNorm, sigmoid + BCE, Adam 2e-4 with beta1 0.5, batch 64, N(0, 0.02) init) on the full Fashion-MNIST
zero-padded from 28 to 32 px. The ganrun arm is `ganrun` with its default config (plus --ganrun-overrides) for
the same number of generator steps, batch 64, on CPU. Both are timed from their start (data loading included)
and snapshotted every --snap-every steps; snapshots are scored with ganrun's evaluator (on CPU: the offline
Fashion-MNIST classifier's features; FID and classes covered, --samples samples, generators in eval mode).

"Equal wall time" scores ganrun at its last snapshot taken within the textbook's wall time for --steps; when
ganrun is faster it is resumed (exact resume) for the extra steps that time allows.

    python benchmarks/vs_textbook.py                      # 3000 steps, 10k samples (tens of minutes on 2 cores)
    python benchmarks/vs_textbook.py --steps 300 --samples 2000 --out /tmp/vs   # quick check

Snapshots, times and scores stay in --out and are reused: a textbook run of 3000 steps also serves --steps 500
(a snapshot step), and --name/--ganrun-overrides compare variants of the ganrun arm against it.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun import checkpoint
from ganrun.data.sources import fashion_mnist
from ganrun.metrics.report import evaluate_generator, make_evaluator
from ganrun.outputs import load_generator
from ganrun.train import train

BATCH, NZ = 64, 100


# -- the textbook arm: pytorch/examples dcgan/main.py, three up-convolutions for 32 px ------------------------
class TextbookGenerator(nn.Module):
    def __init__(self, nz=NZ, ngf=64, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),  # 4x4
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # 8
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),  # 16
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),  # 32x32
        )

    def forward(self, z, labels=None):
        return self.main(z.view(z.shape[0], -1, 1, 1))


class TextbookDiscriminator(nn.Module):
    def __init__(self, ndf=64, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # 16
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),  # 8
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),  # 4
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1)


def weights_init(m):
    if "Conv" in type(m).__name__:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in type(m).__name__:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def textbook(root: str, steps: int, snap_every: int, out: Path, seed: int = 0) -> None:
    """The hand-written loop; G snapshots and their seconds since the start go to OUT/textbook/. The full state
    at the last snapshot (OUT/textbook/last.pt) lets a later call continue to more steps exactly."""
    out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    data = fashion_mnist(root, train=True, download=False).data  # uint8 (60000, 28, 28)
    images = F.pad(data, (2, 2, 2, 2)).unsqueeze(1).float().div(127.5).sub(1.0)  # 32 px, [-1, 1]
    G, D = TextbookGenerator(), TextbookDiscriminator()
    G.apply(weights_init)
    D.apply(weights_init)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)
    times, cpu, step, paused, order, first = {}, {}, 0, 0.0, None, 0
    if (out / "last.pt").exists():  # continue: the clock goes on from the saved times
        state = torch.load(out / "last.pt", weights_only=False)
        for module, key in ((G, "G"), (D, "D"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            module.load_state_dict(state[key])
        torch.set_rng_state(state["rng"])
        step, order, first = state["step"], state["order"], state["next_batch"]
        times = {int(k): v for k, v in json.loads((out / "times.json").read_text()).items()}
        cpu = {int(k): v for k, v in json.loads((out / "cpu_times.json").read_text()).items()}
        paused -= times[step]  # elapsed = now - start - paused continues from the saved time
        cpu_start -= cpu[step]
    batches = len(images) // BATCH
    while step < steps:
        if order is None or first >= batches:
            order, first = torch.randperm(len(images)), 0
        for b in range(first, batches):  # shuffled epochs, last partial batch dropped
            real = images[order[b * BATCH : (b + 1) * BATCH]]
            D.zero_grad()
            criterion(D(real), ones).backward()
            fake = G(torch.randn(BATCH, NZ))
            criterion(D(fake.detach()), zeros).backward()
            opt_d.step()
            G.zero_grad()
            criterion(D(fake), ones).backward()
            opt_g.step()
            step, first = step + 1, b + 1
            if step % snap_every == 0 or step == steps:
                now = time.perf_counter()
                times[step] = now - start - paused
                cpu[step] = time.process_time() - cpu_start
                torch.save(G.state_dict(), out / f"step_{step:08d}.pt")
                torch.save({"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(),
                            "opt_d": opt_d.state_dict(), "rng": torch.get_rng_state(), "step": step, "order": order,
                            "next_batch": first}, out / "last.pt")
                (out / "times.json").write_text(json.dumps(times))
                (out / "cpu_times.json").write_text(json.dumps(cpu))
                paused += time.perf_counter() - now  # saving snapshots is not the loop's time
            if step == steps:
                break


# -- the ganrun arm -----------------------------------------------------------------------------------------
def ganrun_config(root: str, steps: int, snap_every: int, overrides: list[str], resume: str | None = None):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        given = [f"dataset.source.root={root}", f"trainer.steps={steps}", f"trainer.batch_size={BATCH}",
                 "trainer.device=cpu", f"trainer.ckpt_every={snap_every}", "trainer.keep_ckpts=100000",
                 f"trainer.sample_every={10**9}", "metrics.every=0", "metrics.final_num_samples=0",
                 *([f"resume={resume}"] if resume else []), *overrides]
        return compose("config", overrides=given), given


def run_ganrun(run_dir: Path, root: str, steps: int, snap_every: int, overrides: list[str]) -> tuple[dict, dict]:
    """Train the ganrun arm to `steps`, continuing (exact resume) from its last snapshot when it has one; returns
    {step: wall seconds since the start} from its checkpoints' times and {step: CPU seconds} at each call's end."""
    run_dir.mkdir(parents=True, exist_ok=True)
    times_path, cpu_path = run_dir / "bench_times.json", run_dir / "bench_cpu.json"
    read = lambda path: {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}  # noqa
    times, cpu = read(times_path), read(cpu_path)
    if steps in times:
        return times, cpu
    last = max(times, default=0)
    cfg, given = ganrun_config(root, steps, snap_every, overrides, str(run_dir) if last else None)
    start, cpu_start = time.time(), time.process_time()
    train(cfg, run_dir, given)  # on resume, the command line's trainer.steps extends the run
    cpu[steps] = cpu.get(last, 0.0) + time.process_time() - cpu_start  # this process only, not others' load
    for path in checkpoint.step_checkpoints(run_dir):
        step = int(checkpoint.load(path)["step"])
        if step not in times:
            times[step] = times.get(last, 0.0) + path.stat().st_mtime - start
    times_path.write_text(json.dumps(times))
    cpu_path.write_text(json.dumps(cpu))
    return times, cpu


def score(evaluator, G, samples: int) -> dict:
    metrics = evaluate_generator(evaluator, G, NZ, samples, seed=0)["metrics"]
    return {"FID": metrics["FID"], "classes_covered": metrics["classes_covered"], "class_KL": metrics["class_KL"]}


class Scores:
    """Scores of snapshots, cached in OUT/scores.json (keyed by arm, step and number of samples)."""

    def __init__(self, out: Path, evaluator, samples: int):
        self.path, self.evaluator, self.samples = out / "scores.json", evaluator, samples
        self.cache = json.loads(self.path.read_text()) if self.path.exists() else {}

    def __call__(self, key: str, load_generator) -> dict:
        key = f"{key}@{self.samples}"
        if key not in self.cache:
            self.cache[key] = score(self.evaluator, load_generator(), self.samples)
            self.path.write_text(json.dumps(self.cache, indent=1))
        return self.cache[key]


def load_textbook(path: Path) -> nn.Module:
    G = TextbookGenerator()
    G.load_state_dict(torch.load(path, weights_only=True))
    return G


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="generator steps of both arms")
    parser.add_argument("--samples", type=int, default=10000, help="generated samples per score")
    parser.add_argument("--snap-every", type=int, default=250, help="snapshot (checkpoint) interval of both arms")
    parser.add_argument("--root", default="data", help="dataset.source.root (Debian's package is found anyway)")
    parser.add_argument("--out", default="outputs/vs_textbook", help="snapshots, times and scores; reused")
    parser.add_argument("--arms", nargs="+", choices=["textbook", "ganrun"], default=["textbook", "ganrun"])
    parser.add_argument("--name", default="ganrun", help="run dir of the ganrun arm under OUT")
    parser.add_argument("--ganrun-overrides", nargs="*", default=[], help="extra ganrun overrides (design search)")
    parser.add_argument("--no-equal-time", action="store_true", help="do not resume ganrun to the textbook's time")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for both arms (1 is much faster on an oversubscribed machine)")
    parser.add_argument("--num-real", type=int, default=None, help="metrics.num_real of the evaluator")
    parser.add_argument("--classifier-epochs", type=int, default=None, help="metrics.classifier_epochs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, _ = ganrun_config(args.root, args.steps, args.snap_every, args.ganrun_overrides)
    rows = []

    # Textbook arm (reused from OUT/textbook when it has a snapshot at --steps).
    tb_dir = out / "textbook"
    tb_snapshot = tb_dir / f"step_{args.steps:08d}.pt"
    if not tb_snapshot.exists():
        if "textbook" not in args.arms:
            raise SystemExit(f"{tb_snapshot} is missing: run the textbook arm (--arms textbook)")
        textbook(args.root, args.steps, args.snap_every, tb_dir)
    tb_seconds = json.loads((tb_dir / "times.json").read_text())[str(args.steps)]
    for key, value in (("num_real", args.num_real), ("classifier_epochs", args.classifier_epochs)):
        if value is not None:
            cfg.metrics[key] = value
    evaluator = make_evaluator(cfg.metrics, cfg.dataset, torch.device("cpu"))
    scores = Scores(out, evaluator, args.samples)
    tb_cpu = json.loads((tb_dir / "cpu_times.json").read_text())[str(args.steps)]
    tb = {"seconds": tb_seconds, "cpu": tb_cpu, **scores(f"textbook@{args.steps}", lambda: load_textbook(tb_snapshot))}
    rows.append(("textbook DCGAN 32 px (pytorch/examples loop)", args.steps, tb))

    if "ganrun" in args.arms:  # the same steps, then (if faster) on to the textbook's wall time
        run_dir = out / args.name
        times, cpu = run_ganrun(run_dir, args.root, args.steps, args.snap_every, args.ganrun_overrides)
        if not args.no_equal_time and times[args.steps] < tb_seconds and max(times) == args.steps:
            per_step = times[args.steps] / args.steps
            more = math.floor((tb_seconds - times[args.steps]) / per_step / args.snap_every) * args.snap_every
            if more > 0:
                times, cpu = run_ganrun(run_dir, args.root, args.steps + more, args.snap_every,
                                        args.ganrun_overrides)
        cpu = cpu.get(args.steps)
        equal_time = max((s for s, t in times.items() if t <= tb_seconds), default=None)
        label = "ganrun" + (f" {' '.join(args.ganrun_overrides)}" if args.ganrun_overrides else " default")
        generators = [("raw G", False)] + ([("EMA G", True)] if cfg.ema.enabled else [])
        for step, when in ((args.steps, "same steps"), (equal_time, "textbook's wall time")):
            if step is None:
                print(f"ganrun had no snapshot within the textbook's {tb_seconds:.0f} s")
                continue
            path = str(checkpoint.checkpoint_path(run_dir, step))
            for which, ema in generators:
                result = scores(f"{args.name}{'_ema' if ema else ''}@{step}",
                                lambda: load_generator(path, "cpu", ema=ema)[0])
                rows.append((f"{label}, {which}, {when}", step,
                             {"seconds": times[step], "cpu": cpu if step == args.steps else None, **result}))

    print(f"\nFashion-MNIST padded to 32 px, batch {BATCH}, {torch.get_num_threads()} CPU thread(s), "
          f"{args.samples} generated vs {evaluator.real['n']} real images per score, "
          f"{evaluator.extractor.protocol['extractor']}, test accuracy "
          f"{evaluator.extractor.protocol['classifier_test_accuracy']:.3f}\n")
    print("| arm | G steps | FID (offline classifier) | vs textbook | classes covered | wall s | wall s/step | "
          "CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for arm, steps, r in rows:
        cpu = f"{r['cpu']:.0f}" if r.get("cpu") else "-"
        print(f"| {arm} | {steps} | {r['FID']:.2f} | {r['FID'] / tb['FID']:.2f}x | {r['classes_covered']} / 10 | "
              f"{r['seconds']:.0f} | {r['seconds'] / steps:.3f} | {cpu} |")


if __name__ == "__main__":
    main()
