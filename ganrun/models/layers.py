"""Building blocks shared by the architectures: normalisation choice, weight parametrisation, init."""

from __future__ import annotations

import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm


def norm_layer(kind: str, channels: int, image: bool = True) -> nn.Module:
    """A normalisation layer for feature maps (`image`) or flat features."""
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
