"""The feed-forward image transformation network of fast style transfer (Johnson, Alahi & Fei-Fei 2016,
"Perceptual Losses for Real-Time Style Transfer and Super-Resolution", supplementary table 1), with instance
normalisation as Ulyanov, Vedaldi & Lempitsky (2016) recommend for stylisation.

9x9 stride-1 conv (width w), two 3x3 stride-2 convs (2w, 4w), `num_residual` residual blocks of two 3x3 convs (4w;
5 in the paper), two 3x3 fractionally strided (transposed, stride 1/2) convs (2w, w) and a 9x9 conv to the image,
tanh (the paper scales its tanh to [0, 255]; ganrun's images are in [-1, 1]). Every conv but the last is followed by
the norm and a ReLU; a residual block adds its input to conv-norm-ReLU-conv-norm. w = 32 in the paper. Convolutions
pad by reflection (the PyTorch example of the paper does; the paper pads the input once by 40 px and uses valid
convolutions in the residual blocks, which needs large images). Sizes that are not a multiple of 4 are
reflection-padded to the next one and the output cropped back.

G(content) -> stylised image: one network per style, as Johnson et al.; the style is learned from the losses
(and the discriminator), not given as an input.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganrun.models.layers import norm_layer, parametrize_weights

DOWNSAMPLING = 4  # two stride-2 convolutions


def conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3), norm_layer(norm, channels), nn.ReLU(True),
                                  conv(channels, channels, 3), norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    image_to_image = True  # G(input image) -> image (ganrun.tasks)
    num_classes = 0

    def __init__(self, resolution=256, channels=3, extra_channels=0, width=32, num_residual=5, norm="instance",
                 weight_param="none"):
        super().__init__()
        self.resolution, self.channels = resolution, channels
        widths = [width, 2 * width, 4 * width]

        def block(layer, c_out):
            return [layer, norm_layer(norm, c_out), nn.ReLU(True)]

        layers = block(conv(channels + extra_channels, widths[0], 9), widths[0])
        for c_in, c_out in ((widths[0], widths[1]), (widths[1], widths[2])):  # stride 2: down to a quarter
            layers += block(conv(c_in, c_out, 3, 2), c_out)
        layers += [ResidualBlock(widths[2], norm) for _ in range(num_residual)]
        for c_in, c_out in ((widths[2], widths[1]), (widths[1], widths[0])):
            layers += block(nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=1), c_out)
        layers += [conv(widths[0], channels, 9), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        parametrize_weights(self, weight_param)

    def forward(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad = [0, -w % DOWNSAMPLING, 0, -h % DOWNSAMPLING]
        x = F.pad(x, pad, mode="reflect") if any(pad) else x
        return self.net(x)[..., :h, :w]
