"""Johnson et al.'s (2016) image transformation network (ganrun/models/transformer_net.py): shapes and the paper's
structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ganrun.models.transformer_net import Generator, ResidualBlock


@pytest.mark.parametrize("shape, extra", [((2, 3, 32, 32), 0), ((2, 1, 28, 28), 0), ((1, 1, 30, 26), 1),
                                          ((2, 3, 16, 20), 0)])
def test_it_maps_an_image_to_an_image_of_the_same_size(shape, extra):
    n, c, h, w = shape
    G = Generator(resolution=h, channels=c, extra_channels=extra, width=4, num_residual=2)
    out = G(torch.randn(n, c + extra, h, w))
    assert out.shape == (n, c, h, w)
    assert out.abs().max() <= 1  # tanh


def test_the_papers_network_has_its_layers_and_parameter_count():
    G = Generator(channels=3, width=32, num_residual=5)
    # Johnson et al., supplementary table 1 (instance norm's affine scale and shift in place of batch norm's):
    # 9x9x32, 3x3x64 /2, 3x3x128 /2, 5 residual blocks of two 3x3x128, 3x3x64 x2, 3x3x32 x2, 9x9x3.
    def conv_params(k, c_in, c_out):
        return k * k * c_in * c_out + c_out

    expected = (conv_params(9, 3, 32) + conv_params(3, 32, 64) + conv_params(3, 64, 128)
                + 5 * 2 * conv_params(3, 128, 128) + conv_params(3, 128, 64) + conv_params(3, 64, 32)
                + conv_params(9, 32, 3) + 2 * (32 + 64 + 128 + 5 * 2 * 128 + 64 + 32))
    assert sum(p.numel() for p in G.parameters()) == expected == 1_679_235
    assert sum(isinstance(m, ResidualBlock) for m in G.modules()) == 5
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in G.modules()) == 15  # every conv but the output one
    kernels = [m.kernel_size[0] for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert kernels[0] == kernels[-1] == 9


def test_the_residual_blocks_run_at_a_quarter_of_the_resolution():
    G = Generator(channels=1, width=8, num_residual=3)
    seen = []
    G.net[9].register_forward_hook(lambda module, args, out: seen.append(out.shape))  # the first residual block
    assert isinstance(G.net[9], ResidualBlock)
    G(torch.randn(2, 1, 28, 36))
    assert seen == [(2, 32, 7, 9)]


def test_a_residual_block_adds_its_input():
    block = ResidualBlock(4, "instance")
    x = torch.randn(2, 4, 5, 6)
    last_norm = block.body[-1]
    with torch.no_grad():
        last_norm.weight.zero_()
        last_norm.bias.fill_(0.5)  # the body then outputs 0.5 everywhere
    torch.testing.assert_close(block(x), x + 0.5)


def test_widths_follow_the_config():
    G = Generator(channels=3, width=5, num_residual=1, norm="batch")
    widths = [m.out_channels for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert widths == [5, 10, 20, 20, 20, 10, 5, 3]
    assert any(isinstance(m, nn.BatchNorm2d) for m in G.modules())
