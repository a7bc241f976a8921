"""ResNet G and D of SNGAN (Miyato et al. 2018, appendix B.4; after Gulrajani et al. 2017).

G: z -> linear to s0 x s0 maps, residual up-blocks (norm-ReLU-upsample-conv3x3-norm-ReLU-conv3x3, shortcut
upsample-conv1x1) doubling the size to the resolution, then norm-ReLU-conv3x3-tanh.
D: residual down-blocks (ReLU-conv3x3-ReLU-conv3x3-avgpool, shortcut conv1x1-avgpool; the first block is the
"optimized" one without the leading ReLU, shortcut avgpool-conv1x1), then, at 32 px, two blocks without
downsampling as in the paper; ReLU, global sum pooling and a linear head.

Widths as in the paper: 32 px (CIFAR) G 256 channels and D 128 throughout; 64 px (STL/ImageNet 64) channels
double per stage (G from 16 x width down to width, D from width up). s0 = 4, or 7 at 28 px.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun.errors import ConfigError
from ganrun.models.conditioning import ConditionalDiscriminator, ConditionalGenerator
from ganrun.models.layers import norm_layer, parametrize_weights

RESOLUTIONS = (28, 32, 64)


def _stages(resolution: int) -> tuple[int, int]:
    if resolution not in RESOLUTIONS:
        raise ConfigError(
            f"model=resnet supports resolutions {', '.join(map(str, RESOLUTIONS))}, "
            f"not dataset.resolution={resolution}" + (" (toy 2-D points: use model=mlp)." if resolution is None else ".")
        )
    start = 7 if resolution == 28 else 4
    return start, int(math.log2(resolution // start))


def _widths(resolution: int, width: int, n: int) -> list[int]:
    """Channels at each of n stages, smallest feature map first: constant up to 32 px, doubling at 64 px."""
    if resolution <= 32:
        return [width] * (n + 1)
    return [width * 2 ** (n - i) for i in range(n + 1)]


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.main = nn.Sequential(
            norm_layer(norm, c_in), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, 1, 1),
            norm_layer(norm, c_out), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1),
        )
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 1))
        _init_residual(self.main, self.shortcut)

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


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
    def __init__(self, z_dim=128, resolution=32, channels=3, width=None, norm="batch", weight_param="none",
                 conditioning="none", num_classes=None):
        super().__init__(z_dim, conditioning, num_classes)
        start, n_up = _stages(resolution)
        widths = _widths(resolution, width or (256 if resolution <= 32 else 64), n_up)
        self.start, self.c0 = start, widths[0]
        self.linear = nn.Linear(self.input_dim, start * start * widths[0])
        self.blocks = nn.Sequential(*[UpBlock(a, b, norm) for a, b in zip(widths, widths[1:])])
        self.out = nn.Sequential(norm_layer(norm, widths[-1]), nn.ReLU(), nn.Conv2d(widths[-1], channels, 3, 1, 1),
                                 nn.Tanh())
        _init(self.linear, self.out)
        parametrize_weights(self, weight_param)

    def body(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], self.c0, self.start, self.start)
        return self.out(self.blocks(h))


class Discriminator(ConditionalDiscriminator):
    def __init__(self, resolution=32, channels=3, width=None, norm="none", weight_param="spectral",
                 conditioning="none", num_classes=None):
        super().__init__(channels, conditioning, num_classes)
        _, n_down = _stages(resolution)
        widths = _widths(resolution, width or (128 if resolution <= 32 else 64), n_down)[::-1]
        if resolution <= 32:  # the paper's CIFAR D: two downsampling blocks, then two that keep the size
            blocks = [DownBlock(self.in_channels, widths[0], norm, first=True), DownBlock(widths[0], widths[0], norm)]
            blocks += [DownBlock(widths[0], widths[0], norm, downsample=False) for _ in range(2)]
            feature_dim = widths[0]
        else:
            blocks = [DownBlock(self.in_channels, widths[0], norm, first=True)]
            blocks += [DownBlock(a, b, norm) for a, b in zip(widths[:-1], widths[1:-1])]
            blocks += [DownBlock(widths[-2], widths[-1], norm, downsample=False)]
            feature_dim = widths[-1]
        self.blocks = nn.Sequential(*blocks)
        self.make_heads(feature_dim, bias=False)  # the reference D head has no bias (nobias=True)
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
