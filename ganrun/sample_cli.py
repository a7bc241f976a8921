"""`ganrun-sample`: write generated images of a checkpoint, for inspection or as extra training data.

    ganrun-sample RUN_DIR --num 10000 --out samples/            # PNG files 000000.png ...
    ganrun-sample RUN_DIR --num 50000 --format npz --out samples/   # samples.npz: arr_0, uint8 N x H x W x C
    ganrun-sample RUN_DIR --interpolate 8 --out samples/         # interpolation.png: 8 rows of latent walks

    ganrun-sample RUN_DIR --ema --label 3 --num 100 --out s/   # EMA generator, class 3 of a conditional model

The PNG folder is a valid `dataset=folder dataset.path=...` for ganrun itself. Toy 2-D runs write points.csv.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ganrun.errors import ConfigError

log = logging.getLogger("ganrun")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between Gaussian latents (White 2016): stays on the typical shell."""
    import torch

    omega = torch.arccos((a / a.norm(dim=-1, keepdim=True) * b / b.norm(dim=-1, keepdim=True)).sum(-1, keepdim=True)
                         .clamp(-1 + 1e-7, 1 - 1e-7))
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def write_images(G, args, out: Path, labels, generator, z_dim: int, device) -> None:
    """`args.num` samples in batches of `args.batch_size`: PNG files and/or one samples.npz (N, H, W, C uint8)."""
    import numpy as np
    import torch
    import torchvision

    from ganrun.outputs import to_uint8

    chunks, written = [], 0
    while written < args.num:
        n = min(args.batch_size, args.num - written)
        images = to_uint8(G(torch.randn(n, z_dim, device=device, generator=generator), labels(n)).float())
        if args.format in ("png", "both"):
            for i, image in enumerate(images):
                torchvision.io.write_png(image, str(out / f"{written + i:06d}.png"))
        if args.format in ("npz", "both"):
            chunks.append(images.permute(0, 2, 3, 1).numpy())
        written += n
    if chunks:
        np.savez(out / "samples.npz", arr_0=np.concatenate(chunks))


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with the sizes checked (nothing to do, negative or zero sizes) before torch loads."""
    parser = argparse.ArgumentParser(prog="ganrun-sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint file, or a run dir (its newest loadable checkpoint)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num", type=int, default=0, help="number of images to write")
    parser.add_argument("--format", choices=["png", "npz", "both"], default="png")
    parser.add_argument("--interpolate", type=int, default=0, metavar="ROWS",
                        help="also write interpolation.png: ROWS latent walks of --steps images")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ema", action="store_true", help="sample the EMA generator (runs with ema.enabled)")
    parser.add_argument("--label", type=int, default=None,
                        help="class-conditional models: sample this class only (default: classes drawn uniformly)")
    args = parser.parse_args(argv)
    if args.num <= 0 and args.interpolate <= 0:
        parser.error("nothing to do: give --num N and/or --interpolate ROWS")
    for option, value in (("--num", args.num), ("--interpolate", args.interpolate)):
        if value < 0:
            parser.error(f"{option} {value} must be >= 0")
    for option, value in (("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value < 1:
            parser.error(f"{option} {value} must be at least 1")
    return args


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    args = parse_args(argv)
    import numpy as np  # torch and the rest only after argparse has handled --help
    import torch
    import torchvision

    from ganrun.data import dataset_info
    from ganrun.models.conditioning import random_labels
    from ganrun.outputs import load_generator, output_folder
    from ganrun.runtime import select_device

    try:
        device = select_device(args.device, "--device ")
        G, cfg, state, found = load_generator(args.checkpoint, device, args.ema)
        out = output_folder(args.out, "--out")
    except ConfigError as exc:
        print(f"ganrun-sample: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    z_dim = cfg.model.z_dim
    generator = torch.Generator(device).manual_seed(args.seed)
    if args.label is not None and not 0 <= args.label < (G.num_classes or 0):
        has = f"has {G.num_classes} classes (0 to {G.num_classes - 1})" if G.num_classes else \
            "is unconditional (model.conditioning=none): it takes no labels"
        print(f"ganrun-sample: error: --label {args.label}: the model {has}.", file=sys.stderr)
        raise SystemExit(1)

    def labels(n: int):
        if args.label is not None:
            return torch.full((n,), args.label, device=device, dtype=torch.long)
        return random_labels(G, n, device, generator)

    points = dataset_info(cfg.dataset).points
    if points and args.interpolate > 0:  # make_grid would draw the (N, 2) points as one meaningless image
        print(f"ganrun-sample: error: --interpolate draws image grids; {found} was trained on toy 2-D points "
              f"({cfg.dataset.name}): use --num N for points.csv.", file=sys.stderr)
        raise SystemExit(1)
    with torch.no_grad():
        if points and args.num > 0:  # toy 2-D points: one CSV row per sample
            z = torch.randn(args.num, z_dim, device=device, generator=generator)
            np.savetxt(out / "points.csv", G(z, labels(args.num)).float().cpu().numpy(), delimiter=",",
                       header="x,y", comments="")
            log.info("Wrote %d points of %s (step %d) to %s", args.num, found, state["step"], out / "points.csv")
            return
        if args.num > 0:
            write_images(G, args, out, labels, generator, z_dim, device)
            log.info("Wrote %d samples of %s (step %d) to %s", args.num, found, state["step"], out)
        if args.interpolate > 0:
            a = torch.randn(args.interpolate, 1, z_dim, device=device, generator=generator)
            b = torch.randn(args.interpolate, 1, z_dim, device=device, generator=generator)
            t = torch.linspace(0, 1, args.steps, device=device).view(1, -1, 1)
            z = slerp(a, b, t).reshape(-1, z_dim)
            grid = torchvision.utils.make_grid(G(z, labels(len(z))).float(), nrow=args.steps, normalize=True, value_range=(-1, 1))
            torchvision.utils.save_image(grid, out / "interpolation.png")
            log.info("Wrote %s", out / "interpolation.png")


if __name__ == "__main__":
    main()
