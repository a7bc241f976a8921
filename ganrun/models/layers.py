"""Building blocks shared by the architectures: normalisation choice, weight parametrisation, init, resolution and
width checks, minibatch standard deviation, conditional BatchNorm, low-pass resampling."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from ganrun.errors import ConfigError


def norm_layer(kind: str, channels: int, image: bool = True, num_classes: int = 0) -> nn.Module:
    """A normalisation layer for feature maps (`image`) or flat features; `conditional_batch` (a G's feature maps,
    `num_classes` classes) takes the labels too."""
    if kind == "conditional_batch":
        return ConditionalBatchNorm2d(channels, num_classes)
    if kind == "batch":
        return nn.BatchNorm2d(channels) if image else nn.BatchNorm1d(channels)
    if kind == "instance" and image:
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if image else nn.LayerNorm(channels)
    return nn.Identity()  # "none"; the choices (no instance norm of flat features): ganrun.schema


def parametrize_weights(module: nn.Module, kind: str) -> nn.Module:
    """Spectral norm (Miyato et al. 2018) or weight norm (Salimans & Kingma 2016) on every conv/linear layer
    (and, for spectral norm, the class embedding of a projection discriminator, as Miyato & Koyama do)."""
    if kind == "none":
        return module
    wrap = spectral_norm if kind == "spectral" else weight_norm
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) + ((nn.Embedding,) if kind == "spectral" else ())
    for layer in list(module.modules()):
        if isinstance(layer, kinds):
            wrap(layer)
    return module


def dcgan_init(module: nn.Module) -> None:
    """Weights from N(0, 0.02), norm scales from N(1, 0.02), biases zero (Radford et al. 2015)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d, nn.GroupNorm)) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def check_resolution(model: str, resolution, supported: tuple) -> None:
    """Refuse, before training, a resolution the architecture cannot make, naming the key."""
    if resolution not in supported:
        raise ConfigError(
            f"model={model} supports resolutions {', '.join(map(str, supported))}, not dataset.resolution="
            f"{resolution}" + (" (toy 2-D points: use model=mlp)." if resolution is None else ".")
        )


def stage_widths(widths, default: list[int], key: str) -> list[int]:
    """The channel counts of a network's stages: `widths` from the config (one per stage, in the order the data flows)
    or the architecture's `default`; a list of the wrong length is refused naming `key`."""
    if widths is None:
        return default
    widths = [int(w) for w in widths]
    if len(widths) != len(default):
        raise ConfigError(f"{key}={widths} has {len(widths)} entries, but this resolution needs {len(default)} "
                          f"(one per stage, in the order the data flows; null: {default}).")
    return widths


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, section 3; StyleGAN2's MinibatchStdLayer): split the batch
    into groups of `group_size` samples (sample i joins group i mod N/group), take each feature's standard deviation
    over its group, average it over channels and pixels (within each of `num_channels` channel slices) and append
    the averages as `num_channels` constant feature maps. D then sees how varied a batch is, which penalises a G
    that collapses to few modes.

    The reference needs the batch size N divisible by min(group_size, N); here the group is the largest divisor of
    N not above group_size (the reference's group wherever the reference runs; a batch of prime size gets groups of
    1, whose standard deviation is the constant sqrt(1e-8))."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = next(d for d in range(min(self.group_size, n), 0, -1) if n % d == 0)  # shapes only: no host sync
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # [n/g, f, c/f, h, w] std over each group
        y = y.mean(dim=(2, 3, 4)).reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, f, h, w]
        return torch.cat([x, y], dim=1)


def minibatch_std(group_size: int) -> list[nn.Module]:
    """The layer as a list to splice into a network: empty when `group_size` is 0 (off)."""
    return [MinibatchStd(group_size)] if group_size else []


class ConditionalBatchNorm2d(nn.Module):
    """Conditional BatchNorm (de Vries et al. 2017; the G of Miyato & Koyama 2018): BatchNorm without its own affine
    transform, then a per-class gain and bias, initialised to 1 and 0 (plain BatchNorm at the start). Plain
    parameters, not nn.Embedding, so that a weight parametrisation of G (spectral norm) leaves the gains alone."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Parameter(torch.ones(num_classes, channels))
        self.bias = nn.Parameter(torch.zeros(num_classes, channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.gain[y][:, :, None, None] + self.bias[y][:, :, None, None]


def lowpass_kernel(taps=(1, 2, 1)) -> torch.Tensor:
    """R3GAN's resampling filter (Resamplers.py CreateLowpassKernel): the taps convolved with the [1, 1] hold of a
    2x resampling ([1, 2, 1] -> [1, 3, 3, 1]), outer product, normalised to sum 1."""
    t = torch.tensor(taps, dtype=torch.float64)
    t = torch.cat([t, t.new_zeros(1)]) + torch.cat([t.new_zeros(1), t])
    k = torch.outer(t, t)
    return (k / k.sum()).float()


class _Resample(nn.Module):
    """Per-channel FIR resampling by 2 with `lowpass_kernel(taps)`, written with torch's grouped (transposed)
    convolutions: no custom kernel."""

    def __init__(self, taps=(1, 2, 1)):
        super().__init__()
        self.register_buffer("kernel", lowpass_kernel(taps), persistent=False)
        self.padding = len(taps) // 2

    def weight(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        return (gain * self.kernel).to(x.dtype).expand(x.shape[1], 1, *self.kernel.shape)


class Upsample2d(_Resample):
    """Zero-stuffing 2x upsampling, then the low-pass filter (gain 4 keeps the mean): with taps [1, 2, 1] this is
    nearest-neighbour upsampling followed by the [1, 2, 1] x [1, 2, 1] / 16 blur."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.weight(x, 4.0), stride=2, padding=self.padding, groups=x.shape[1])


class Downsample2d(_Resample):
    """The low-pass filter, then every second pixel: with taps [1, 2, 1], the [1, 2, 1] x [1, 2, 1] / 16 blur
    followed by 2x2 average pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(x, 1.0), stride=2, padding=self.padding, groups=x.shape[1])
