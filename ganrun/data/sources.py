"""Dataset sources: each returns a torchvision dataset yielding (PIL image, label).

The configs call these through `_target_`; turning images into training tensors is `ganrun.data`'s job.
Lookup is explicit so that a missing dataset produces a message that says what was tried.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import torchvision
from PIL import Image, ImageOps
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.datasets.utils import extract_archive

from ganrun.errors import ConfigError, DataNotFoundError, StorageError

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def _mnist_family(cls, root, train, download, extra_dirs=()):
    """torchvision's MNIST-style dataset from `root`, or copied into it (with `download`) from a folder of IDX(.gz)
    files or the internet."""
    root = os.path.abspath(os.path.expanduser(root))
    tried = [f"{cls.__name__} in torchvision layout under {root}"]
    raw_folder = os.path.join(root, cls.__name__, "raw")
    try:
        return cls(root, train=train, download=False)
    except Exception as exc:  # absent (RuntimeError), or present and broken (anything from the IDX reader)
        _refuse_to_overwrite(cls, raw_folder, exc)
    for folder in extra_dirs:
        files = [os.path.basename(u) for u, _ in cls.resources]
        tried.append(f"IDX files {', '.join(files)} in {folder}")
        if not download:  # a copy writes into the root like a download: a root a checkpoint names never is
            tried[-1] += " (not copied into the root: dataset.source.download=false)"
        elif all(os.path.exists(os.path.join(folder, f)) for f in files):
            log.info("Copying %s from %s into %s (first use; later runs read it from there)", cls.__name__, folder,
                     raw_folder)
            _copy_whole(folder, files, raw_folder)
            return cls(root, train=train, download=False)
    if download:
        tried.append(f"downloading with torchvision into {root}")
        try:
            return cls(root, train=train, download=True)
        except Exception as exc:  # torchvision raises URLError/RuntimeError/OSError offline
            tried[-1] += f" (failed: {exc})"
    else:
        tried.append("downloading (skipped: dataset.source.download=false)")
    raise DataNotFoundError(
        f"{cls.__name__} not found. Tried:\n  - " + "\n  - ".join(tried) + "\n"
        f"Put the four IDX files in {raw_folder} (or set dataset.source.root / GANRUN_DATA to a folder "
        f"that has them), or allow the download with dataset.source.download=true on a machine with internet."
    )


def _copy_whole(folder: str, files: list[str], raw_folder: str) -> None:
    """Extract `files` into a temporary folder beside `raw_folder`, then rename it into place: the folder appears
    with all its files or not at all, so runs that start together on a fresh root (a parallel sweep) never read
    a half-written copy. When another run got there first, its copy is kept and this one dropped. A copy cut short
    (disk full, read-only root) is removed and named; one killed outright is removed by the next copy."""
    parent = os.path.dirname(raw_folder)
    staging = None
    try:
        os.makedirs(parent, exist_ok=True)
        _drop_killed_copies(parent)
        staging = tempfile.mkdtemp(prefix=f"{_STAGING}{socket.gethostname()}-{os.getpid()}-", dir=parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # a folder as makedirs makes it (mkdtemp's is private to its owner)
        for f in files:
            extract_archive(os.path.join(folder, f), staging)
        try:
            os.rename(staging, raw_folder)  # atomic; replaces an empty folder, fails on one with files
        except OSError:
            if not os.path.isdir(raw_folder) or not os.listdir(raw_folder):
                raise
            log.info("%s was copied by another run meanwhile; using that copy", raw_folder)
    except OSError as exc:
        if exc.errno is None:  # not the root's fault (a damaged .gz in `folder`): as it is
            raise
        raise StorageError(
            f"cannot copy {', '.join(files)} from {folder} into {raw_folder}: {exc.strerror or exc}. Point "
            "dataset.source.root (or GANRUN_DATA) at a writable folder with room for the copy (about 55 MB for "
            "Fashion-MNIST), or put the files there yourself."
        ) from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


_STAGING = ".copying-"
_KILLED_STAGING = re.compile(rf"^{re.escape(_STAGING)}(.+)-(\d+)-[a-z0-9_]+$")


_STAGING_STALE_S = 600  # a copy takes seconds; a staging folder untouched this long is no copy in progress


def _drop_killed_copies(parent: str) -> None:
    """Staging folders of copies on this host whose process is gone (killed mid-copy): each would otherwise stay,
    up to a whole dataset in size, for every killed first run. Only ones untouched for minutes: a container
    sharing this host name has other pids, and its copy in progress must not be taken for a dead one."""
    host = socket.gethostname()
    for entry in os.scandir(parent):
        found = _KILLED_STAGING.match(entry.name)
        if (found and found.group(1) == host and not _process_exists(int(found.group(2)))
                and time.time() - entry.stat().st_mtime > _STAGING_STALE_S):
            shutil.rmtree(entry.path, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _refuse_to_overwrite(cls, raw_folder: str, exc: Exception) -> None:
    """Files of the dataset already in the user's root that cannot be read are named, never replaced by
    another copy (extracting or downloading would write over them)."""
    names = [os.path.basename(u) for u, _ in cls.resources]
    present = [os.path.join(raw_folder, n) for name in names for n in (name, os.path.splitext(name)[0])
               if os.path.exists(os.path.join(raw_folder, n))]
    if present:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{cls.__name__}: {', '.join(present)} cannot be read ({reason}). ganrun does not overwrite files in "
            f"your data root: fix or remove them (then the dataset is looked up or downloaded again)."
        ) from exc


def fashion_mnist(root: str, train: bool = True, download: bool = True):
    """Fashion-MNIST; also found in Debian's `dataset-fashion-mnist` package when installed."""
    return _mnist_family(torchvision.datasets.FashionMNIST, root, train, download, [DEBIAN_FASHION_MNIST])


def mnist(root: str, train: bool = True, download: bool = True):
    return _mnist_family(torchvision.datasets.MNIST, root, train, download)


def cifar10(root: str, train: bool = True, download: bool = True):
    root = os.path.abspath(os.path.expanduser(root))
    try:
        return torchvision.datasets.CIFAR10(root, train=train, download=download)
    except Exception as exc:
        raise DataNotFoundError(
            f"CIFAR-10 not found in {root}/cifar-10-batches-py"
            + (f" and the download failed ({exc})" if download else " (download disabled)")
            + ". Put the extracted python version of CIFAR-10 there (set dataset.source.root / GANRUN_DATA), "
            "or allow the download with dataset.source.download=true on a machine with internet."
        ) from exc


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _identity(folder: str) -> tuple[int, int]:
    info = os.stat(folder)
    return info.st_dev, info.st_ino


def walk_once(folder: str, seen: set | None = None):
    """Files under `folder` (symlinked folders followed), each real folder visited once: a symlink loop or a
    link to a parent cannot repeat the data. Folders already in `seen` (other classes, the root) are skipped."""
    seen = set() if seen is None else seen
    for current, dirs, files in os.walk(folder, followlinks=True):
        if current != folder and _identity(current) in seen:
            dirs[:] = []
            continue
        seen.add(_identity(current))
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(current, name)


class ClassFolders(torchvision.datasets.ImageFolder):
    """ImageFolder (one sub-folder per class) that skips hidden folders and visits each real folder once."""

    @staticmethod
    def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        samples = []
        # The root and every class folder belong to themselves: a link from one class into another (or up to
        # the root) is not followed, so no image is read twice or under another class.
        seen = {_identity(directory)} | {_identity(os.path.join(directory, name)) for name in class_to_idx}
        for name, index in sorted(class_to_idx.items()):
            found = [(path, index) for path in walk_once(os.path.join(directory, name), seen)
                     if _is_image(path) and os.path.isfile(path)]
            if not found and not allow_empty:
                raise FileNotFoundError(f"the class folder {name} has no image files")
            samples += found
        return samples

    def find_classes(self, directory):
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
        return classes, {name: i for i, name in enumerate(classes)}


class FlatImageFolder(torchvision.datasets.VisionDataset):
    """All images directly inside one folder, label 0 (ImageFolder needs one sub-folder per class)."""

    def __init__(self, root: str):
        super().__init__(root)
        self.samples = sorted(
            str(p) for p in Path(root).iterdir() if p.is_file() and _is_image(p.name)
        )
        self.classes: list[str] = []

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return _open_image(self.samples[index]), 0


def image_folder(path: str, skip_unreadable: bool = False, key: str = "dataset.path"):
    """An ImageFolder tree (sub-folder per class, labels kept) or a flat folder of images.

    A folder holding both images and (non-hidden) sub-folders is refused: neither reading would be what was
    meant for sure, and silently training on only one part is worse than asking. The files are listed here and
    decoded once, with the rest of the folder, when the run loads its data (`ganrun.data.decoded`): an unreadable or
    truncated image stops the run before training (naming the files), or is left out and counted when
    `skip_unreadable` is set.
    """
    if path is None or not os.path.isdir(os.path.expanduser(str(path))):
        raise DataNotFoundError(f"{key}={path!r} is not a folder. Point it at a folder of images.")
    path = os.path.abspath(os.path.expanduser(path))
    entries = list(os.scandir(path))
    class_dirs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    loose = [e.name for e in entries if e.is_file() and _is_image(e.name)]
    if class_dirs and loose:
        raise ConfigError(
            f"{key}={path} holds {len(loose)} image file(s) next to {len(class_dirs)} sub-folder(s) "
            f"({', '.join(class_dirs[:5])}{', ...' if len(class_dirs) > 5 else ''}). Use either a flat folder of "
            "images (one class) or one sub-folder per class: move the loose images into a sub-folder, or the "
            "sub-folders out."
        )
    if class_dirs:
        try:
            dataset = ClassFolders(path, loader=_open_image)
        except FileNotFoundError as exc:
            raise ConfigError(f"{key}={path}: {exc}") from exc
    else:
        dataset = FlatImageFolder(path)
    if len(dataset) == 0:
        raise ConfigError(f"{key}={path} has no image files (looked for {', '.join(IMG_EXTENSIONS)}).")
    dataset.skip_unreadable, dataset.config_key = skip_unreadable, key
    return dataset


def report_unreadable(bad: list[tuple[str, str]], total: int, path: str, skip: bool, key: str = "dataset.path") -> None:
    """Unreadable files (path, reason) found while decoding a folder of `total` files: refused naming them, or, with
    `skip`, left out (by the caller) and counted in the log. `key` names the folder's config key (a style folder's
    task.style.root has no skip_unreadable)."""
    if not bad:
        return
    listing = "\n  ".join(f"{f} ({r})" for f, r in bad[:5]) + ("\n  ..." if len(bad) > 5 else "")
    if not skip:
        raise ConfigError(
            f"{len(bad)} unreadable image file(s) in {key}={path}:\n  {listing}\n"
            + ("Remove or fix them, or set dataset.source.skip_unreadable=true to leave them out."
               if key == "dataset.path" else "Remove or fix them.")
        )
    log.warning("Skipped %d unreadable image file(s) of %d in %s:\n  %s", len(bad), total, path, listing)
    if len(bad) == total:
        raise ConfigError(f"{key}={path}: none of the {total} image files can be read.")


def _open_image(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return decode_image(f)


def decode_image(data) -> Image.Image:
    """The image in `data` (bytes or a binary file) as it is meant to be seen: the EXIF orientation of camera
    files applied (else read sideways)."""
    img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    img.load()
    return ImageOps.exif_transpose(img)
