"""Transforms of D's input, applied to real and fake batches alike (and to G's fakes in its step, so G's
gradient passes through them): DiffAugment and Gaussian instance noise.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): every op is
differentiable and draws its parameters per sample. `color`: brightness + U[-0.5, 0.5), saturation x U[0, 2),
contrast x U[0.5, 1.5); `translation`: integer shift of up to 1/8 of the size with zero padding;
`cutout`: a zeroed square of half the size at a random centre.

Instance noise (Sønderby et al. 2016; Arjovsky & Bottou 2017): x + sigma_t * N(0, I), sigma annealed linearly
from `std` to 0 over `anneal_steps` generator steps (0: constant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganrun.errors import ConfigError


def _uniform(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (high - low) + low


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + _uniform(x, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    batch, _, height, width = x.shape
    max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (batch, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (batch, 1, 1), device=x.device)
    # Output pixel (i, j) reads input (i + dy, j + dx); indices that fall off the image read the zero padding.
    rows = (torch.arange(height, device=x.device)[None, :, None] + dy + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=x.device)[None, None, :] + dx + 1).clamp(0, width + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    index = torch.arange(batch, device=x.device)[:, None, None]
    return padded[index, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    batch, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - size_y % 2), (batch, 1, 1), device=x.device) - size_y // 2
    left = torch.randint(0, width + (1 - size_x % 2), (batch, 1, 1), device=x.device) - size_x // 2
    rows = torch.arange(height, device=x.device)[None, :, None]
    cols = torch.arange(width, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment:
    def __init__(self, policy: str = "color,translation,cutout"):
        self.ops = [op.strip() for op in policy.split(",") if op.strip()]  # the choices: ganrun.schema

    def check(self, sample_shape: tuple) -> None:
        if len(sample_shape) != 3:
            raise ConfigError(f"augment=diffaugment works on images, not on samples of shape {sample_shape}.")

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        for op in self.ops:
            x = OPS[op](x)
        return x


class InstanceNoise:
    def __init__(self, std: float = 0.1, anneal_steps: int = 0):  # ranges: ganrun.schema
        self.std, self.anneal_steps = float(std), int(anneal_steps)

    def check(self, sample_shape: tuple) -> None:
        pass

    def sigma(self, step: int) -> float:
        if not self.anneal_steps:
            return self.std
        return self.std * max(0.0, 1.0 - step / self.anneal_steps)

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        sigma = self.sigma(step)
        return x + sigma * torch.randn_like(x) if sigma > 0 else x


class Pipeline:
    """The configured transforms in config order; the identity when none is chosen. `named`: each by its config
    name (`augment.<name>`), where schedules reach their scalars (`augment.<name>.<attr>`)."""

    def __init__(self, transforms: dict | None):
        self.named = dict(transforms or {})
        self.transforms = list(self.named.values())

    def check(self, sample_shape: tuple) -> None:
        for transform in self.transforms:
            transform.check(tuple(sample_shape))

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, step)
        return x

    def observe(self, real_out: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's outputs on the real batch of a D step, for the transforms that adapt to them (ganrun.ada.ADA's p);
        returns the scalars they log."""
        logs = {}
        for transform in self.transforms:
            if hasattr(transform, "observe"):
                logs.update(transform.observe(real_out))
        return logs

    def state_dict(self) -> dict:
        """The stateful transforms' state (ADA's p), by position in the pipeline."""
        return {str(i): t.state_dict() for i, t in enumerate(self.transforms) if hasattr(t, "state_dict")}

    def load_state_dict(self, state: dict) -> None:
        for i, transform in enumerate(self.transforms):
            if str(i) in state:
                transform.load_state_dict(state[str(i)])
