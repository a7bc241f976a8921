"""Default `ganrun` against the textbook DCGAN: same data, steps and batch, scored by ganrun's own extractor.

The textbook arm is a plain hand-written loop with the pytorch/examples DCGAN at 32 px (ngf = ndf = 64,
BatchNorm, sigmoid + BCE, Adam 2e-4 with beta1 0.5, batch 64, N(0, 0.02) init) on the full Fashion-MNIST
zero-padded from 28 to 32 px. The ganrun arm is `ganrun` with its default config (plus --ganrun-overrides) for
the same number of generator steps, batch 64. Both are timed from the start (data loading included) and
snapshotted every --snap-every steps; the final generators are scored with ganrun's evaluator (the offline
Fashion-MNIST classifier's features on CPU: FID and classes covered, --samples samples, generators in eval mode).

"Equal wall time" scores ganrun at its last snapshot taken within the textbook's wall time for --steps: when
ganrun is faster it is resumed (exact resume) for the extra steps that time allows.

    python benchmarks/vs_textbook.py                      # 3000 steps, 10k samples (tens of minutes on 2 cores)
    python benchmarks/vs_textbook.py --steps 300 --samples 2000 --out /tmp/vs   # quick check
    python benchmarks/vs_textbook.py --skip-textbook --out /tmp/vs --ganrun-overrides ema.enabled=false

Results are kept in --out (textbook.json, ganrun run dirs) and the textbook arm is reused from there when its
steps match, so variants of the ganrun arm can be compared against one textbook run.
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

import ganrun.cli  # noqa: F401  (registers the run-dir resolver)
from ganrun import checkpoint
from ganrun.datasets import fashion_mnist
from ganrun.metrics.report import evaluate_generator, make_evaluator
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


def textbook(root: str, steps: int, snap_every: int, seed: int = 0) -> dict:
    """The hand-written loop; returns {step: (seconds since start, G state)} at every snapshot."""
    start = time.perf_counter()
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
    snaps, step, paused = {}, 0, 0.0
    while step < steps:
        order = torch.randperm(len(images))
        for b in range(len(images) // BATCH):  # shuffled epochs, last partial batch dropped
            real = images[order[b * BATCH : (b + 1) * BATCH]]
            D.zero_grad()
            criterion(D(real), ones).backward()
            fake = G(torch.randn(BATCH, NZ))
            criterion(D(fake.detach()), zeros).backward()
            opt_d.step()
            G.zero_grad()
            criterion(D(fake), ones).backward()
            opt_g.step()
            step += 1
            if step % snap_every == 0 or step == steps:
                now = time.perf_counter()
                snaps[step] = (now - start - paused, copy.deepcopy(G.state_dict()))
                paused += time.perf_counter() - now
            if step == steps:
                break
    return snaps


# -- the ganrun arm -----------------------------------------------------------------------------------------
def ganrun_config(root: str, steps: int, snap_every: int, overrides: list[str], resume: str | None = None):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=[
            f"dataset.source.root={root}", f"trainer.steps={steps}", f"trainer.batch_size={BATCH}",
            "trainer.device=cpu", f"trainer.ckpt_every={snap_every}", "trainer.keep_ckpts=100000",
            f"trainer.sample_every={10**9}", "metrics.every=0", "metrics.final_num_samples=0",
            *([f"resume={resume}"] if resume else []), *overrides])


def run_ganrun(run_dir: Path, root: str, steps: int, snap_every: int, overrides: list[str],
               resume_from_seconds: float | None = None) -> dict:
    """Train (or continue) the ganrun arm; returns {step: seconds since start} from its checkpoints' times."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = ganrun_config(root, steps, snap_every, overrides, str(run_dir) if resume_from_seconds else None)
    start = time.time()
    train(cfg, run_dir)
    offset = resume_from_seconds or 0.0
    times_path = run_dir / "bench_times.json"
    times = {int(k): v for k, v in json.loads(times_path.read_text()).items()} if times_path.exists() else {}
    for path in checkpoint.step_checkpoints(run_dir):
        step = int(checkpoint.load(path)["step"])
        if step not in times:
            times[step] = offset + path.stat().st_mtime - start
    times_path.write_text(json.dumps(times))
    return times


def score(evaluator, G, samples: int) -> dict:
    metrics = evaluate_generator(evaluator, G, NZ, samples, seed=0)["metrics"]
    return {"FID": metrics["FID"], "classes_covered": metrics["classes_covered"], "class_KL": metrics["class_KL"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="generator steps of both arms")
    parser.add_argument("--samples", type=int, default=10000, help="generated samples per score")
    parser.add_argument("--snap-every", type=int, default=None, help="snapshot interval (default steps/12)")
    parser.add_argument("--root", default="data", help="dataset.source.root (Debian's package is found anyway)")
    parser.add_argument("--out", default="outputs/vs_textbook")
    parser.add_argument("--skip-textbook", action="store_true", help="reuse OUT/textbook.json")
    parser.add_argument("--name", default="ganrun", help="run dir name of the ganrun arm under OUT")
    parser.add_argument("--ganrun-overrides", nargs="*", default=[], help="extra ganrun overrides (design search)")
    parser.add_argument("--no-equal-time", action="store_true", help="do not resume ganrun to the textbook's time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    snap_every = args.snap_every or max(1, args.steps // 12)
    cfg = ganrun_config(args.root, args.steps, snap_every, args.ganrun_overrides)
    evaluator = make_evaluator(cfg.metrics, cfg.dataset, torch.device("cpu"))
    rows = []

    # Textbook arm.
    tb_path = out / "textbook.json"
    tb = json.loads(tb_path.read_text()) if tb_path.exists() else None
    if tb is None or tb["steps"] != args.steps or tb["samples"] != args.samples:
        if args.skip_textbook:
            raise SystemExit(f"{tb_path} has no textbook run of {args.steps} steps and {args.samples} samples")
        snaps = textbook(args.root, args.steps, snap_every)
        seconds, state = snaps[args.steps]
        G = TextbookGenerator()
        G.load_state_dict(state)
        tb = {"steps": args.steps, "samples": args.samples, "seconds": seconds, **score(evaluator, G, args.samples),
              "times": {s: t for s, (t, _) in snaps.items()}}
        tb_path.write_text(json.dumps(tb, indent=1))
    rows.append(("textbook DCGAN 32 px (pytorch/examples)", args.steps, tb))

    # ganrun arm: the same steps, then (if faster) on to the textbook's wall time.
    run_dir = out / args.name
    times = run_ganrun(run_dir, args.root, args.steps, snap_every, args.ganrun_overrides)
    ema = bool(cfg.ema.enabled)
    if not args.no_equal_time and times[args.steps] < tb["seconds"]:
        per_step = times[args.steps] / args.steps
        more = math.floor((tb["seconds"] - times[args.steps]) / per_step / snap_every) * snap_every
        if more > 0:
            times = run_ganrun(run_dir, args.root, args.steps + more, snap_every, args.ganrun_overrides,
                               resume_from_seconds=times[args.steps])
    equal_time = max((s for s, t in times.items() if t <= tb["seconds"]), default=None)
    label = "ganrun default" + (f" ({' '.join(args.ganrun_overrides)})" if args.ganrun_overrides else "")
    for step, when in ((args.steps, "same steps"), (equal_time, "textbook's wall time")):
        if step is None:
            print(f"ganrun had no snapshot within the textbook's {tb['seconds']:.0f} s")
            continue
        G, *_ = checkpoint.load_generator(str(checkpoint.checkpoint_path(run_dir, step)), "cpu", ema=ema)
        rows.append((f"{label}{' EMA G' if ema else ''}, {when}", step,
                     {"seconds": times[step], **score(evaluator, G, args.samples)}))

    summary = out / f"{args.name}_summary.json"
    summary.write_text(json.dumps([{"arm": a, "steps": s, **{k: v for k, v in r.items() if k != "times"}}
                                   for a, s, r in rows], indent=1))
    print(f"\nFashion-MNIST, batch {BATCH}, {args.samples} samples per score, "
          f"{evaluator.extractor.protocol['extractor']}\n")
    print("| arm | G steps | FID (offline classifier) | classes covered | wall seconds | s/step |")
    print("|---|---|---|---|---|---|")
    for arm, steps, r in rows:
        print(f"| {arm} | {steps} | {r['FID']:.2f} | {r['classes_covered']} / 10 | {r['seconds']:.0f} | "
              f"{r['seconds'] / steps:.3f} |")
    same, fast = rows[1][2]["FID"], rows[-1][2]["FID"]
    print(f"\nganrun FID / textbook FID: {same / tb['FID']:.2f} at the same steps, "
          f"{fast / tb['FID']:.2f} at the textbook's wall time")


if __name__ == "__main__":
    main()
