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
from typing import Iterator

import numpy as np
import torch
import torchvision.transforms.v2 as T
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ganrun.config import build
from ganrun.errors import ConfigError

log = logging.getLogger(__name__)

IN_MEMORY_LIMIT_BYTES = 4 * 1024**3


HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_mode(img, mode: str):
    """`img` in mode L or RGB. 16-bit (and 32-bit integer) grayscale is scaled to 8 bits (v / 257, so 65535 ->
    255), not clipped: PIL's own convert("L") saturates every value above 255, turning a 16-bit image white."""
    if img.mode in HIGH_BIT_DEPTH_MODES:
        values = np.asarray(img, dtype=np.float64)
        if img.mode != "I" or values.max(initial=0) > 255:  # "I" holding 8-bit values stays as it is
            values = values / 257.0
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return img.convert(mode)


def image_transform(resolution: int, channels: int) -> T.Compose:
    """PIL image of any mode/size -> uint8 tensor (channels, resolution, resolution): resize, centre crop."""
    if channels not in (1, 3):
        raise ConfigError(f"dataset.channels={channels}: only 1 (grayscale) and 3 (RGB) are supported.")
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
        except Exception as exc:
            raise ConfigError(f"cannot read image {_sample_name(self.source, index)}: {exc}") from exc
        return self.transform(img), int(label)


def _sample_name(source, index) -> str:
    samples = getattr(source, "samples", None)
    if samples is not None:
        entry = samples[index]
        return entry[0] if isinstance(entry, tuple) else entry
    return f"#{index} of {type(source).__name__}"


def decode_all(source, resolution: int, channels: int, num_workers: int):
    """Decode a whole dataset to (uint8 N x C x H x W, int64 N)."""
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


def load_dataset(cfg) -> tuple[Dataset, dict]:
    """Instantiate the configured source and describe it (size, number of classes, content fingerprint)."""
    source = build(cfg.source)
    if len(source) == 0:
        raise ConfigError(f"dataset {cfg.name} is empty.")
    classes = getattr(source, "classes", None)
    num_classes = len(classes) if classes else cfg.get("num_classes")
    log.info("Dataset %s read from %s", cfg.name, getattr(source, "root", "?"))
    return source, {"size": len(source), "num_classes": num_classes, "fingerprint": fingerprint(source, cfg)}


FULL_CONTENT_HASH_BYTES = 1024**3


def fingerprint(source, cfg) -> str:
    """A short hash of the dataset's content, so a resume can refuse data that changed under the run.

    Decoded arrays (MNIST, CIFAR) are hashed whole; image folders by relative path, label and bytes of every
    file (path, label, size and mtime only when the files add up to more than 1 GiB, to stay cheap); generated
    toy data by its settings. Where the data lives (root, path) is not part of it: data may move.
    """
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
            digest.update(f"{os.path.relpath(path, root)}\0{label}\0{st.st_size}\0".encode())
            if whole:
                with open(path, "rb") as f:
                    digest.update(f.read())
            else:
                digest.update(str(st.st_mtime_ns).encode())
    else:
        settings = OmegaConf.to_container(cfg.source, resolve=True) if isinstance(cfg.source, DictConfig) else cfg.source
        settings = {k: v for k, v in dict(settings).items() if k not in ("root", "path", "download")}
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


class BatchStream:
    """Endless shuffled batches of (images in [-1, 1], labels) on `device`, with a resumable position."""

    def __init__(self, source, resolution, channels, batch_size, seed, device, in_memory="auto", num_workers=2,
                 rank=0, world_size=1):
        self.batch_size, self.seed, self.device = batch_size, seed, torch.device(device)
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
        nbytes = self.size * channels * resolution * resolution
        if in_memory == "auto":
            in_memory = nbytes <= IN_MEMORY_LIMIT_BYTES
        self.in_memory = bool(in_memory)
        if self.in_memory:
            images, labels = decode_all(source, resolution, channels, num_workers)
            self.images, self.labels = images.to(self.device), labels.to(self.device)
            log.info("Dataset held in memory on %s: %s uint8 (%.1f MB)", self.device,
                     tuple(self.images.shape), nbytes / 1e6)
        else:
            self.dataset = TransformedDataset(source, image_transform(resolution, channels))
            self.num_workers = num_workers
        self._iterator: Iterator | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator)

    def _index_batches(self, epoch: int, batch: int):
        while True:
            perm = self._permutation(epoch)
            for b in range(batch, self.batches_per_epoch):
                start = (b * self.world_size + self.rank) * self.batch_size
                yield perm[start : start + self.batch_size]
            epoch, batch = epoch + 1, 0

    def _start(self):
        index_batches = self._index_batches(self.epoch, self.batch)
        if self.in_memory:
            return (
                (self.images[idx], self.labels[idx])
                for idx in (i.to(self.device, non_blocking=True) for i in index_batches)
            )
        loader = DataLoader(
            self.dataset,
            batch_sampler=index_batches,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
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
        images = images.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        return images, labels.to(self.device, non_blocking=True)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._iterator = None
