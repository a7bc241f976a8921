"""Fully connected G and D: the vanilla GAN of Goodfellow et al. (2014), for any image shape."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ganrun.models.layers import norm_layer, parametrize_weights


def _stack(sizes, norm, activation) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out), norm_layer(norm, n_out, image=False), activation()]
    return layers


class Generator(nn.Module):
    def __init__(self, z_dim=100, resolution=28, channels=1, hidden=(256, 512, 1024), norm="none",
                 weight_param="none"):
        super().__init__()
        self.z_dim, self.shape = z_dim, (channels, resolution, resolution)
        hidden = list(hidden)
        self.net = nn.Sequential(
            *_stack([z_dim, *hidden], norm, nn.ReLU),
            nn.Linear(hidden[-1], math.prod(self.shape)),
            nn.Tanh(),
        )
        parametrize_weights(self, weight_param)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    def __init__(self, resolution=28, channels=1, hidden=(1024, 512, 256), norm="none", weight_param="none"):
        super().__init__()
        hidden = list(hidden)
        self.net = nn.Sequential(
            nn.Flatten(),
            *_stack([channels * resolution * resolution, *hidden], norm, lambda: nn.LeakyReLU(0.2)),
            nn.Linear(hidden[-1], 1),
        )
        parametrize_weights(self, weight_param)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0])
