"""pix2pix's PatchGAN discriminator (Isola et al. 2017, section 3.2.2 and appendix 6.1.2): a fully convolutional
D whose every output scores one N x N patch of its input, so it models high frequencies (the L1 term already
gets the low ones right); the loss averages over patches.

`n_layers` stride-2 4x4 convolutions (widths `width` x 1, 2, 4, 8, ..., capped at 8), one stride-1 4x4 convolution
and a stride-1 4x4 convolution to one score per patch; LeakyReLU(0.2); norm on every layer but the first and the
last. n_layers=3 is the paper's 70 x 70 PatchGAN (C64-C128-C256-C512), n_layers=1 its 16 x 16, n_layers=5 its
286 x 286 ImageGAN: the receptive field is `receptive_field(n_layers)`.

With `paired` (a paired task) D sees (input, output) pairs: its condition, the input image (with any extra
channels, e.g. the inpainting mask), is concatenated to the image on channels, as pix2pix's conditional D.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ganrun.models.layers import dcgan_init, norm_layer, parametrize_weights

MAX_WIDTH_FACTOR = 8


def receptive_field(n_layers: int) -> int:
    """Side of the input patch one output sees: 4 for the last conv, +3 for the stride-1 conv, then x2 + 2 for
    each stride-2 4x4 conv (70 for n_layers=3)."""
    field = 4 + 3
    for _ in range(n_layers):
        field = 2 * field + 2
    return field


class Discriminator(nn.Module):
    num_classes = 0

    def __init__(self, channels=3, extra_channels=0, paired=True, width=64, n_layers=3, norm="batch",
                 weight_param="none"):
        super().__init__()
        self.paired = bool(paired)
        c_in = channels + (channels + extra_channels if paired else 0)
        widths = [width * min(2**i, MAX_WIDTH_FACTOR) for i in range(n_layers + 1)]
        bias = norm != "batch"
        layers = [nn.Conv2d(c_in, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(widths[i - 1], widths[i], 4, stride, 1, bias=bias), norm_layer(norm, widths[i]),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[n_layers], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        dcgan_init(self)
        parametrize_weights(self, weight_param)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """One score per patch, (N, patches): the losses average them."""
        if self.paired:
            x = torch.cat([condition, x], 1)
        return self.net(x).flatten(1)
