"""`ganrun-translate`: apply an image-to-image task's trained generator (task=superres | inpaint | denoise | style)
to a folder of images.

    ganrun-translate RUN_DIR --in photos/ --out restored/              # each file -> restored/<name>.png
    ganrun-translate RUN_DIR --in clean/ --out demo/ --degrade --ema   # degrade first: input | output | target

The files in --in are the task's inputs: low-res images for superres (scaled to dataset.resolution / factor, then
bicubic-upsampled as in training), noisy images for denoise. With --degrade they are clean images: the run's own
degradation (seeded by --seed) makes the inputs, and each output file shows input | output | target side by side.
Inpainting needs the holes' mask, so it runs with --degrade only. A task=style run stylises the files as content
images (no --degrade). Images are converted, resized and centre-cropped
to the run's resolution and channels as in training.

Like the other companions it reads the checkpoint as data (ganrun.outputs.load_generator), never follows a link
in --in, and refuses before any work to overwrite a file in --out, to write through a link, or to write into --in.
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from pathlib import Path

from ganrun.errors import ConfigError

log = logging.getLogger("ganrun")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ganrun-translate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint file, or a run dir (its newest loadable checkpoint)")
    parser.add_argument("--in", dest="inputs", required=True, help="folder of input images (not searched below)")
    parser.add_argument("--out", required=True, help="output folder (PNG files named after the inputs)")
    parser.add_argument("--degrade", action="store_true",
                        help="the inputs are clean images: degrade them as in training, write input|output|target")
    parser.add_argument("--ema", action="store_true", help="the EMA generator (runs with ema.enabled)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="the degradations' seed with --degrade")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size {args.batch_size} must be at least 1")
    return args


def input_files(folder) -> list[Path]:
    """The image files directly in `folder`, sorted; a link (or anything but a plain file) with an image name is
    refused, naming it: it could point the command at files outside the folder."""
    from ganrun.data.sources import _is_image

    folder = Path(folder).expanduser()
    if folder.is_symlink() or not folder.is_dir():
        raise ConfigError(f"--in {folder} is not a folder" + (" (a link: give the folder itself)."
                                                               if folder.is_symlink() else "."))
    files = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not _is_image(entry.name):
            continue
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"--in {entry.path} is " + ("a symbolic link" if entry.is_symlink() else
                                                          "not a plain file") +
                              ": ganrun-translate reads plain files only (a link could lead outside the folder).")
        files.append(Path(entry.path))
    if not files:
        raise ConfigError(f"--in {folder} has no image files.")
    return files


def output_paths(files: list[Path], out: Path, inputs: Path) -> list[Path]:
    """<out>/<stem>.png for each input, checked before the work: never into --in, never over an existing file or
    through a link (ganrun.outputs.output_file), never two inputs onto one output."""
    from ganrun.outputs import output_file

    if out.resolve() == inputs.expanduser().resolve():
        raise ConfigError(f"--out {out} is the --in folder: outputs would mix with (and could replace) the inputs.")
    paths = [out / f"{f.stem}.png" for f in files]
    if len(set(paths)) != len(paths):
        raise ConfigError(f"--in {inputs}: two inputs share a name stem (e.g. a.jpg and a.png); outputs are "
                          "<stem>.png, so rename one.")
    for path in paths:
        if path.exists() or path.is_symlink():
            raise ConfigError(f"--out {path} exists: ganrun-translate never overwrites a file; choose an empty "
                              "--out folder.")
        output_file(path, "--out")
    return paths


def read_inputs(files, cfg, task, degrade: bool, seed: int):
    """(inputs for G, targets or None) as float tensors in [-1, 1] on the CPU."""
    import torch
    import torch.nn.functional as F

    from ganrun.data import image_transform
    from ganrun.data.sources import _open_image

    resolution, channels = cfg.dataset.resolution, cfg.dataset.channels
    if task is None:  # task=style: the inputs are content images, as they are
        if degrade:
            raise ConfigError(f"--degrade: task={cfg.task.name} has no degradation; its inputs are content images.")
        degrade = False
    factor = getattr(getattr(task, "degradation", None), "factor", None)
    size = resolution // factor if factor and not degrade else resolution  # superres inputs are low-res images
    transform = image_transform(size, channels)
    images = []
    for path in files:
        try:
            images.append(transform(_open_image(str(path))))
        except Exception as exc:  # noqa: BLE001 (PIL raises many kinds)
            raise ConfigError(f"--in {path}: cannot read the image ({exc}).") from None
    x = torch.stack(images).float().div(127.5).sub(1.0)
    if task is None:
        return x, None
    if degrade:
        return task.degradation(x, torch.Generator().manual_seed(seed)), x
    if task.degradation.extra_channels:
        raise ConfigError(f"task={task.name}: G needs the holes' mask as well as the image; run with --degrade "
                          "(the task's own holes, cut into clean images).")
    if factor:
        x = task.degradation.up(x, (resolution, resolution))
    return x, None


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    args = parse_args(argv)
    import torch  # torch and the rest only after argparse has handled --help
    import torchvision

    from ganrun.config import build
    from ganrun.outputs import load_generator, output_folder, to_uint8
    from ganrun.runtime import select_device

    try:
        device = select_device(args.device, "--device ")
        files = input_files(args.inputs)
        G, cfg, state, found = load_generator(args.checkpoint, device, args.ema, image_to_image=True)
        out = output_folder(args.out, "--out")
        paths = output_paths(files, out, Path(args.inputs))
        # a degradation to build (paired tasks); task=style's G takes the content images as they are (building it
        # would read its style folder and feature network for nothing)
        task = build(cfg.task) if cfg.task.get("degradation") is not None else None
        inputs, targets = read_inputs(files, cfg, task, args.degrade, args.seed)
    except ConfigError as exc:
        print(f"ganrun-translate: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    channels = cfg.dataset.channels
    with torch.no_grad():
        for start in range(0, len(paths), args.batch_size):
            batch = inputs[start:start + args.batch_size].to(device)
            outputs = G(batch).float().cpu()
            if targets is not None:  # input | output | target, side by side
                outputs = torch.cat([batch[:, :channels].cpu(), outputs, targets[start:start + len(batch)]], -1)
            for path, image in zip(paths[start:], to_uint8(outputs)):
                torchvision.io.write_png(image, str(path))
    log.info("Translated %d images with %s (step %d, task=%s) into %s", len(paths), found, state["step"],
             cfg.task.name, out)


if __name__ == "__main__":
    main()
