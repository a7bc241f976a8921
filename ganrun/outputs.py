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
    """`path` ready to be written as a file: its folder made; a folder in its place, or a folder that cannot be
    made or written, is a ConfigError naming `what` (the option) and the path."""
    path = Path(path).expanduser()
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
