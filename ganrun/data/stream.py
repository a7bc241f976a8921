"""From a dataset source to an endless, resumable stream of training batches in [-1, 1].

Datasets that fit in memory are decoded once into one uint8 tensor (on the training device), so a step
costs an index and a cast instead of decoding images. Larger ones stream through a DataLoader. Both draw
batches from the same seeded permutation per epoch, so the stream's position (epoch, batch) is all a
checkpoint needs to continue exactly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ganrun.config import build
from ganrun.data.decoded import FULL_CONTENT_HASH_BYTES, DecodedImages, decode_folder, hash_entry, resize_protocol
from ganrun.errors import ConfigError

log = logging.getLogger(__name__)

IN_MEMORY_LIMIT_BYTES = 4 * 1024**3


HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_mode(img, mode: str):
    """`img` in mode L or RGB. High-bit-depth grayscale is scaled by its range, not clipped (PIL's own convert("L")
    saturates every value above 255: a 16-bit image turns white, a [0, 1] float one black); `eight_bits`."""
    if img.mode in HIGH_BIT_DEPTH_MODES:
        img = Image.fromarray(eight_bits(np.asarray(img, dtype=np.float64), img.mode), "L")
    return img.convert(mode)


def eight_bits(values: np.ndarray, mode: str) -> np.ndarray:
    """Grayscale values scaled to 0..255 by the range of their kind: 16-bit integers by 65535; 32-bit integers
    ("I", which also holds 8- and 16-bit PNGs) by the smallest of 255, 65535 and 2**31 - 1 that holds the maximum;
    floats ("F") in [0, 1] by 1, in [0, 255] as they are. Anything else (negative, NaN, floats beyond 255) has no
    range to read it by and is refused (ValueError: TransformedDataset names the file)."""
    if not np.isfinite(values).all() or values.min(initial=0) < 0:
        raise ValueError(f"mode {mode} image with values in [{values.min()}, {values.max()}]: negative or "
                         "non-finite values have no 0..255 reading; convert the image first.")
    top = values.max(initial=0)
    if mode == "F":
        if top > 255:
            raise ValueError(f"float image with values up to {top}: neither [0, 1] nor [0, 255]; convert it first.")
        full = 1.0 if top <= 1.0 else 255.0
    elif mode == "I":
        full = next(r for r in (255.0, 65535.0, 2.0**31 - 1) if top <= r)
    else:
        full = 65535.0
    return np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)


def image_transform(resolution: int, channels: int) -> T.Compose:
    """PIL image of any mode/size -> uint8 tensor (channels, resolution, resolution): resize, centre crop."""
    mode = "L" if channels == 1 else "RGB"
    return T.Compose(
        [
            T.Lambda(functools.partial(to_mode, mode=mode)),
            T.PILToTensor(),
            T.Resize(resolution, antialias=True),
            T.CenterCrop(resolution),
        ]
    )


class TransformedDataset(Dataset):
    """Applies the image transform and names the file that failed to decode."""

    def __init__(self, source: Dataset, transform):
        self.source, self.transform = source, transform

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        try:
            img, label = self.source[index]
            return self.transform(img), int(label)
        except Exception as exc:
            raise ConfigError(f"cannot read image {_sample_name(self.source, index)}: {exc}") from exc


def _sample_name(source, index) -> str:
    samples = getattr(source, "samples", None)
    if samples is not None:
        entry = samples[index]
        return entry[0] if isinstance(entry, tuple) else entry
    return f"#{index} of {type(source).__name__}"


def decode_all(source, resolution: int, channels: int, num_workers: int):
    """Decode a whole dataset to (uint8 N x C x H x W, int64 N); a folder decoded by `load_dataset` is returned as
    it is (no copy)."""
    if isinstance(source, DecodedImages) and tuple(source.images.shape[1:]) == (channels, resolution, resolution):
        return source.images, source.labels
    data = getattr(source, "data", None)
    if data is not None and hasattr(source, "targets"):
        # torchvision's MNIST/CIFAR keep the decoded array: skip PIL entirely.
        images = torch.as_tensor(data)
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        if images.shape[1] != channels:
            images = images.expand(-1, 3, -1, -1) if channels == 3 else _to_gray(images)
        if images.shape[-1] != resolution or images.shape[-2] != resolution:
            images = T.functional.center_crop(T.functional.resize(images, resolution, antialias=True), resolution)
        return images.contiguous(), torch.as_tensor(source.targets, dtype=torch.long)
    loader = DataLoader(
        TransformedDataset(source, image_transform(resolution, channels)),
        batch_size=256,
        num_workers=num_workers,
    )
    parts = [(x, y) for x, y in loader]
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def _to_gray(images: torch.Tensor) -> torch.Tensor:
    return T.functional.rgb_to_grayscale(images)




def _pad_offsets(height: int, width: int, resolution: int, name: str) -> tuple[int, int]:
    if height > resolution or width > resolution:
        raise ConfigError(f"dataset.resize=pad cannot fit {width}x{height} images of {name} into "
                          f"dataset.resolution={resolution}: raise the resolution or use dataset.resize=resize.")
    return (resolution - height) // 2, (resolution - width) // 2


class PaddedSource(Dataset):
    """A dataset source whose images are zero-padded (centred) to resolution x resolution: the lossless way to,
    e.g., 28 px Fashion-MNIST at the 32 px a 4x4-start DCGAN makes, where resizing would blur every image.

    Sources that keep their decoded array (torchvision's MNIST family, CIFAR) get it padded once as `data`, so
    `decode_all` keeps its fast path; others are padded image by image.
    """

    def __init__(self, source, resolution: int):
        self.source, self.resolution = source, resolution
        self.classes = getattr(source, "classes", None)
        self.root = getattr(source, "root", "?")
        data = getattr(source, "data", None)
        if data is not None and hasattr(source, "targets"):
            data = torch.as_tensor(data)  # (N, H, W) or channels last (N, H, W, C)
            top, left = _pad_offsets(data.shape[1], data.shape[2], resolution, type(source).__name__)
            pad = [left, resolution - data.shape[2] - left, top, resolution - data.shape[1] - top]
            self.data = F.pad(data, [0, 0] + pad if data.ndim == 4 else pad)
            self.targets = source.targets

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        img, label = self.source[index]
        return pad_image(img, self.resolution, _sample_name(self.source, index)), label


def pad_image(img, resolution: int, name: str):
    """`img` centred on a zero (black, transparent) canvas of resolution x resolution."""
    top, left = _pad_offsets(img.height, img.width, resolution, name)
    canvas = Image.new(img.mode, (resolution, resolution))
    canvas.paste(img, (left, top))
    return canvas


def build_source(cfg, **overrides):
    """The configured dataset source, padded to `cfg.resolution` when `cfg.resize` is pad."""
    mode = cfg.get("resize", "resize")  # the choices: ganrun.schema
    source = build(cfg.source, **overrides)
    return PaddedSource(source, cfg.resolution) if mode == "pad" else source


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of ganrun needs to know about a dataset, decided once from its config and source."""

    name: str
    size: int  # samples (modes for toy data)
    num_classes: int | None
    sample_shape: tuple  # one sample: (channels, H, W) for images, `dataset.shape` for points
    points: bool  # toy points drawn fresh each batch (scatter plots, scored by the mixture) rather than images
    fingerprint: str = ""  # content hash of the data (see `fingerprint`); "" when the source was not loaded
    protocol: str = ""  # how images reach the sample shape (`decoded.resize_protocol`); "" for points

    def describe(self) -> str:
        kind = f"{self.size} modes of {self.sample_shape[0]}-D points" if self.points else f"{self.size} images"
        classes = f", {self.num_classes} classes" if self.num_classes else ", unlabelled"
        protocol = f" ({self.protocol})" if self.protocol else ""
        return f"Dataset {self.name}: {kind}{classes}, sample shape {self.sample_shape}{protocol}"


def dataset_info(cfg, size: int = 0, fingerprint: str = "") -> DatasetInfo:
    """The description of `cfg` (a dataset config); `size` and `fingerprint` are known once the source is loaded."""
    points = bool(cfg.get("shape"))
    shape = tuple(cfg.shape) if points else (cfg.channels, cfg.resolution, cfg.resolution)
    protocol = "" if points else resize_protocol(cfg)
    return DatasetInfo(cfg.name, size, cfg.get("num_classes"), shape, points, fingerprint, protocol)


def resolve_root(cfg) -> None:
    """Config fix-up: a relative `dataset.source.root` (or a folder dataset's `dataset.path`) means relative to
    where ganrun was started; it is stored absolute so resume and ganrun-eval find the data from anywhere."""
    for key in ("root", "path"):
        if isinstance(cfg.source.get(key), str) and cfg.source[key]:
            cfg.source[key] = os.path.abspath(os.path.expanduser(cfg.source[key]))
    if "path" in cfg and not OmegaConf.is_missing(cfg, "path") and isinstance(cfg.path, str):
        cfg.path = os.path.abspath(os.path.expanduser(cfg.path))


def fill_num_classes(cfg, source) -> None:
    """Config fix-up: a class-per-folder tree names its classes; `dataset.num_classes` takes their count."""
    classes = getattr(source, "classes", None)
    if cfg.get("num_classes") is None and classes:
        cfg.num_classes = len(classes)


GRAYSCALE_MODES = ("1", "L", "LA", "La", "P;L", *HIGH_BIT_DEPTH_MODES)  # PIL modes with one colour channel


def fill_image_shape(cfg, source) -> None:
    """Config fix-up for image folders: `dataset.resolution` left null is taken from the first image (its shorter
    side), `dataset.channels` from the mode most images have (1 for grayscale modes, else 3; a tie goes to the
    first image's), with a warning naming the count when the folder mixes them. What was chosen is logged either
    way, so a 28 px grayscale folder is neither upsampled to 64 px RGB nor converted silently."""
    if not hasattr(source, "samples") or "resolution" not in cfg or "channels" not in cfg:
        return
    readable = ((i, _header(_sample_name(source, i))) for i in range(len(source)))
    index, (size, mode) = next(((i, h) for i, h in readable if h is not None), (0, ((0, 0), "?")))
    name = _sample_name(source, index)
    if min(size) == 0:
        return  # no header can be read: decoding names the unreadable files
    inferred = []
    if cfg.resolution is None:
        cfg.resolution = min(size)
        inferred.append("resolution")
    if cfg.channels is None:
        cfg.channels = majority_channels(source, 1 if mode in GRAYSCALE_MODES else 3)
        inferred.append("channels")
    how = (f"{' and '.join(inferred)} inferred from the first image" if inferred
           else "as configured; the first image is")
    log.info("Images: %d px, %d channel(s) (dataset.resolution, dataset.channels %s %s: %dx%d, mode %s); "
             "others are converted, resized and centre-cropped to it", cfg.resolution, cfg.channels, how, name,
             size[0], size[1], mode)


def _header(path: str):
    """(size, mode) from an image file's header, without decoding its pixels; None when it cannot be read. The
    size is as stored (an EXIF rotation swaps it, which leaves its shorter side as it is)."""
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except Exception:  # PIL raises many types for broken files; decoding names them
        return None


def majority_channels(source, first: int) -> int:
    """1 or 3: the channel count of most images of an image folder (their headers only are read; unreadable ones
    are left to decoding, which names them)."""
    headers = [h for h in (_header(_sample_name(source, i)) for i in range(len(source))) if h is not None]
    gray = sum(mode in GRAYSCALE_MODES for _, mode in headers)
    colour = len(headers) - gray
    channels = first if gray == colour else 1 if gray > colour else 3
    if gray and colour:
        log.warning("The folder mixes %d grayscale and %d colour images: all are converted to %s (%s), "
                    "dataset.channels=%d. Set dataset.channels to choose.", gray, colour,
                    "grayscale" if channels == 1 else "RGB", "the majority" if gray != colour else "a tie: the "
                    "first image's mode", channels)
    return channels


def check_labels(cfg, source) -> None:
    """One label per image, each in 0..dataset.num_classes-1: else a conditional model's first step crashes inside
    its class embedding, or the stream reads past the end of a short labels file."""
    inner = getattr(source, "source", source)  # PaddedSource wraps the source
    targets, data = getattr(inner, "targets", None), getattr(inner, "data", None)
    if targets is None or len(targets) == 0:
        return
    where = getattr(inner, "raw_folder", None) or getattr(inner, "root", cfg.name)
    if data is not None and len(targets) != len(data):
        raise ConfigError(f"dataset {cfg.name} ({where}): {len(targets)} labels for {len(data)} images; the labels "
                          "file does not match the images file.")
    labels = torch.as_tensor(targets)
    low, high, classes = int(labels.min()), int(labels.max()), cfg.get("num_classes")
    if low < 0 or (classes and high >= classes):
        raise ConfigError(f"dataset {cfg.name} ({where}) has labels {low}..{high}, outside 0..{(classes or 0) - 1} "
                          f"(dataset.num_classes={classes}): fix dataset.num_classes or the labels file.")


def load_dataset(cfg, cache_dir=None) -> tuple[Dataset, DatasetInfo]:
    """Instantiate the configured source after the config fix-ups (which edit `cfg` in place), and describe it.
    An image folder comes back decoded (`decoded_source`; a prepared file, when it needs one, goes to
    `cache_dir`): every rank calls this together."""
    resolve_root(cfg)
    source = build_source(cfg)
    if len(source) == 0:
        raise ConfigError(f"dataset {cfg.name} is empty.")
    fill_num_classes(cfg, source)
    check_labels(cfg, source)
    fill_image_shape(cfg, source)
    source = decoded_source(source, cfg, cache_dir, collective=True)
    log.info("Dataset %s read from %s", cfg.name, getattr(source, "root", "?"))
    return source, dataset_info(cfg, len(source), fingerprint(source, cfg))


def decoded_source(source, cfg, cache_dir=None, collective: bool = False):
    """An image folder (padded or not) decoded once per process (`decoded.decode_folder`: the stream, the
    fingerprint and the evaluator share it); other sources as they are."""
    inner = source.source if isinstance(source, PaddedSource) else source
    if getattr(inner, "samples", None) is None or getattr(inner, "data", None) is not None:
        return source
    return decode_folder(inner, cfg, cache_dir, collective)


def make_stream(source, info: DatasetInfo, cfg, device, rank: int = 0, world: int = 1):
    """The endless batch stream of a run: fresh draws for toy points, a resumable shuffled stream for images."""
    trainer = cfg.trainer
    if info.points:
        return source.stream(trainer.batch_size, device)
    return BatchStream(source, cfg.dataset.resolution, cfg.dataset.channels, trainer.batch_size, cfg.seed, device,
                       cfg.dataset.in_memory, trainer.num_workers, rank, world,
                       torch.channels_last if trainer.channels_last else torch.contiguous_format)


def fingerprint(source, cfg) -> str:
    """A short hash of the dataset's content, so a resume can refuse data that changed under the run.

    Decoded arrays (MNIST, CIFAR) are hashed whole; image folders by relative path, label and bytes of every
    file (path, label, size and mtime only when the files add up to more than 1 GiB, to stay cheap: `hash_entry`),
    as read by the one decoding pass (`DecodedImages.fingerprint`); generated toy data by its settings. Where the
    data lives (root, path) is not part of it: data may move.
    """
    if isinstance(source, DecodedImages):
        return source.fingerprint
    digest = hashlib.sha1()
    data, samples = getattr(source, "data", None), getattr(source, "samples", None)
    if data is not None and hasattr(source, "targets"):
        for array in (data, source.targets):
            array = np.ascontiguousarray(np.asarray(array))
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    elif samples is not None:
        entries = [(s if isinstance(s, tuple) else (s, 0)) for s in samples]
        root = os.path.abspath(getattr(source, "root", None) or os.path.commonpath([p for p, _ in entries]))
        stats = [os.stat(path) for path, _ in entries]
        whole = sum(st.st_size for st in stats) <= FULL_CONTENT_HASH_BYTES
        for (path, label), st in zip(entries, stats):
            hash_entry(digest, path, label, root, st, Path(path).read_bytes() if whole else None)
    else:
        settings = OmegaConf.to_container(cfg.source, resolve=True) if isinstance(cfg.source, DictConfig) else cfg.source
        settings = {k: v for k, v in dict(settings).items() if k not in ("root", "path", "download")}
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def in_memory_limit(device: torch.device) -> int:
    """The most bytes `in_memory: auto` holds: 4 GiB, and on a GPU at most a quarter of its free memory (every
    rank holds its own copy, next to the networks and their activations)."""
    if device.type == "cuda":
        return min(IN_MEMORY_LIMIT_BYTES, torch.cuda.mem_get_info(device)[0] // 4)
    return IN_MEMORY_LIMIT_BYTES


class BatchStream:
    """Endless shuffled batches of (images in [-1, 1], labels) on `device`, with a resumable position."""

    def __init__(self, source, resolution, channels, batch_size, seed, device, in_memory="auto", num_workers=2,
                 rank=0, world_size=1, memory_format=torch.contiguous_format):
        self.batch_size, self.seed, self.device = batch_size, seed, torch.device(device)
        self.memory_format = memory_format  # channels_last networks get channels_last batches
        self.rank, self.world_size = rank, world_size
        self.size = len(source)
        if batch_size * world_size > self.size:
            raise ConfigError(
                f"trainer.batch_size={batch_size}"
                + (f" x {world_size} ranks" if world_size > 1 else "")
                + f" is larger than the dataset ({self.size} images)."
            )
        # Every rank draws the same permutation and takes its own slice of each global batch.
        self.batches_per_epoch = self.size // (batch_size * world_size)
        self.epoch, self.batch = 0, 0
        self.source = source  # a decoded folder stays shared with the evaluator while the stream lives
        nbytes = self.size * channels * resolution * resolution
        if in_memory == "auto":
            in_memory = nbytes <= in_memory_limit(self.device)
        self.in_memory = bool(in_memory)
        if self.in_memory:
            images, labels = decode_all(source, resolution, channels, num_workers)
            self.images, self.labels = images.to(self.device), labels.to(self.device)
            log.info("Dataset held in memory on %s: %s uint8 (%.1f MB)", self.device,
                     tuple(self.images.shape), nbytes / 1e6)
        else:
            self.dataset = source if isinstance(source, DecodedImages) else TransformedDataset(
                source, image_transform(resolution, channels))
            self.num_workers = num_workers
        self._iterator: Iterator | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator)

    def _index_batches(self, epoch: int, batch: int, device: torch.device | None = None):
        """The index batches from (epoch, batch) on, sliced from a permutation copied to a CUDA `device` once per
        epoch from pinned memory (a copy from pageable memory would wait for the GPU, once per batch before)."""
        while True:
            perm = self._permutation(epoch)
            if device is not None and device.type == "cuda":
                perm = perm.pin_memory().to(device, non_blocking=True)
            for b in range(batch, self.batches_per_epoch):
                start = (b * self.world_size + self.rank) * self.batch_size
                yield perm[start : start + self.batch_size]
            epoch, batch = epoch + 1, 0

    def _start(self):
        if self.in_memory:
            return ((self.images[idx], self.labels[idx])
                    for idx in self._index_batches(self.epoch, self.batch, self.device))
        index_batches = self._index_batches(self.epoch, self.batch)
        loader = DataLoader(
            self.dataset,
            batch_sampler=index_batches,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            # Its own seed for worker seeding: starting an iterator must not draw from the training RNG, or a
            # resumed run (which starts one mid-run) would draw different noise than an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
        )
        return iter(loader)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iterator is None:
            self._iterator = self._start()
        images, labels = next(self._iterator)
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        images = images.to(self.device, non_blocking=True)
        images = images.to(torch.float32, memory_format=self.memory_format).div_(127.5).sub_(1.0)
        return images, labels.to(self.device, non_blocking=True)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._iterator = None
