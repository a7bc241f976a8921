"""Exponential moving average of G's weights (torch.optim.swa_utils.AveragedModel), for samples and metrics.

theta_ema <- beta * theta_ema + (1 - beta) * theta after every G step. Before `start_step` the average just
follows G (beta = 0); with `rampup` beta = min(decay, (1 + t) / (10 + t)), t = steps since the start (the
num_updates rule of TensorFlow's ExponentialMovingAverage), so early averages are not dominated by the init.

BatchNorm needs care: running statistics collected under G's changing weights do not fit the averaged weights
(on a Fashion-MNIST DCGAN, EMA with averaged running statistics scores far worse than raw G). `bn` chooses:
- `standing`: before every use, recompute the statistics with `bn_batches` batches through the averaged G
  (cumulative average, fixed noise, training RNG untouched);
- `batch`: the averaged G normalises with each batch's own statistics (no running statistics kept);
- `averaged`: average the running statistics like the weights (AveragedModel's use_buffers);
- `raw`: use raw G's current running statistics (AveragedModel's default).
The last two are there to compare against; the samples of `standing` and `batch` come from a copy, so the
average itself is never disturbed.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel

from ganrun.errors import ConfigError
from ganrun.models.conditioning import random_labels

BN_MODES = ("standing", "batch", "averaged", "raw")


def _batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class GeneratorEMA:
    def __init__(self, G: nn.Module, z_dim: int, decay: float = 0.999, start_step: int = 0, rampup: bool = False,
                 bn: str = "standing", bn_batches: int = 16, bn_batch_size: int = 64, seed: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"ema.decay={decay} must be in [0, 1).")
        if bn not in BN_MODES:
            raise ConfigError(f"ema.bn={bn!r} is not one of {', '.join(BN_MODES)}.")
        self.decay, self.start_step, self.rampup = float(decay), int(start_step), bool(rampup)
        self.bn, self.bn_batches, self.bn_batch_size = bn, int(bn_batches), int(bn_batch_size)
        self.z_dim, self.seed = z_dim, seed
        self.beta = 0.0
        self.model = AveragedModel(G, avg_fn=self._average, use_buffers=bn == "averaged")
        self.model.requires_grad_(False)

    @classmethod
    def from_config(cls, G: nn.Module, cfg) -> GeneratorEMA:
        """The EMA a run's config describes (its `ema` section; `enabled` is the caller's business)."""
        settings = {k: v for k, v in cfg.ema.items() if k != "enabled"}
        return cls(G, cfg.model.z_dim, **settings, seed=cfg.seed)

    def _average(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged) -> torch.Tensor:
        return averaged + (current - averaged) * (1.0 - self.beta)

    def beta_at(self, step: int) -> float:
        """The decay used for the update after generator step `step` (1-based)."""
        if step <= self.start_step:
            return 0.0
        if self.rampup:
            t = step - self.start_step
            return min(self.decay, (1.0 + t) / (10.0 + t))
        return self.decay

    @torch.no_grad()
    def update(self, G: nn.Module, step: int) -> None:
        self.beta = self.beta_at(step)
        self.model.update_parameters(G)

    @torch.no_grad()
    def generator(self) -> nn.Module:
        """The averaged G, ready to sample in eval mode (standing statistics recomputed when chosen)."""
        G = self.model.module
        if self.bn in ("averaged", "raw") or not _batch_norms(G):
            return G.eval()
        G = copy.deepcopy(G)
        norms = _batch_norms(G)
        if self.bn == "batch":
            for m in norms:  # BatchNorm without running statistics normalises with the batch's, in eval mode too
                m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = False, None, None, None
        else:
            device = next(G.parameters()).device
            noise = torch.Generator(device).manual_seed(self.seed + 12345)
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
            G.train()
            for _ in range(self.bn_batches):
                z = torch.randn(self.bn_batch_size, self.z_dim, device=device, generator=noise)
                G(z, random_labels(G, self.bn_batch_size, device, noise))
        return G.eval()

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
