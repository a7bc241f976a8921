"""pix2pix's U-Net generator (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks",
section 3.1.1 and appendix 6.1.1): an encoder-decoder whose decoder layer at each scale also sees the encoder's
feature map of that scale (skip connections), so the input's detail reaches the output without passing the
bottleneck.

Encoder: 4x4 stride-2 convolutions with LeakyReLU(0.2), no norm on the first layer nor (as in the authors' code)
the innermost one; widths `width` x 1, 2, 4, 8, 8, ... (C64-C128-C256-C512-C512-...). Decoder: ReLU, 4x4 stride-2
transposed convolutions with norm, dropout (`dropout`, 0.5 in the paper, also at test time there; here in training
only) on the three innermost decoder layers (CD512-CD512-CD512-C512-...), tanh output. The depth follows the
resolution: down to 1x1 as the paper's 8 levels at 256 px (`depth: null`), or a given number of levels. Sizes that
are not a multiple of 2**depth (28 px: Fashion-MNIST, MNIST) are zero-padded to the next one (32) and the output
cropped back. G takes no noise vector: as in pix2pix, dropout is its only noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun.errors import ConfigError
from ganrun.models.layers import dcgan_init, norm_layer, parametrize_weights

DROPOUT_LAYERS = 3  # decoder layers with dropout, innermost first (the paper's CD512 x 3)
MAX_WIDTH_FACTOR = 8  # widths stop growing at 8 x width (512 for width 64)


class Generator(nn.Module):
    image_to_image = True  # G(input image) -> image: only paired tasks can train it (ganrun.tasks)
    num_classes = 0

    def __init__(self, resolution=256, channels=3, extra_channels=0, width=64, depth=None, dropout=0.5,
                 norm="batch", weight_param="none"):
        super().__init__()
        self.resolution, self.channels = resolution, channels
        padded = 2 ** math.ceil(math.log2(resolution))
        depth = int(math.log2(padded)) if depth is None else int(depth)
        if depth > math.log2(padded):
            raise ConfigError(f"model.generator.depth={depth}: a {resolution} px image (padded to {padded}) halves "
                              f"at most {int(math.log2(padded))} times.")
        self.depth, self.padded = depth, padded
        widths = [width * min(2**i, MAX_WIDTH_FACTOR) for i in range(depth)]
        bias = norm != "batch"
        self.downs = nn.ModuleList()
        for level in range(depth):
            c_in = channels + extra_channels if level == 0 else widths[level - 1]
            layers = [] if level == 0 else [nn.LeakyReLU(0.2, True)]
            layers.append(nn.Conv2d(c_in, widths[level], 4, 2, 1, bias=bias or level in (0, depth - 1)))
            if 0 < level < depth - 1:
                layers.append(norm_layer(norm, widths[level]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()  # innermost first
        for level in reversed(range(depth)):
            c_in = widths[level] * (1 if level == depth - 1 else 2)
            c_out = widths[level - 1] if level > 0 else channels
            layers = [nn.ReLU(True), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias or level == 0)]
            if level > 0:
                layers.append(norm_layer(norm, c_out))
                if depth - 1 - level < DROPOUT_LAYERS and dropout > 0:
                    layers.append(nn.Dropout(dropout))
            else:
                layers.append(nn.Tanh())
            self.ups.append(nn.Sequential(*layers))
        dcgan_init(self)  # N(0, 0.02), as pix2pix
        parametrize_weights(self, weight_param)

    def forward(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad = [0, self.padded - w, 0, self.padded - h]
        x = F.pad(x, pad) if any(pad) else x
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for i, up in enumerate(self.ups):
            if i > 0:
                x = torch.cat([x, skips.pop()], 1)
            x = up(x)
        return x[..., :h, :w]
