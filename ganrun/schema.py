"""Typed schema for the top level and the trainer: Hydra rejects wrong types and unknown keys at composition.

Types only: every value, with the comment that explains it, is written once, in conf/config.yaml (MISSING here).

Group options (dataset, model, loss, ...) stay free-form YAML: their `_target_` signatures check them when
they are instantiated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TrainerSchema:
    steps: int = MISSING
    batch_size: int = MISSING
    g_batch_size: Optional[int] = MISSING
    n_critic: int = MISSING
    device: str = MISSING
    amp: bool = MISSING
    reuse_fakes: bool = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    compile_mode: str = MISSING
    deterministic: bool = MISSING
    log_every: int = MISSING
    sample_every: int = MISSING
    ckpt_every: int = MISSING
    keep_ckpts: int = MISSING
    num_samples: int = MISSING
    num_workers: int = MISSING
    sync_bn: bool = MISSING


@dataclass
class DownstreamSchema:
    enabled: bool = MISSING
    steps: int = MISSING
    real_per_class: Optional[int] = MISSING
    ratio: float = MISSING
    num_generated: Optional[int] = MISSING
    repeats: int = MISSING
    seed: int = MISSING
    label_by_classifier: bool = MISSING
    generator: str = MISSING


@dataclass
class MetricsSchema:
    every: int = MISSING
    num_samples: int = MISSING
    final_num_samples: int = MISSING
    extractor: str = MISSING
    inception_weights: Optional[str] = MISSING
    download: bool = MISSING
    real_split: str = MISSING
    num_real: int = MISSING
    num_real_kept: int = MISSING
    batch_size: int = MISSING
    kid_subsets: int = MISSING
    kid_subset_size: int = MISSING
    pr_k: int = MISSING
    pr_samples: int = MISSING
    classifier_epochs: int = MISSING
    cache_dir: str = MISSING
    downstream: DownstreamSchema = field(default_factory=DownstreamSchema)


@dataclass
class EmaSchema:
    """Exponential moving average of G (ganrun/ema.py)."""
    enabled: bool = MISSING
    decay: float = MISSING
    start_step: int = MISSING
    rampup: bool = MISSING
    bn: str = MISSING
    bn_batches: int = MISSING
    bn_batch_size: int = MISSING


@dataclass
class GanrunSchema:
    dataset: Any = None
    model: Any = None
    loss: Any = None
    regularizer: Any = None
    optimizer: Any = None
    scheduler: Any = None
    augment: Any = None
    seed: int = MISSING
    resume: Optional[str] = MISSING
    resume_force: bool = MISSING
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    metrics: MetricsSchema = field(default_factory=MetricsSchema)
    ema: EmaSchema = field(default_factory=EmaSchema)
    search: Any = None  # free-form values that search presets (hparams_search/) map onto the config


ConfigStore.instance().store(name="ganrun_schema", node=GanrunSchema)


# Keys a resumed run may change on the command line (`ganrun resume=RUN key=value`): how long to train, how often
# to log and save, how to measure, and where data and compute live. Every other key is the experiment: changing
# it on resume is refused, naming the keys, unless resume_force=true (then the change is recorded in the run).
# A key here covers the keys below it (`metrics` covers metrics.*).
RESUMABLE_KEYS = (
    "resume", "resume_force", "metrics",
    "trainer.steps", "trainer.log_every", "trainer.sample_every", "trainer.ckpt_every", "trainer.keep_ckpts",
    "trainer.num_samples", "trainer.device", "trainer.num_workers", "trainer.sync_bn", "trainer.amp",
    "trainer.deterministic", "trainer.channels_last", "trainer.compile", "trainer.compile_mode",
    "dataset.in_memory", "dataset.path", "dataset.source.root", "dataset.source.path", "dataset.source.download",
)
