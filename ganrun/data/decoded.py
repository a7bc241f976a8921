"""An image folder decoded once per process into one uint8 tensor that the stream, the fingerprint and the evaluator
share (or, past `dataset.in_memory_gb`, one prepared uint8 .npy file made once and memory-mapped by every later start
and every rank, as stylegan's dataset tool does).

One pass reads each file's bytes once: they feed the content fingerprint (a resume refuses changed data) and are
decoded, EXIF-rotated, converted, and resized (torchvision bilinear with antialias=True, then a centre crop) or
zero-padded to the configured shape. An unreadable file is named (or left out and counted, `skip_unreadable`).
Decoding in threads: PIL's decoders and torch's resize release the GIL.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ganrun.checkpoint import write_atomic
from ganrun.errors import ConfigError

log = logging.getLogger(__name__)

RESIZE_FILTER = "torchvision bilinear, antialias=True"  # what image_transform's T.Resize does to uint8 tensors
FULL_CONTENT_HASH_BYTES = 1024**3  # folders above it are fingerprinted by path, label, size and mtime
IN_MEMORY_GB = 4.0  # default of dataset.in_memory_gb
PREPARED_FORMAT = 1  # part of a prepared file's name: a new layout never reads an old file
_DECODE_THREADS = min(8, os.cpu_count() or 1)

_decoded: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # this process's decodes, while one is in use


def resize_protocol(cfg) -> str:
    """How the images reach `dataset.resolution`: the data part of every evaluation's protocol."""
    if cfg.get("resize") == "pad":
        return f"zero-padded (centred) to {cfg.resolution} px"
    return f"resized (shorter side) to {cfg.resolution} px with {RESIZE_FILTER}, centre-cropped"


def default_cache_dir() -> Path:
    """metrics.cache_dir's default: prepared files live next to the real statistics they feed."""
    return Path(os.environ.get("GANRUN_CACHE", "~/.cache/ganrun")).expanduser()


class DecodedImages(Dataset):
    """A folder's images as uint8 (N, C, H, W) with int64 labels: item i is (images[i], label i).

    `prepared` names the memory-mapped file the images come from (None: held in memory); a DataLoader worker
    reopens it rather than receiving a pickled copy of the whole array."""

    def __init__(self, images, labels, samples, classes, root, fingerprint, protocol, prepared=None):
        self.images, self.labels, self.samples = images, labels, samples
        self.classes, self.root, self.fingerprint, self.protocol = classes, root, fingerprint, protocol
        self.prepared = prepared

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.prepared is not None:
            state["images"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.images is None:
            self.images = torch.from_numpy(_open_prepared(Path(self.prepared), len(self.labels)))

    @property
    def content_key(self) -> str:
        """The files' fingerprint and how they were turned into pixels: what cached real statistics depend on."""
        return hashlib.sha1(f"{self.fingerprint}\0{tuple(self.images.shape)}\0{self.protocol}".encode()).hexdigest()[:16]


def hash_entry(digest, path: str, label: int, root: str, st: os.stat_result, data: bytes | None) -> None:
    """One file's part of a folder's fingerprint: relative path, label, size, then its bytes (or its mtime when the
    folder is too large to read whole). Where the folder lives is not part of it: data may move."""
    digest.update(f"{os.path.relpath(path, root)}\0{label}\0{st.st_size}\0".encode())
    digest.update(data if data is not None else str(st.st_mtime_ns).encode())


def _entries(folder) -> list[tuple[str, int]]:
    return [(s if isinstance(s, tuple) else (s, 0)) for s in folder.samples]


def decode_folder(folder, cfg, cache_dir=None, collective: bool = False) -> DecodedImages:
    """`folder` (an image_folder source) decoded at `cfg`'s resolution, channels and resize mode, once per process:
    a second call while the first result is in use (the evaluator's, after the stream's) returns it. `collective`:
    every rank calls this together, so rank 0 makes a prepared file before the others read it."""
    from ganrun import distributed

    entries = _entries(folder)
    root = os.path.abspath(getattr(folder, "root", None) or os.path.commonpath([p for p, _ in entries]))
    stats = [os.stat(path) for path, _ in entries]
    skip = bool(getattr(folder, "skip_unreadable", False))
    nbytes = len(entries) * cfg.channels * cfg.resolution**2
    in_memory = cfg.get("in_memory", "auto")
    limit = float(cfg.get("in_memory_gb") or IN_MEMORY_GB) * 1024**3
    hold = in_memory is True or (in_memory == "auto" and nbytes <= limit)
    key = (root, tuple(entries), tuple((st.st_size, st.st_mtime_ns) for st in stats), cfg.resolution,
           cfg.channels, cfg.get("resize"), skip, hold)
    found = _decoded.get(key)
    if found is not None:
        return found
    job = _Decode(folder, cfg, entries, stats, root, skip)
    if hold:
        result = job.in_memory()
    else:
        with distributed.main_rank_first() if collective else contextlib.nullcontext():
            result = job.prepared(Path(cache_dir).expanduser() if cache_dir else default_cache_dir())
    _decoded[key] = result
    return result


class _Decode:
    """One decoding job: the files, how to read each, and the fingerprint of what was read."""

    def __init__(self, folder, cfg, entries, stats, root, skip):
        from ganrun.data.stream import image_transform, pad_image

        self.folder, self.entries, self.stats, self.root, self.skip = folder, entries, stats, root, skip
        self.shape = (cfg.channels, cfg.resolution, cfg.resolution)
        self.protocol = resize_protocol(cfg)
        self.whole = sum(st.st_size for st in stats) <= FULL_CONTENT_HASH_BYTES
        transform = image_transform(cfg.resolution, cfg.channels)
        pad = cfg.get("resize") == "pad"
        self.prepare = (lambda img, name: transform(pad_image(img, cfg.resolution, name))) if pad else (
            lambda img, name: transform(img))

    def _read(self, path: str):
        """(bytes, uint8 tensor or None, why it is unreadable or None). A file that decodes but has no 8-bit
        reading (negative values, say) is refused naming it, not skipped: it is not broken, it needs converting."""
        from ganrun.data.sources import decode_image

        with open(path, "rb") as f:
            data = f.read()
        try:
            img = decode_image(data)
        except Exception as exc:  # PIL raises many types for broken files
            return data, None, f"{type(exc).__name__}: {exc}"
        try:
            return data, self.prepare(img, path), None
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"cannot read image {path}: {exc}") from exc

    def _decoded(self):
        """(index, entry, tensor) of each readable file in order, hashing each as it comes; unreadable ones are
        refused or, with skip_unreadable, left out and counted (`sources.report_unreadable`)."""
        from ganrun.data.sources import report_unreadable

        self.digest, bad = hashlib.sha1(), []
        with _one_torch_thread(), ThreadPoolExecutor(max_workers=_DECODE_THREADS) as pool:
            for i, ((path, label), st, (data, tensor, why)) in enumerate(
                    zip(self.entries, self.stats, pool.map(self._read, [p for p, _ in self.entries]))):
                if why is not None:
                    bad.append((path, why))
                    continue
                hash_entry(self.digest, path, label, self.root, st, data if self.whole else None)
                yield i, label, tensor
        report_unreadable(bad, len(self.entries), self.root, self.skip, getattr(self.folder, "config_key", "dataset.path"))

    def _result(self, images, labels, kept, prepared=None) -> DecodedImages:
        classes = list(getattr(self.folder, "classes", []) or [])
        samples = [self.entries[i] for i in kept]
        return DecodedImages(images, torch.as_tensor(labels, dtype=torch.long), samples, classes, self.root,
                             self.digest.hexdigest()[:16], self.protocol, prepared)

    def in_memory(self) -> DecodedImages:
        images = torch.empty((len(self.entries), *self.shape), dtype=torch.uint8)
        labels, kept = [], []
        for i, label, tensor in self._decoded():
            images[len(kept)] = tensor
            labels.append(label)
            kept.append(i)
        log.info("Decoded %d images of %s once into memory: %s uint8 (%.1f MB); %s", len(kept), self.root,
                 (len(kept), *self.shape), len(kept) * np.prod(self.shape) / 1e6, self.protocol)
        return self._result(images[: len(kept)], labels, kept)

    def prepared(self, cache_dir: Path) -> DecodedImages:
        """The prepared file for these files and this shape: used when present and sound, else made (atomically)."""
        files = hashlib.sha1()
        for (path, label), st in zip(self.entries, self.stats):
            data = Path(path).read_bytes() if self.whole else None
            hash_entry(files, path, label, self.root, st, data)
        filter_tag = "pad" if self.protocol.startswith("zero") else "bilinear-aa"
        name = f"{files.hexdigest()[:16]}-{self.shape[1]}px-{self.shape[0]}ch-{filter_tag}-v{PREPARED_FORMAT}"
        images_path, index_path = cache_dir / "prepared" / f"{name}.npy", cache_dir / "prepared" / f"{name}.index.npy"
        opened = _open_prepared_pair(images_path, index_path, self.shape, len(self.entries))
        if opened is None:
            self._make(images_path, index_path)
            opened = _open_prepared_pair(images_path, index_path, self.shape, len(self.entries))
            if opened is None:
                raise ConfigError(f"the prepared file {images_path} was written but cannot be read back")
        else:
            log.info("Dataset read from the prepared file %s (made by an earlier start)", images_path)
        images, index = opened
        self.digest = files  # all listed files; the kept ones are those the index names
        kept = index[:, 0].tolist()
        return self._result(torch.from_numpy(images), index[:, 1], kept, prepared=str(images_path))

    def _make(self, images_path: Path, index_path: Path) -> None:
        row = int(np.prod(self.shape))
        index = []

        def write(f):
            header = _npy_header((len(self.entries), *self.shape))
            f.write(header)
            for i, label, tensor in self._decoded():
                f.write(tensor.contiguous().numpy().tobytes())
                index.append((i, label))
            f.seek(0)
            f.write(_npy_header((len(index), *self.shape), len(header)))
            f.truncate(len(header) + len(index) * row)

        log.info("Preparing %d images of %s as one uint8 file %s (once; later starts and other ranks reuse it)",
                 len(self.entries), self.root, images_path)
        write_atomic(images_path, write)
        write_atomic(index_path, lambda f: np.save(f, np.asarray(index, dtype=np.int64).reshape(-1, 2),
                                                   allow_pickle=False))


@contextlib.contextmanager
def _one_torch_thread():
    """torch's intra-op threads off while decoding: the decode threads already use the cores, and each image's
    resize is too small to split; on a busy 2-core machine the two kinds together made decoding 3-4x slower
    (benchmarks/folder_io.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _npy_header(shape: tuple, length: int | None = None) -> bytes:
    """A .npy (format 1.0) header for C-ordered uint8 `shape`, padded to `length` bytes (default: the next multiple
    of 64) so that a header for fewer rows can be written over it in place."""
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {tuple(shape)}, }}".encode()
    length = length or -(-(10 + len(text) + 1) // 64) * 64
    body = text + b" " * (length - 10 - len(text) - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + (len(body)).to_bytes(2, "little") + body


def _open_prepared(path: Path, rows: int | None = None):
    """The prepared array, memory-mapped copy-on-write, after checking that it is a plain file (never a link) of
    uint8 rows whose size matches its header. Never unpickled: it is data."""
    if path.is_symlink() or not path.is_file():
        raise ValueError("not a plain file")
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version != (1, 0):
            raise ValueError(f"unexpected .npy version {version}")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        offset = f.tell()
    if dtype != np.uint8 or fortran or len(shape) != 4 or (rows is not None and shape[0] != rows):
        raise ValueError(f"header says {dtype} {shape}")
    if path.stat().st_size != offset + int(np.prod(shape)):
        raise ValueError(f"{path.stat().st_size} bytes for {shape}")
    return np.memmap(path, dtype=np.uint8, mode="c", offset=offset, shape=shape)


def _open_prepared_pair(images_path: Path, index_path: Path, shape: tuple, listed: int):
    """(images, index) of a sound prepared file, or None when absent or unusable (logged, then made again)."""
    if not images_path.exists() and not index_path.exists():
        return None
    try:
        if index_path.is_symlink() or not index_path.is_file():
            raise ValueError(f"{index_path} is not a plain file")
        index = np.load(index_path, allow_pickle=False)
        if index.dtype != np.int64 or index.ndim != 2 or index.shape[1] != 2 or (
                len(index) and (index[:, 0].min() < 0 or index[:, 0].max() >= listed)):
            raise ValueError(f"{index_path} is not an index of the listed files")
        images = _open_prepared(images_path, len(index))
        if tuple(images.shape[1:]) != tuple(shape):
            raise ValueError(f"images of shape {images.shape[1:]}, expected {shape}")
        return images, index
    except (ValueError, OSError, SyntaxError) as exc:
        log.warning("Prepared dataset file %s cannot be used (%s); making it again.", images_path, exc)
        return None


__all__ = ["DecodedImages", "decode_folder", "hash_entry", "resize_protocol", "RESIZE_FILTER"]
