"""Fully connected G and D: the vanilla GAN of Goodfellow et al. (2014), for any image shape, and for the
toy 2-D datasets (`shape` [2], linear output: the points are not confined to [-1, 1])."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun.models.conditioning import ConditionalDiscriminator, ConditionalGenerator
from ganrun.models.layers import norm_layer, parametrize_weights



def _sample_shape(shape, channels, resolution) -> tuple:
    """`shape` for non-image data (toy 2-D points: [2]), else (channels, resolution, resolution)."""
    return tuple(shape) if shape else (channels, resolution, resolution)


def _stack(sizes, norm, activation) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out), norm_layer(norm, n_out, image=False), activation()]
    return layers


class Generator(ConditionalGenerator):
    def __init__(self, z_dim=100, resolution=28, channels=1, hidden=(256, 512, 1024), norm="none",
                 weight_param="none", conditioning="none", num_classes=None, shape=None, output="tanh"):
        super().__init__(z_dim, conditioning, num_classes)
        self.shape = _sample_shape(shape, channels, resolution)
        hidden = list(hidden)
        self.net = nn.Sequential(
            *_stack([self.input_dim, *hidden], norm, nn.ReLU),
            nn.Linear(hidden[-1], math.prod(self.shape)),
            *([nn.Tanh()] if output == "tanh" else []),
        )
        parametrize_weights(self, weight_param)

    def body(self, z: torch.Tensor, y=None) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class Discriminator(ConditionalDiscriminator):
    def __init__(self, resolution=28, channels=1, hidden=(1024, 512, 256), norm="none", weight_param="none",
                 conditioning="none", num_classes=None, shape=None):
        sample_shape = _sample_shape(shape, channels, resolution)
        super().__init__(sample_shape[0], conditioning, num_classes)
        hidden = list(hidden)
        inputs = math.prod(sample_shape) + (self.in_channels - sample_shape[0])  # + one-hot y for concat
        self.net = nn.Sequential(*_stack([inputs, *hidden], norm, lambda: nn.LeakyReLU(0.2)))
        self.make_heads(hidden[-1])
        parametrize_weights(self, weight_param)

    def join_labels(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """cGAN for fully connected D: one-hot y appended to the flattened image."""
        return torch.cat([x.flatten(1), F.one_hot(y, self.num_classes).to(x.dtype)], dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
