"""DCGAN (Radford et al. 2015, "Unsupervised Representation Learning with DCGANs").

G: z -> (s0 x s0) by a transposed conv, then stride-2 transposed convs doubling the size up to the
resolution, BatchNorm + ReLU, tanh output. D mirrors it with stride-2 convs and LeakyReLU(0.2), no norm on
its first layer, and a final s0 x s0 conv to one logit (written as a linear layer on the flattened s0 x s0 map,
the same function, so that conditional heads can share it). s0 is 7 for 28 px (MNIST-like) and 4 otherwise.
Channels halve per doubling of the size from 8 x width at the smallest map (the paper's 64 px net: 512, 256,
128, 64), capped at 8 x width above 64 px; `widths` sets them per stage. Optional minibatch standard deviation
before D's head (`mbstd_group`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ganrun.models.conditioning import ConditionalDiscriminator, ConditionalGenerator
from ganrun.models.layers import (check_resolution, dcgan_init, minibatch_std, norm_layer, parametrize_weights,
                                  stage_widths)

RESOLUTIONS = (28, 32, 64, 128, 256)


def _plan(resolution: int, width: int) -> tuple[int, list[int]]:
    """Start size and the default channel widths from the smallest feature map to the largest."""
    check_resolution("dcgan", resolution, RESOLUTIONS)
    start = 7 if resolution == 28 else 4
    n_up = int(math.log2(resolution // start))
    return start, [width * min(2 ** (n_up - 1 - i), 8) for i in range(n_up)]


class Generator(ConditionalGenerator):
    def __init__(self, z_dim=100, resolution=64, channels=3, width=64, widths=None, norm="batch", weight_param="none",
                 conditioning="none", num_classes=None):
        super().__init__(z_dim, conditioning, num_classes)
        self.resolution, self.channels = resolution, channels
        start, default = _plan(resolution, width)
        widths = stage_widths(widths, default, "model.generator.widths")  # smallest map first
        layers = [nn.ConvTranspose2d(self.input_dim, widths[0], start, 1, 0, bias=False),
                  norm_layer(norm, widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), norm_layer(norm, c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)
        parametrize_weights(self, weight_param)

    def body(self, z: torch.Tensor, y=None) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.input_dim, 1, 1))


class Discriminator(ConditionalDiscriminator):
    def __init__(self, resolution=64, channels=3, width=64, widths=None, norm="batch", weight_param="none",
                 mbstd_group=0, conditioning="none", num_classes=None):
        super().__init__(channels, conditioning, num_classes)
        start, default = _plan(resolution, width)
        widths = stage_widths(widths, default[::-1], "model.discriminator.widths")  # largest map first
        layers = [nn.Conv2d(self.in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), norm_layer(norm, c_out), nn.LeakyReLU(0.2, True)]
        extra = 1 if mbstd_group else 0  # the minibatch-std map next to the last one, seen by the s0 x s0 head
        self.net = nn.Sequential(*layers, *minibatch_std(mbstd_group), nn.Flatten())
        self.make_heads((widths[-1] + extra) * start * start)
        dcgan_init(self)
        parametrize_weights(self, weight_param)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
