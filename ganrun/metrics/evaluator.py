"""Evaluate a generator: extractor choice, real-data statistics cached on disk, all scores with their protocol.

The real statistics depend only on (data, split, resolution, extractor), so they are computed once and
stored under `metrics.cache_dir`, keyed by a hash of exactly those; later evaluations and later runs load them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ganrun import distributed
from ganrun.checkpoint import load_data, save_atomic
from ganrun.data import DecodedImages, build_source, decode_all
from ganrun.data.decoded import resize_protocol
from ganrun.data.stream import decoded_source
from ganrun.errors import StorageError
from ganrun.metrics import scores, sizing
from ganrun.metrics.classifier import RECIPE, SmallClassifier, train_classifier
from ganrun.metrics.extractors import (
    INCEPTION_URL,
    ClassifierExtractor,
    InceptionExtractor,
    find_inception_weights,
    hub_inception_path,
)
from ganrun.trust import safe_name

log = logging.getLogger(__name__)


def progress(total: int, desc: str) -> tqdm:
    """A progress bar for one evaluation phase, shown on rank 0 in a terminal once it has run for 2 s (quick
    phases stay silent) and cleared when done; the log line with the result follows it."""
    return tqdm(total=total, desc=desc, unit="img", unit_scale=True, leave=False, delay=2, dynamic_ncols=True,
                disable=None if distributed.is_main() else True)


class MetricsUnavailable(RuntimeError):
    """No feature extractor can be had (no Inception weights and no labels to train the offline one)."""


def _tensor_hash(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha1()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _seeded_subset(n: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """The same `n` rows of each tensor, drawn at random with a fixed seed (a smoke run's classifier data)."""
    order = torch.randperm(len(tensors[0]), generator=torch.Generator().manual_seed(0))[:n]
    return [t[order] for t in tensors]


@contextlib.contextmanager
def fixed_precision():
    """TF32 changes FID on Ampere+ GPUs: evaluate in full float32, whatever training uses."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def load_real_splits(dataset_cfg, num_workers=0, cache_dir=None, source=None):
    """uint8 images and labels of the training split and a held-out split (the test split where the dataset
    has one, else a seeded 10% of the data). An image folder is the one this process decoded for training, when
    it is still in use (`decoded_source`), else decoded once here."""
    res, ch = dataset_cfg.resolution, dataset_cfg.channels
    source = source if source is not None else real_source(dataset_cfg, cache_dir)
    images, labels = decode_all(source, res, ch, num_workers)
    if "train" in dataset_cfg.source:
        test_images, test_labels = decode_all(build_source(dataset_cfg, train=False), res, ch, num_workers)
        return (images, labels), (test_images, test_labels)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = max(1, len(images) // 10)
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


def real_source(dataset_cfg, cache_dir=None):
    """The training split's source, a folder decoded (`decoded_source`)."""
    return decoded_source(build_source(dataset_cfg), dataset_cfg, cache_dir)


def real_statistics_key(metrics_cfg, dataset_cfg, data_hash: str, extractor_protocol: dict, n_real: int) -> str:
    """Hash of everything that changes the cached real statistics: the data and split, how many images feed the
    mean/covariance and how many features are kept (KID, precision/recall), the image size, the evaluation batch
    size (batched convolutions differ in the last bits), the extractor, and the library versions."""
    import torchmetrics

    fields = {"data": data_hash, "split": metrics_cfg.real_split, "n_real": n_real,
              "n_kept": min(metrics_cfg.num_real_kept, n_real), "batch_size": metrics_cfg.batch_size,
              "resolution": dataset_cfg.resolution, "channels": dataset_cfg.channels,
              "extractor": extractor_protocol, "torch": str(torch.__version__),
              "torchmetrics": torchmetrics.__version__}
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_cached(path: Path, keys=("state_dict", "num_classes", "test_accuracy")) -> dict | None:
    """A cache file's content, or None when it is absent or cannot be used (truncated, corrupt, another format):
    a damaged cache is recomputed with a warning naming the file, it never blocks a run."""
    if not path.is_file():
        return None
    try:
        saved = load_data(path)  # checksummed, bounded by the file's size, tensors only
        if not isinstance(saved, dict) or any(k not in saved for k in keys):
            raise ValueError(f"expected a dict with {', '.join(keys)}")
        return saved
    except Exception as exc:  # torch raises many types for a damaged file
        log.warning("Metrics cache file %s cannot be used (%s: %s); recomputing it.", path, type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return None


def _save_cache(state: dict, path: Path) -> None:
    """A cache that cannot be written (disk full, read-only) costs a recomputation later, never the run."""
    try:
        save_atomic(state, path)
    except StorageError as exc:
        log.warning("Metrics cache not written: %s", exc)


class Evaluator:
    """`largest`: generated samples of the largest evaluation this evaluator will make (default: the run's, from
    `metrics_cfg`); a smoke-sized one trains the offline classifier on a subset (`sizing.classifier_images`)."""

    def __init__(self, metrics_cfg, dataset_cfg, device, num_workers=0, largest: int | None = None):
        self.cfg, self.dataset_cfg, self.device = metrics_cfg, dataset_cfg, torch.device(device)
        self.largest = (sizing.largest_evaluation(metrics_cfg.every, metrics_cfg.num_samples,
                                                  metrics_cfg.final_num_samples) if largest is None else largest)
        self.cache_dir = Path(metrics_cfg.cache_dir).expanduser().resolve()
        self.stats_computed = self.cache_hits = 0
        source = real_source(dataset_cfg, self.cache_dir)
        train_split, test_split = load_real_splits(dataset_cfg, num_workers, source=source)
        # A decoded folder was fingerprinted as it was read: its key is not hashed again.
        self.data_hash = (source.content_key if isinstance(source, DecodedImages)
                          else _tensor_hash(*train_split, *test_split))
        self.extractor = self._extractor(train_split, test_split)
        real_images, real_labels = train_split if metrics_cfg.real_split == "train" else test_split
        self.real = {k: v.to(self.device) if torch.is_tensor(v) else v
                     for k, v in self._real_statistics(real_images).items()}  # scored on the device
        self.real_histogram = torch.bincount(real_labels, minlength=int(real_labels.max()) + 1).to(self.device)

    # -- feature extractor -------------------------------------------------------------------------------
    def _extractor(self, train_split, test_split):
        choice = self.cfg.extractor
        if choice not in ("auto", "inception", "classifier"):
            raise ValueError(f"metrics.extractor={choice!r} is not one of auto, inception, classifier")
        if choice == "auto" and self.device.type != "cuda" and not self.cfg.inception_weights:
            log.info("Metrics use ganrun's offline classifier features: Inception runs at a few images/s on a CPU "
                     "(set metrics.extractor=inception to force it).")
            choice = "classifier"
        if choice in ("auto", "inception"):
            weights, why = find_inception_weights(self.cfg.inception_weights, self.cfg.download)
            if weights is not None:
                log.info("Metrics use Inception-v3 weights %s", weights)
                return InceptionExtractor(weights, self.device)
            log.warning(
                "Standard Inception FID is unavailable: %s. Using ganrun's offline classifier features instead "
                "(tags end in _offline_classifier; not comparable with papers). For Inception FID, download %s and "
                "pass metrics.inception_weights=/path/to/%s, or put the file at %s.",
                why, INCEPTION_URL, hub_inception_path().name, hub_inception_path())
        return self._classifier(train_split, test_split)

    def _classifier(self, train_split, test_split) -> ClassifierExtractor:
        (images, labels), (test_images, test_labels) = train_split, test_split
        num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise MetricsUnavailable(
                "the offline classifier needs a labelled dataset (class sub-folders); this one has one class. "
                "Provide Inception weights with metrics.inception_weights=PATH, or set metrics.every=0.")
        epochs = self.cfg.classifier_epochs
        subset = sizing.classifier_images(self.largest)
        subset = subset if subset is not None and subset < len(images) else None
        path = self.cache_dir / "classifiers" / safe_name(
            f"{self.dataset_cfg.name}-{self.data_hash}-{RECIPE}-e{epochs}{f'-n{subset}' if subset else ''}.pt")
        saved = _load_cached(path)
        if saved is not None:
            model = SmallClassifier(images.shape[1], saved["num_classes"])
            model.load_state_dict(saved["state_dict"])
            accuracy = saved["test_accuracy"]
        else:
            log.info("Training the offline classifier on %d of the %d labelled images, once (cached in %s)%s",
                     subset or len(images), len(images), path,
                     f": a smoke run's subset, tested on {self.largest} held-out images (evaluations of "
                     f"{sizing.SHORT_SAMPLES} samples or more use all)" if subset else "")
            if subset:  # a smoke run: seconds, not the minutes of the whole split
                images, labels = _seeded_subset(subset, images, labels)
                test_images, test_labels = _seeded_subset(self.largest, test_images, test_labels)
            model, accuracy = train_classifier(images, labels, test_images, test_labels, num_classes, self.device,
                                               epochs=epochs)
            _save_cache({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                         "num_classes": num_classes, "test_accuracy": accuracy}, path)
        log.info("Offline classifier test accuracy: %.4f", accuracy)
        protocol = {
            "extractor": f"ganrun offline classifier ({path.name}), penultimate {model.head.in_features}-d "
                         "(NOT Inception; comparable only with other ganrun offline-classifier numbers)",
            "classifier_test_accuracy": accuracy,
            "resize": "none (dataset resolution)",
        }
        return ClassifierExtractor(model, protocol, self.device)

    # -- real statistics -------------------------------------------------------------------------------
    def _features(self, batches, total: int, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
        features, probabilities = [], []
        with fixed_precision(), progress(total, desc) as bar:
            for images in batches:
                f, p = self.extractor(images)
                features.append(f)
                probabilities.append(p)
                bar.update(len(images))
        return torch.cat(features), torch.cat(probabilities)

    def _real_statistics(self, images: torch.Tensor) -> dict:
        n_real = min(self.cfg.num_real, len(images))
        key = real_statistics_key(self.cfg, self.dataset_cfg, self.data_hash, self.extractor.protocol, n_real)
        path = self.cache_dir / "real_stats" / safe_name(
            f"{self.dataset_cfg.name}-{self.cfg.real_split}-{self.dataset_cfg.resolution}px-{self.extractor.name}-"
            f"{key}.pt")  # names from the config stay one file inside the cache dir
        cached = _load_cached(path, ("mu", "sigma", "n", "features"))
        if cached is not None:
            self.cache_hits += 1
            log.info("Real-data statistics loaded from cache %s", path)
            return cached
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n_real]
        batch = self.cfg.batch_size
        batches = (images[order[i : i + batch]].float().div(127.5).sub(1.0) for i in range(0, n_real, batch))
        features, _ = self._features(batches, n_real, f"Real-data statistics ({n_real} images, cached)")
        mu, sigma = scores.feature_statistics(features)
        stats = {"mu": mu.cpu(), "sigma": sigma.cpu(), "n": n_real,
                 "features": features[: self.cfg.num_real_kept].float().cpu()}
        _save_cache(stats, path)
        self.stats_computed += 1
        log.info("Real-data statistics of %d images computed and cached in %s", n_real, path)
        return stats

    # -- evaluation ------------------------------------------------------------------------------------
    def evaluate(self, generate: Callable[[int], torch.Tensor], num_samples: int) -> dict:
        """Scores of `num_samples` images from `generate(batch_size)` (images in [-1, 1])."""
        batch = self.cfg.batch_size
        local = -(-num_samples // distributed.world_size())  # under torchrun each rank makes its share
        sizes = [min(batch, local - i) for i in range(0, local, batch)]
        fake, probabilities = self._features((generate(size) for size in sizes), local,
                                             f"Evaluating {num_samples} generated samples")
        fake = distributed.gather_rows(fake)[:num_samples]
        probabilities = distributed.gather_rows(probabilities)[:num_samples]
        mu, sigma = scores.feature_statistics(fake)
        for n, what in ((self.real["n"], "real statistics"), (num_samples, "generated samples")):
            warning = scores.covariance_rank_warning(n, fake.shape[1], what)
            if warning:
                log.warning(warning)
        fid = scores.frechet_distance(self.real["mu"], self.real["sigma"], mu, sigma)
        if not torch.isfinite(torch.tensor(fid)):
            log.warning("FID is not finite (%s); reported as null.", fid)
            fid = None
        real_kept = self.real["features"]
        n_pr = min(len(real_kept), len(fake), self.cfg.pr_samples)
        kid_m = scores.kid_subset_size(self.cfg.kid_subset_size, len(real_kept), len(fake))
        kid, kid_std = scores.kernel_inception_distance(real_kept, fake, self.cfg.kid_subsets,
                                                        self.cfg.kid_subset_size)
        precision, recall = scores.precision_recall(real_kept[:n_pr], fake[:n_pr], k=self.cfg.pr_k)
        inception_score, inception_score_std = scores.inception_score(probabilities)
        values = {"FID": fid, "KID": kid, "KID_std": kid_std, "IS": inception_score, "IS_std": inception_score_std,
                  "precision": precision, "recall": recall}
        if isinstance(self.extractor, ClassifierExtractor):
            covered, kl = scores.class_coverage(probabilities.argmax(1), self.real_histogram)
            values.update({"classes_covered": covered, "class_KL": kl})
        protocol = {**self.extractor.protocol, "dataset": self.dataset_cfg.name, "real_split": self.cfg.real_split,
                    "n_real": self.real["n"], "n_generated": num_samples, "resolution": self.dataset_cfg.resolution,
                    "real_images": resize_protocol(self.dataset_cfg),
                    "precision_recall": f"k={self.cfg.pr_k}, {n_pr} real vs {n_pr} generated samples on the "
                                        f"{self.extractor.name} features above (Kynkaanniemi et al. 2019 use "
                                        "VGG-16 features and 50000 samples)",
                    "KID": f"{self.cfg.kid_subsets} subsets of {kid_m}, cubic polynomial kernel",
                    "IS": "10 equal splits, population std",
                    "sample_counts": f"{num_samples} generated vs {self.real['n']} real: FID, KID, IS and "
                                     "precision/recall depend on both (FID is biased upward at small N); compare "
                                     "only numbers of equal counts"}
        return {"extractor": self.extractor.name, "metrics": values, "protocol": protocol}
