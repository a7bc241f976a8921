"""Where the companion commands (ganrun-eval, -sample, -classify, -diagnose) read and write: the run dir a
checkpoint file belongs to, and output paths checked before the work starts (an evaluation or a classifier
training takes minutes; a missing or unusable output path must not lose its result, nor end in a traceback)."""

from __future__ import annotations

import os
from pathlib import Path

from ganrun.checkpoint import CHECKPOINT_DIR
from ganrun.errors import ConfigError


def run_dir_of(path) -> Path:
    """The run dir of a checkpoint file (RUN_DIR/checkpoints/x.pt), else the folder the file lies in; a folder is
    its own run dir."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent


def output_file(path, what: str) -> Path:
    """`path` ready to be written as a file: its folder made; a link or a folder in its place, or a folder that
    cannot be made or written, is a ConfigError naming `what` (the option) and the path."""
    path = Path(path).expanduser()
    if path.is_symlink() or (path.is_file() and path.stat().st_nlink > 1):
        raise ConfigError(f"{what} {path} is a link: a result is never written through one (it would overwrite "
                          "another file). Remove it, or give another name.")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder: give a file name.")
    _make_folder(path.parent, what, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path} is not writable.")
    return path


def output_folder(path, what: str) -> Path:
    """`path` ready to be written into as a folder (made if missing); a file in its place is a ConfigError."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} exists and is not a folder.")
    _make_folder(path, what, path)
    return path


def _make_folder(folder: Path, what: str, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file on the way, permissions, read-only file system
        raise ConfigError(f"{what} {path}: cannot create the folder {folder} ({exc.strerror or exc}).") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{what} {path}: the folder {folder} is not writable.")


def load_generator(path: str, device="cpu", ema: bool = False, image_to_image: bool = False):
    """The generator of a checkpoint (file or run dir), rebuilt from the config saved with it, in eval mode;
    with `ema`, its exponential moving average (BatchNorm handled as the run's `ema.bn` says). Returns
    (G, cfg, state, the checkpoint file). `image_to_image`: the caller translates images (ganrun-translate), a
    paired task's run; else it samples noise (the others), a task=generate run: the other kind is refused in one
    line naming the command that fits.

    The saved config is data: checked as such (`ganrun.trust`) and validated like a command line's before anything
    is built, since callers go on to build its dataset and metrics sections too. It never makes a companion
    command write where it says: no dataset downloads, and the metrics cache is this machine's."""
    from ganrun.checkpoint import load_newest
    from ganrun.config import build
    from ganrun.ema import GeneratorEMA
    from ganrun.resume import typed
    from ganrun.rundir import refuse_links
    from ganrun.trust import check_saved_config
    from ganrun.validate import validate

    state, found = load_newest(path, "checkpoint ")
    if found.parent.name == CHECKPOINT_DIR:  # a run dir; a loose file's folder is not walked (it may be ~)
        refuse_links(run_dir_of(found))
    check_saved_config(state["config"], str(found))
    cfg = typed(state["config"], str(found))
    if "download" in cfg.dataset.get("source", {}):
        cfg.dataset.source.download = False
    cfg.metrics.cache_dir = os.environ.get("GANRUN_CACHE", "~/.cache/ganrun")
    validate(cfg)
    task = (cfg.get("task") or {}).get("name", "generate")
    if ((cfg.get("task") or {}).get("_target_", "ganrun.tasks.Generate") != "ganrun.tasks.Generate") != image_to_image:
        raise ConfigError(f"{found} is a task={task} run: its generator " + (
            "translates images; use ganrun-translate RUN_DIR --in DIR --out DIR." if not image_to_image else
            "makes images from noise; use ganrun-sample (ganrun-translate applies a paired task's model)."))
    G = build(cfg.model.generator)
    G.load_state_dict(state["generator"])
    G = G.to(device).eval()
    if ema:
        if state.get("ema") is None:
            raise ConfigError(f"{found} holds no EMA generator (the run had ema.enabled=false).")
        averaged = GeneratorEMA.from_config(G, cfg)
        averaged.load_state_dict(state["ema"])
        G = averaged.generator()
    return G, cfg, state, found


def to_uint8(images):
    """Images in [-1, 1] as uint8 [0, 255] on the CPU (PNG files, npz arrays, classifier inputs)."""
    import torch

    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
