"""ResNet G and D of SNGAN (Miyato et al. 2018, appendix B.4; after Gulrajani et al. 2017).

G: z -> linear to s0 x s0 maps, residual up-blocks (norm-ReLU-upsample-conv3x3-norm-ReLU-conv3x3, shortcut
upsample-conv1x1) doubling the size to the resolution, then norm-ReLU-conv3x3-tanh.
D: residual down-blocks (ReLU-conv3x3-ReLU-conv3x3-avgpool, shortcut conv1x1-avgpool; the first block is the
"optimized" one without the leading ReLU, shortcut avgpool-conv1x1), then, at 32 px, two blocks without
downsampling as in the paper; ReLU, global sum pooling and a linear head.

Widths as in the paper: 32 px (CIFAR) G 256 channels and D 128 throughout; 64 px (STL/ImageNet 64) channels
double per stage (G from 16 x width down to width, D from width up); 128 and 256 px the same, capped at 16 x width
(SNGAN's 128 px ImageNet nets). `widths` sets them per block. s0 = 4, or 7 at 28 px. Options beyond the paper's
CIFAR nets: conditional BatchNorm in G (`norm=conditional_batch`), minibatch standard deviation in D.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun.errors import ConfigError
from ganrun.models.conditioning import ConditionalDiscriminator, ConditionalGenerator
from ganrun.models.layers import (ConditionalBatchNorm2d, check_resolution, minibatch_std, norm_layer,
                                  parametrize_weights, stage_widths)

RESOLUTIONS = (28, 32, 64, 128, 256)


def _stages(resolution: int) -> tuple[int, int]:
    check_resolution("resnet", resolution, RESOLUTIONS)
    start = 7 if resolution == 28 else 4
    return start, int(math.log2(resolution // start))


def _widths(resolution: int, width: int, n: int) -> list[int]:
    """Channels at each of n stages, smallest feature map first: constant up to 32 px, doubling per halving of the
    size above (capped at 16 x width, as SNGAN's 128 px ImageNet networks: 16, 16, 8, 4, 2, 1 x width)."""
    if resolution <= 32:
        return [width] * (n + 1)
    return [width * min(2 ** (n - i), 16) for i in range(n + 1)]


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str, num_classes: int = 0):
        super().__init__()
        self.main = nn.ModuleList([
            norm_layer(norm, c_in, num_classes=num_classes), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(c_in, c_out, 3, 1, 1), norm_layer(norm, c_out, num_classes=num_classes), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1),
        ])
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 1))
        _init_residual(self.main, self.shortcut)

    def forward(self, x, y=None):
        h = x
        for layer in self.main:  # conditional BatchNorm takes the labels too
            h = layer(h, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h + self.shortcut(x)


class DownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str, downsample: bool = True, first: bool = False):
        super().__init__()
        pool = [nn.AvgPool2d(2)] if downsample else []
        self.main = nn.Sequential(
            *([] if first else [nn.ReLU()]), nn.Conv2d(c_in, c_out, 3, 1, 1), norm_layer(norm, c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1), *pool,
        )
        if first:
            self.shortcut = nn.Sequential(*pool, nn.Conv2d(c_in, c_out, 1))
        elif downsample or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1), *pool)
        else:
            self.shortcut = nn.Identity()
        _init_residual(self.main, self.shortcut)

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


class Generator(ConditionalGenerator):
    """`norm=conditional_batch` (a conditional model only): every BatchNorm gets a per-class gain and bias and the
    labels enter G through them alone, not concatenated to z (Miyato & Koyama 2018's G)."""

    def __init__(self, z_dim=128, resolution=32, channels=3, width=None, widths=None, norm="batch",
                 weight_param="none", conditioning="none", num_classes=None):
        super().__init__(z_dim, conditioning, num_classes)
        self.class_norm = norm == "conditional_batch"
        if self.class_norm:
            if not self.num_classes:
                raise ConfigError("model.generator.norm=conditional_batch needs class labels: set model.conditioning "
                                  "(e.g. projection) on a labelled dataset, or use norm=batch.")
            self.input_dim = z_dim
        start, n_up = _stages(resolution)
        widths = stage_widths(widths, _widths(resolution, width or (256 if resolution <= 32 else 64), n_up),
                              "model.generator.widths")
        self.start, self.c0 = start, widths[0]
        self.linear = nn.Linear(self.input_dim, start * start * widths[0])
        classes = self.num_classes if self.class_norm else 0
        self.blocks = nn.ModuleList([UpBlock(a, b, norm, classes) for a, b in zip(widths, widths[1:])])
        self.out = nn.Sequential(norm_layer(norm, widths[-1], num_classes=classes), nn.ReLU(),
                                 nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh())
        _init(self.linear, self.out)
        parametrize_weights(self, weight_param)

    def join_labels(self, z, y):
        return z if self.class_norm else super().join_labels(z, y)

    def body(self, z: torch.Tensor, y=None) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], self.c0, self.start, self.start)
        for block in self.blocks:
            h = block(h, y)
        h = self.out[0](h, y) if self.class_norm else self.out[0](h)
        return self.out[1:](h)


class Discriminator(ConditionalDiscriminator):
    """Optional minibatch standard deviation (`mbstd_group`) before the last block."""

    def __init__(self, resolution=32, channels=3, width=None, widths=None, norm="none", weight_param="spectral",
                 mbstd_group=0, conditioning="none", num_classes=None):
        super().__init__(channels, conditioning, num_classes)
        _, n_down = _stages(resolution)
        if resolution <= 32:  # the paper's CIFAR D: two downsampling blocks, then two that keep the size
            default, downsample = [width or 128] * 4, [True, True, False, False]
        else:  # a downsampling block per halving to 4 x 4, then one that keeps the size
            default, downsample = _widths(resolution, width or 64, n_down)[::-1], [True] * n_down + [False]
        widths = stage_widths(widths, default, "model.discriminator.widths")  # one per block
        c_in = [self.in_channels, *widths[:-1]]
        c_in[-1] += 1 if mbstd_group else 0  # the minibatch-std map
        blocks = [DownBlock(a, b, norm, down, first=i == 0)
                  for i, (a, b, down) in enumerate(zip(c_in, widths, downsample))]
        self.blocks = nn.Sequential(*blocks[:-1], *minibatch_std(mbstd_group), blocks[-1])
        self.make_heads(widths[-1], bias=False)  # the reference D head has no bias (nobias=True)
        _init(self.adversarial, self.embed, self.classifier)
        parametrize_weights(self, weight_param)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling


def _init(*modules, gain: float = 1.0) -> None:
    """Xavier-uniform weights with `gain`, zero biases: chainer's GlorotUniform(scale) is xavier_uniform_ with
    gain=scale. Miyato's reference code (pfnet-research/sngan_projection, gen_models/ and dis_models/resblocks.py,
    resnet_32.py, snresnet_32.py) uses gain sqrt(2) in the residual branches' 3x3 convs and gain 1 everywhere
    else (shortcut 1x1 convs, G's input linear and output conv, D's head and class embedding)."""
    for module in modules:
        for layer in module.modules() if module is not None else ():
            if isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
                nn.init.xavier_uniform_(layer.weight, gain=gain)
                if getattr(layer, "bias", None) is not None:
                    nn.init.zeros_(layer.bias)


def _init_residual(main: nn.Module, shortcut: nn.Module) -> None:
    _init(main, gain=math.sqrt(2))
    _init(shortcut)
