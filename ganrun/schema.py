"""Typed schema for the top level and the trainer: Hydra rejects wrong types and unknown keys at composition.

Group options (dataset, model, loss, ...) stay free-form YAML: their `_target_` signatures check them when
they are instantiated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class TrainerSchema:
    steps: int = 5000
    batch_size: int = 64
    g_batch_size: Optional[int] = None
    n_critic: int = 1
    device: str = "auto"
    amp: bool = False
    deterministic: bool = False
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 1000
    keep_ckpts: int = 3
    num_samples: int = 64
    num_workers: int = 2
    sync_bn: bool = False


@dataclass
class MetricsSchema:
    every: int = 1000
    num_samples: int = 10000
    final_num_samples: int = 50000
    extractor: str = "auto"
    inception_weights: Optional[str] = None
    download: bool = True
    real_split: str = "train"
    num_real: int = 50000
    num_real_kept: int = 10000
    batch_size: int = 250
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    pr_samples: int = 10000
    classifier_epochs: int = 1
    cache_dir: str = "~/.cache/ganrun"


@dataclass
class EmaSchema:
    """Exponential moving average of G (ganrun/ema.py)."""
    enabled: bool = False
    decay: float = 0.999
    start_step: int = 0
    rampup: bool = False
    bn: str = "standing"    # standing | batch | averaged | raw
    bn_batches: int = 16
    bn_batch_size: int = 64


@dataclass
class GanrunSchema:
    dataset: Any = None
    model: Any = None
    loss: Any = None
    regularizer: Any = None
    optimizer: Any = None
    scheduler: Any = None
    augment: Any = None
    seed: int = 0
    resume: Optional[str] = None
    resume_force: bool = False
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    metrics: MetricsSchema = field(default_factory=MetricsSchema)
    ema: EmaSchema = field(default_factory=EmaSchema)
    search: Any = None  # free-form values that search presets (hparams_search/) map onto the config


ConfigStore.instance().store(name="ganrun_schema", node=GanrunSchema)
