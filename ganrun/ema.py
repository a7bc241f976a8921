"""Exponential moving average of G's weights, for samples and metrics.

theta_ema <- beta * theta_ema + (1 - beta) * theta after every G step, as one `torch._foreach_lerp_` on the
device (stylegan2-ada's `p_ema.copy_(p.lerp(p_ema, beta))`): no host sync, where torch's AveragedModel copies
its CPU update counter to the device once per parameter. The first update copies G. Before `start_step` the average just
follows G (beta = 0); with `rampup` beta = min(decay, (1 + t) / (10 + t)), t = steps since the start (the
num_updates rule of TensorFlow's ExponentialMovingAverage), so early averages are not dominated by the init.
With `half_life_kimg` (stylegan2-ada's ema_kimg) the decay is set by images instead: the average's weight on
the past halves every `half_life_kimg` thousand real images shown to D, beta = 0.5 ** (images per G step /
half-life), so it means the same at any batch size; `half_life_rampup` caps the half-life at that fraction of
the images seen so far. The half-life can be scheduled (R3GAN: 0 -> 5000 kimg, `schedules:`).

BatchNorm needs care: running statistics collected under G's changing weights do not fit the averaged weights
(on a Fashion-MNIST DCGAN, EMA with averaged running statistics scores far worse than raw G). `bn` chooses:
- `standing`: before every use, recompute the statistics with `bn_batches` batches through the averaged G
  (cumulative average, fixed noise, training RNG untouched);
- `batch`: the averaged G normalises with each batch's own statistics (no running statistics kept);
- `averaged`: average the (floating) running statistics like the weights (AveragedModel's use_buffers);
- `raw`: use raw G's current running statistics (AveragedModel's default).
The last two are there to compare against; the samples of `standing` and `batch` come from a copy, so the
average itself is never disturbed.

The state dict keeps AveragedModel's layout (`module.<name>` and `n_averaged`), so older checkpoints load.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ganrun.models.conditioning import random_labels

def _batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class _LocalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A SyncBatchNorm (trainer.sync_bn) of the averaged G made local: rank 0 alone samples from it and recomputes
    its standing statistics in train mode, where a synchronised BatchNorm would wait for the other ranks forever."""

    def _check_input_dim(self, input):
        pass


def _local_batch_norms(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.SyncBatchNorm):
            m.__class__ = _LocalBatchNorm  # same parameters and buffers, F.batch_norm on this rank's batch
    return module


class GeneratorEMA:
    def __init__(self, G: nn.Module, z_dim: int, decay: float = 0.999, start_step: int = 0, rampup: bool = True,
                 bn: str = "standing", bn_batches: int = 16, bn_batch_size: int = 64, seed: int = 0,
                 half_life_kimg: float | None = None, half_life_rampup: float | None = None,
                 images_per_step: int = 1):  # ranges and choices: ganrun.schema (validated before)
        # The defaults are the shipped config's `ema` section (and top-level `seed`); images_per_step = 1: the
        # half-life counts generator steps. tests/test_ema.py holds them equal.
        self.decay, self.start_step, self.rampup = float(decay), int(start_step), bool(rampup)
        self.half_life_kimg = None if half_life_kimg is None else float(half_life_kimg)  # schedulable
        self.half_life_rampup, self.images_per_step = half_life_rampup, int(images_per_step)
        self.bn, self.bn_batches, self.bn_batch_size = bn, int(bn_batches), int(bn_batch_size)
        self.z_dim, self.seed = z_dim, seed
        self.beta = 0.0  # the decay the last update used; before any, the average is a copy of G
        self.average = _local_batch_norms(copy.deepcopy(G)).requires_grad_(False)  # the averaged G
        self.updates = 0  # a host-side count: the first update copies G

    @classmethod
    def from_config(cls, G: nn.Module, cfg, images_per_step: int = 1) -> GeneratorEMA:
        """The EMA a run's config describes (its `ema` section; `enabled` is the caller's business).
        `images_per_step`: real images shown to D per generator step over all ranks (the half-life's unit)."""
        settings = {k: v for k, v in cfg.ema.items() if k != "enabled"}
        return cls(G, cfg.model.z_dim, **settings, seed=cfg.seed, images_per_step=images_per_step)

    def beta_at(self, step: int, images: int = 0) -> float:
        """The decay used for the update after generator step `step` (1-based), `images` having been shown to D
        before it. With a half-life (stylegan2-ada's training_loop): beta = 0.5 ** (images per step / half-life
        in images), the half-life capped at `half_life_rampup` x `images` when set."""
        if step <= self.start_step:
            return 0.0
        if self.half_life_kimg is not None:
            half_life = self.half_life_kimg * 1000
            if self.half_life_rampup is not None:
                half_life = min(half_life, images * self.half_life_rampup)
            return 0.5 ** (self.images_per_step / max(half_life, 1e-8))
        if self.rampup:
            t = step - self.start_step
            return min(self.decay, (1.0 + t) / (10.0 + t))
        return self.decay

    def _averaged_and_copied(self, G: nn.Module):
        """(averaged pairs, copied pairs) of (EMA tensor, G tensor): parameters are averaged, and floating
        buffers too with bn=averaged; the other buffers (num_batches_tracked, all of them otherwise) follow G."""
        params = list(zip(self.average.parameters(), G.parameters(), strict=True))
        buffers = list(zip(self.average.buffers(), G.buffers(), strict=True))
        if self.bn != "averaged":
            return params, buffers
        return (params + [(a, b) for a, b in buffers if a.is_floating_point()],
                [(a, b) for a, b in buffers if not a.is_floating_point()])

    @torch.no_grad()
    def update(self, G: nn.Module, step: int, images: int = 0) -> None:
        self.beta = self.beta_at(step, images)
        averaged, copied = self._averaged_and_copied(G)
        if self.updates == 0 or self.beta == 0.0:
            copied = averaged + copied
        elif averaged:
            ema, current = zip(*averaged)
            torch._foreach_lerp_(list(ema), list(current), 1.0 - self.beta)
        if copied:
            ema, current = zip(*copied)
            torch._foreach_copy_(list(ema), list(current))
        self.updates += 1

    @torch.no_grad()
    def generator(self) -> nn.Module:
        """The averaged G, ready to sample in eval mode (standing statistics recomputed when chosen)."""
        G = self.average
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
        state = {f"module.{name}": tensor for name, tensor in self.average.state_dict().items()}
        return {**state, "n_averaged": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict({name.removeprefix("module."): tensor for name, tensor in state.items()
                                      if name != "n_averaged"})
        self.updates = int(state["n_averaged"])
