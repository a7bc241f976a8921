"""Checkpoints as files: atomic writes, bounded and checksummed reads, the newest loadable one of a run.

A checkpoint is a plain dict (tensors, numbers, strings, the config as a plain dict) that `torch.load` reads with
`weights_only=True`. Reading one is reading data: the zip container's CRC-32s are checked (a flipped byte is a
damaged file, not a silently different run), nothing in it may be compressed or claim more memory than the file's
own size (a small file cannot make ganrun allocate gigabytes), and an unknown format number is refused. What the
saved config may contain is checked by `ganrun.resume` (training) and `ganrun.outputs` (companion commands).
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from pathlib import Path

from ganrun.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
BEST_FILE = "best.pt"  # the checkpoint with the lowest FID so far (never pruned)
CHECKPOINT_FORMAT = 1  # the layout of RunState.state_dict(); another number is refused, never guessed at
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_atomic(state: dict, path: Path) -> None:
    """`torch.save(state)` to `path` atomically (`write_atomic`)."""
    import torch  # here, not at the top: `ganrun --help` must not import torch

    write_atomic(path, lambda f: torch.save(state, f))


def write_text_atomic(path: Path, text: str) -> None:
    """`path.write_text(text)` atomically (`write_atomic`): summaries and reports are never half-written."""
    write_atomic(path, lambda f: f.write(text.encode()))


def write_atomic(path: Path, write) -> None:
    """Call `write(binary file)` on a temporary file in the same folder, fsync it, then rename over `path`.

    A crash at any moment leaves either the old file or the complete new one, never a partial file. A write that
    fails (disk full, quota, permissions) is a StorageError naming the file: torch reports these as RuntimeError.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        raise StorageError(f"cannot write {path}: {reason}. The files written before it are intact; free space (or "
                           "fix the permissions) and resume.") from exc
    finally:
        tmp.unlink(missing_ok=True)


def step_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, newest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def prune(run_dir: Path, keep: int) -> None:
    """Keep the newest `keep` step checkpoints; drop temporaries left by a process killed mid-write."""
    for old in step_checkpoints(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    for stale in (Path(run_dir) / CHECKPOINT_DIR).glob(".*.tmp-*"):
        if not stale.name.endswith(f".tmp-{os.getpid()}"):
            stale.unlink(missing_ok=True)


def last_good_note(run_dir: Path) -> str:
    """Where a stopped run's last good state is, for error messages: the newest checkpoint, or that none exists."""
    found = step_checkpoints(run_dir)
    if found:
        return f"the last good checkpoint is {found[0]}."
    return f"no checkpoint was written before that (the first one is due at trainer.ckpt_every) in {run_dir}."


class DamagedFile(ValueError):
    """A file that is not an intact torch zip file of bounded size."""


def check_container(path: Path) -> None:
    """Refuse a file before torch reads it: not a torch zip file, a failed CRC-32 (a flipped byte), compressed
    entries, or entries claiming more bytes than the file holds (what torch would allocate)."""
    path = Path(path)
    if path.is_symlink():
        raise DamagedFile("it is a symbolic link (files are read, never links)")
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
                raise DamagedFile("it holds compressed entries (torch.save writes none)")
            if sum(e.file_size for e in entries) > size:
                raise DamagedFile("its entries claim more bytes than the file holds")
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise DamagedFile(f"it is not a torch zip file ({exc})") from None
    if bad is not None:
        raise DamagedFile(f"the checksum of its entry {bad} fails (the file was damaged or altered)")


def load_data(path: Path, map_location="cpu"):
    """`torch.load` of a file ganrun wrote (a checkpoint, a metrics cache): tensors and plain values only, after
    `check_container`. Raises DamagedFile or torch's own error for a file that is not one."""
    import torch

    check_container(path)
    data = torch.load(path, map_location=map_location, weights_only=True)
    _refuse_overlapping_views(data)
    return data


def _refuse_overlapping_views(node) -> None:
    """A tensor whose strides overlap (an `expand`ed view: stride 0) claims more elements than its stored bytes:
    a tiny file would hand out a tensor the first copy (`.to(dtype)`, `.clone()`) allocates in full. torch.save
    writes no such tensor from a ganrun run."""
    import torch

    if isinstance(node, torch.Tensor):
        if node.numel() * node.element_size() > node.untyped_storage().nbytes():
            raise DamagedFile(f"a tensor of shape {tuple(node.shape)} claims more bytes than it stores "
                              "(an overlapping view)")
    elif isinstance(node, dict):
        for value in node.values():
            _refuse_overlapping_views(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _refuse_overlapping_views(value)


def load(path: Path) -> dict:
    """A checkpoint's state dict; a ConfigError naming the file when it is none (damaged, foreign, unknown
    format, no saved config or run id)."""
    try:
        state = load_data(path)
    except Exception as exc:  # torch raises many types for a damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: it cannot be loaded ({reason})") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):  # torch.save(G.state_dict())
        raise ConfigError(f"{path}: it is not a ganrun checkpoint (it holds no saved config)")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: it has checkpoint format {state.get('format')!r}; this ganrun reads format "
                          f"{CHECKPOINT_FORMAT} (written by ganrun {state.get('ganrun_version', '?')})")
    if not isinstance(state.get("run_id"), str) or not state["run_id"]:
        raise ConfigError(f"{path}: it names no run (run_id), so it is not a ganrun checkpoint of this format")
    step, overrides = state.get("step"), state.get("overrides", [])
    if type(step) is not int or step < 0 or not isinstance(overrides, list) or not all(
            isinstance(o, str) for o in overrides):
        raise ConfigError(f"{path}: it is not a ganrun checkpoint of this format (its step is not a count, or its "
                          "overrides are not a list of strings)")
    return state


def load_newest(resume: str, named: str = "resume=") -> tuple[dict, Path]:
    """Load `resume` (a checkpoint file, or a run dir whose newest loadable checkpoint is taken: a damaged newest
    file is skipped with a warning); errors name it as `named` gave it (`resume=` on ganrun's command line,
    `checkpoint ` for the companion commands)."""
    target = Path(resume).expanduser().resolve()
    if target.is_file():
        candidates = [target]
    elif target.is_dir():
        candidates = step_checkpoints(target)
        if not candidates:
            raise ConfigError(f"{named}{resume}: no checkpoints in {target / CHECKPOINT_DIR}.")
    else:
        raise ConfigError(f"{named}{resume}: no such checkpoint file or run dir.")
    for path in candidates:
        try:
            return load(path), path
        except ConfigError as exc:
            log.warning("Skipping checkpoint %s", exc)
    raise ConfigError(f"{named}{resume}: none of the checkpoints could be loaded ({len(candidates)} tried).")
