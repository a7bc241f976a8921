"""R3GAN's G and D (Huang et al., NeurIPS 2024, "The GAN is dead; long live the GAN!"; brownvc/R3GAN Networks.py).

A modernised ResNet without normalisation. Both networks are stages of `blocks` residual blocks at one size each,
from 4 x 4 to the resolution; a block is ResNeXt's bottleneck, x + conv1x1(act(gconv3x3(act(conv1x1(x))))): 1x1
up to `expansion` x the width, a grouped 3x3 with `group_size` channels per group, 1x1 back; each activation is a
learned bias then leaky ReLU(0.2).

Fix-up initialisation (Zhang et al. 2019, as R3GAN): weights N(0, gain^2 / fan_in) with the leaky ReLU gain
sqrt(2 / (1 + 0.2^2)) scaled by L^(-1/4), L the network's number of blocks (a block has 3 linear layers:
L^(-1/(2*3-2))), and the last 1x1 of every block zero, so that every block is the identity at initialisation.

Between stages: G a 1x1 conv (when the width changes) then 2x upsampling, D 2x downsampling then a 1x1, both
with the [1, 2, 1] low-pass filter (`layers.Upsample2d` / `Downsample2d`). G starts from a learned 4 x 4 basis
per channel modulated by a linear map of z and ends with a 1x1 conv to the image (linear output, no tanh, as the
reference); D starts with a 1x1 conv from the image and ends with a depthwise 4 x 4 conv to one value per
channel and a linear head.

Conditioning: G concatenates a learned embedding of y (as long as z) to z, as the reference; D uses ganrun's
conditioning heads on its feature vector (projection: Miyato & Koyama's psi(h) + <embed(y), h>, where the
reference keeps the inner product alone). Optional minibatch standard deviation in D (`mbstd_group`), off in
R3GAN: the map joins the 4 x 4 stage through a 1x1 conv.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun.errors import ConfigError
from ganrun.models.conditioning import ConditionalDiscriminator, ConditionalGenerator
from ganrun.models.layers import Downsample2d, Upsample2d, check_resolution, minibatch_std, stage_widths

RESOLUTIONS = (32, 64, 128, 256)
SLOPE = 0.2
LRELU_GAIN = math.sqrt(2 / (1 + SLOPE ** 2))


def msr_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """He et al. 2015 ("MSR") initialisation as R3GAN's MSRInitializer: N(0, (gain / sqrt(fan_in))^2), fan_in the
    inputs of one output unit (a grouped conv's group only); gain 0 zeroes the weights."""
    with torch.no_grad():
        if gain == 0:
            layer.weight.zero_()
        else:
            layer.weight.normal_(0.0, gain / math.sqrt(layer.weight[0].numel()))
        if getattr(layer, "bias", None) is not None:
            layer.bias.zero_()
    return layer


def conv(c_in: int, c_out: int, kernel: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    """A bias-free conv keeping the size (biases live in the activations)."""
    return msr_init(nn.Conv2d(c_in, c_out, kernel, padding=(kernel - 1) // 2, groups=groups, bias=False), gain)


class BiasedLeakyReLU(nn.Module):
    """A learned per-channel bias, then leaky ReLU(0.2) (R3GAN's BiasedActivation, without a gain: the gain is in
    the initialisation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), SLOPE)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))), the last conv zero at initialisation."""

    def __init__(self, channels: int, expansion: int, group_size: int, total_blocks: int):
        super().__init__()
        inner = channels * expansion
        gain = LRELU_GAIN * total_blocks ** (-1 / 4)  # 3 linear layers per block: L^(-1 / (2 * 3 - 2))
        self.residual = nn.Sequential(
            conv(channels, inner, 1, gain=gain), BiasedLeakyReLU(inner),
            conv(inner, inner, 3, groups=inner // group_size, gain=gain), BiasedLeakyReLU(inner),
            conv(inner, channels, 1, gain=0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


def _plan(resolution: int, width: int, widths, expansion: int, group_size: int, key: str) -> list[int]:
    """Widths of the stages, 4 x 4 first; refuses a group size that does not divide a block's inner width."""
    check_resolution("r3gan", resolution, RESOLUTIONS)
    stages = int(math.log2(resolution)) - 1  # 4, 8, ..., resolution
    widths = stage_widths(widths, [width] * stages, f"{key}.widths")
    for w in widths:
        if (w * expansion) % group_size:
            raise ConfigError(f"{key}.group_size={group_size} must divide every block's inner width (width x "
                              f"expansion), not {w} x {expansion} = {w * expansion}.")
    return widths


def _stage(channels: int, blocks: int, expansion: int, group_size: int, total: int) -> list[nn.Module]:
    return [ResidualBlock(channels, expansion, group_size, total) for _ in range(blocks)]


class Generator(ConditionalGenerator):
    def __init__(self, z_dim=64, resolution=32, channels=3, width=768, widths=None, blocks=2, group_size=16,
                 expansion=2, conditioning="none", num_classes=None):
        super().__init__(z_dim, conditioning, num_classes)
        widths = _plan(resolution, width, widths, expansion, group_size, "model.generator")
        total = blocks * len(widths)
        if self.num_classes:  # the reference: a bias-free linear map of one-hot y, as long as z, MSR-initialised
            self.embed = nn.Embedding(self.num_classes, z_dim)
            nn.init.normal_(self.embed.weight, 0.0, 1 / math.sqrt(self.num_classes))
            self.input_dim = 2 * z_dim
        self.basis = nn.Parameter(torch.randn(widths[0], 4, 4))  # R3GAN's GenerativeBasis
        self.modulation = msr_init(nn.Linear(self.input_dim, widths[0], bias=False))
        layers = _stage(widths[0], blocks, expansion, group_size, total)
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [*([conv(c_in, c_out)] if c_in != c_out else []), Upsample2d()]
            layers += _stage(c_out, blocks, expansion, group_size, total)
        self.stages = nn.Sequential(*layers)
        self.to_image = conv(widths[-1], channels)

    def join_labels(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, self.embed(y).to(z.dtype)], dim=1)

    def body(self, z: torch.Tensor, y=None) -> torch.Tensor:
        h = self.basis[None] * self.modulation(z)[:, :, None, None]
        return self.to_image(self.stages(h))


class Discriminator(ConditionalDiscriminator):
    def __init__(self, resolution=32, channels=3, width=768, widths=None, blocks=2, group_size=16, expansion=2,
                 mbstd_group=0, conditioning="none", num_classes=None):
        super().__init__(channels, conditioning, num_classes)
        widths = _plan(resolution, width, widths, expansion, group_size, "model.discriminator")  # largest map first
        total = blocks * len(widths)
        layers = [conv(self.in_channels, widths[0])]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += _stage(c_in, blocks, expansion, group_size, total)
            layers += [Downsample2d(), *([conv(c_in, c_out)] if c_in != c_out else [])]
        if mbstd_group:
            layers += [*minibatch_std(mbstd_group), conv(widths[-1] + 1, widths[-1])]
        layers += _stage(widths[-1], blocks, expansion, group_size, total)
        self.stages = nn.Sequential(*layers)
        self.basis = msr_init(nn.Conv2d(widths[-1], widths[-1], 4, groups=widths[-1], bias=False))  # depthwise 4x4
        self.make_heads(widths[-1], bias=False)
        for head in (self.adversarial, self.classifier):
            if head is not None:
                msr_init(head)
        if self.embed is not None:  # the reference's class embedding: gain 1 / sqrt(its length) on one-hot inputs
            nn.init.normal_(self.embed.weight, 0.0, 1 / math.sqrt(widths[-1] * self.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.basis(self.stages(x)).flatten(1)
