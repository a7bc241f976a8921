"""One check of the composed config before anything is built: `validate(cfg)`.

Hydra's schema types the top level, but keys added with `+` slip past it, and many values are well-typed yet
meaningless (a split that does not exist, a negative learning-rate factor, one generated sample for a
covariance). Each is refused here with a ConfigError naming the key, instead of a silent wrong run, a NaN in
metrics.json, a raw traceback or a crash mid-run.
"""

from __future__ import annotations

import dataclasses
import re

from omegaconf import DictConfig, OmegaConf

from ganrun.config import check_trainer
from ganrun.errors import ConfigError
from ganrun.schema import EmaSchema, GanrunSchema, MetricsSchema, TrainerSchema

REAL_SPLITS = ("train", "test")
EXTRACTORS = ("auto", "inception", "classifier")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def validate(cfg: DictConfig) -> None:
    """Refuse a bad config before training, naming the key. Call it on the composed config first thing."""
    _known_keys(cfg)
    check_trainer(cfg.trainer)
    _device(cfg.trainer.device)
    _dataset(cfg.dataset)
    _model(cfg.model)
    _scheduler(cfg.get("scheduler"))
    _metrics(cfg.metrics)
    _ema(cfg.ema)


def _schema_keys(schema) -> set[str]:
    return {f.name for f in dataclasses.fields(schema)}


def _known_keys(cfg: DictConfig) -> None:
    """Keys added with `+` to the typed sections (a typo such as `+trainer.stepz=...` would do nothing)."""
    sections = {"": GanrunSchema, "trainer.": TrainerSchema, "metrics.": MetricsSchema, "ema.": EmaSchema}
    extra = {"hydra"}  # present when the config comes from Hydra's compose with return_hydra_config
    for prefix, schema in sections.items():
        node = cfg if not prefix else cfg.get(prefix.rstrip("."))
        if not isinstance(node, DictConfig):
            continue
        unknown = sorted(set(node.keys()) - _schema_keys(schema) - (extra if not prefix else set()))
        if unknown:
            raise ConfigError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(prefix + k for k in unknown)}: "
                f"{(prefix.rstrip('.') or 'the top level')} has {', '.join(sorted(_schema_keys(schema)))}."
            )


def _int_at_least(node, key: str, minimum: int, name: str) -> None:
    value = node.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}.{key}={value!r} must be an integer >= {minimum}.")


def _number_at_least(node, key: str, minimum: float, name: str) -> None:
    value = node.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}.{key}={value!r} must be a number >= {minimum}.")


def _device(device) -> None:
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(f"trainer.device={device!r} is not a device ganrun trains on: auto | cpu | cuda | cuda:N | mps.")


def _dataset(dataset) -> None:
    if dataset.get("shape"):  # toy 2-D points
        return
    # null: taken from the first image of a folder when the data is loaded (ganrun.data.fill_image_shape)
    if dataset.get("channels") not in (1, 3, None):
        raise ConfigError(f"dataset.channels={dataset.get('channels')!r}: only 1 (grayscale) and 3 (RGB) are supported.")
    if dataset.get("resolution") is not None:
        _int_at_least(dataset, "resolution", 4, "dataset")


def _model(model) -> None:
    _int_at_least(model, "z_dim", 1, "model")
    for part in ("generator", "discriminator"):
        node = model.get(part)
        if not isinstance(node, DictConfig):
            continue
        if node.get("width") is not None:
            _int_at_least(node, "width", 1, f"model.{part}")
        hidden = node.get("hidden")
        if hidden is not None and (not OmegaConf.is_list(hidden) or not hidden
                                   or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden)):
            raise ConfigError(f"model.{part}.hidden={OmegaConf.to_container(hidden) if OmegaConf.is_config(hidden) else hidden!r} "
                              "must be a non-empty list of positive integers.")


def _scheduler(scheduler) -> None:
    if not isinstance(scheduler, DictConfig):
        return
    for key in ("final_factor", "warmup_start_factor"):
        if key in scheduler:  # a negative factor is a negative learning rate: gradient ascent
            _number_at_least(scheduler, key, 0.0, "scheduler")
    if "warmup_steps" in scheduler:
        _int_at_least(scheduler, "warmup_steps", 0, "scheduler")


def _metrics(metrics) -> None:
    if metrics.real_split not in REAL_SPLITS:
        raise ConfigError(f"metrics.real_split={metrics.real_split!r} is not one of {', '.join(REAL_SPLITS)}.")
    if metrics.extractor not in EXTRACTORS:
        raise ConfigError(f"metrics.extractor={metrics.extractor!r} is not one of {', '.join(EXTRACTORS)}.")
    _int_at_least(metrics, "every", 0, "metrics")
    _int_at_least(metrics, "final_num_samples", 0, "metrics")
    evaluating = metrics.every > 0 or metrics.final_num_samples > 0
    if not evaluating:
        return
    # FID needs a covariance (>= 2 samples); KID needs subsets of >= 2; the k-NN manifolds need k+1 points.
    if metrics.every > 0:
        _int_at_least(metrics, "num_samples", 2, "metrics")
    if metrics.final_num_samples == 1:
        raise ConfigError("metrics.final_num_samples=1 must be 0 (no final report) or >= 2.")
    for key, minimum in (("num_real", 2), ("num_real_kept", 2), ("batch_size", 1), ("kid_subsets", 1),
                         ("kid_subset_size", 2), ("pr_k", 1), ("pr_samples", 2), ("classifier_epochs", 1)):
        _int_at_least(metrics, key, minimum, "metrics")
    # precision/recall use min(pr_samples, num_real_kept, generated) points per side: k must stay below it.
    sides = {"metrics.pr_samples": metrics.pr_samples, "metrics.num_real_kept": metrics.num_real_kept,
             "metrics.num_real": metrics.num_real}
    if metrics.every > 0:
        sides["metrics.num_samples"] = metrics.num_samples
    if metrics.final_num_samples > 0:
        sides["metrics.final_num_samples"] = metrics.final_num_samples
    smallest = min(sides, key=sides.get)
    if metrics.pr_k >= sides[smallest]:
        raise ConfigError(f"metrics.pr_k={metrics.pr_k} must be below {smallest}={sides[smallest]} (the k-NN radius "
                          "of precision/recall needs k + 1 points).")


def _ema(ema) -> None:
    if not ema.enabled:
        return
    _number_at_least(ema, "decay", 0.0, "ema")
    if ema.decay >= 1.0:
        raise ConfigError(f"ema.decay={ema.decay} must be in [0, 1).")
    _int_at_least(ema, "start_step", 0, "ema")
    _int_at_least(ema, "bn_batches", 1, "ema")
    _int_at_least(ema, "bn_batch_size", 1, "ema")
