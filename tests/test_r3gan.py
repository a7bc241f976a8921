"""model=r3gan against R3GAN's definition (Huang et al. 2024; brownvc/R3GAN Networks.py, Resamplers.py): the
bottleneck block, the fix-up initialisation, the [1, 2, 1] resampling, G's 4 x 4 basis, D's depthwise head,
conditioning, and a training step."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import train_in_process

from ganrun.errors import ConfigError
from ganrun.models import r3gan
from ganrun.models.layers import Downsample2d, Upsample2d, lowpass_kernel

BLUR = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])) / 16  # [1,2,1] x [1,2,1] / 16


def blur(x):
    """The [1, 2, 1] low-pass filter of every channel, zero padding."""
    return F.conv2d(x, BLUR.expand(x.shape[1], 1, 3, 3), padding=1, groups=x.shape[1])


def blocks_of(net):
    return [m for m in net.modules() if isinstance(m, r3gan.ResidualBlock)]


def test_block_is_a_bottleneck_with_grouped_3x3():
    block = r3gan.ResidualBlock(channels=24, expansion=3, group_size=8, total_blocks=4)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.groups) for c in convs] == [
        (24, 72, (1, 1), 1), (72, 72, (3, 3), 9), (72, 24, (1, 1), 1)]  # 72 / 8 = 9 groups (ResNeXt's cardinality)
    assert all(c.bias is None for c in convs)
    acts = [m for m in block.modules() if isinstance(m, r3gan.BiasedLeakyReLU)]
    assert [a.bias.shape for a in acts] == [(72,), (72,)]
    x = torch.randn(2, 24, 5, 7)
    assert block(x).shape == x.shape


def test_biased_leaky_relu_adds_the_bias_then_leaks_with_slope_0_2():
    act = r3gan.BiasedLeakyReLU(2)
    with torch.no_grad():
        act.bias.copy_(torch.tensor([1.0, -1.0]))
    x = torch.tensor([[0.5, -3.0], [0.5, 2.0]]).view(1, 2, 1, 2)
    assert torch.allclose(act(x).flatten(), torch.tensor([1.5, -0.4, -0.1, 1.0]), atol=1e-6)


def test_every_residual_block_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=8, resolution=32, channels=3, width=16, blocks=2, group_size=8)
    D = r3gan.Discriminator(resolution=32, channels=3, width=16, blocks=2, group_size=8)
    assert len(blocks_of(G)) == len(blocks_of(D)) == 8  # 4 stages (4, 8, 16, 32 px) x 2
    for block in blocks_of(G) + blocks_of(D):
        x = torch.randn(3, 16, 6, 5) * torch.arange(1, 4).view(3, 1, 1, 1)
        assert torch.equal(block(x), x)
        # ...because the last conv is zero, not because the branch is dead: the inner layers compute
        assert block.residual[:4](x).abs().sum() > 0


def test_fixup_init_scales_the_block_convs_by_the_number_of_blocks():
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=8, resolution=64, channels=3, width=64, blocks=3, group_size=16)
    L = 5 * 3  # 5 stages (4..64 px) x 3 blocks
    gain = math.sqrt(2 / (1 + 0.2 ** 2)) * L ** -0.25  # the leaky ReLU gain, L^(-1/(2*3-2))
    first, second = [], []
    for block in blocks_of(G):
        first.append(block.residual[0].weight.flatten())
        second.append(block.residual[2].weight.flatten())
        assert block.residual[4].weight.abs().max() == 0
    assert torch.cat(first).std().item() == pytest.approx(gain / math.sqrt(64), rel=0.02)  # fan-in 64
    assert torch.cat(second).std().item() == pytest.approx(gain / math.sqrt(16 * 9), rel=0.02)  # a group: 16 x 3x3


def test_the_resampling_filter_is_121_as_the_reference():
    # R3GAN's CreateLowpassKernel([1, 2, 1]): convolved with the [1, 1] hold, outer product, sum 1
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    assert torch.allclose(lowpass_kernel((1, 2, 1)), torch.outer(taps, taps) / 64)
    impulse = torch.zeros(1, 1, 6, 8)
    impulse[0, 0, 2, 5] = 1.0
    # on an impulse: 2x upsampling = nearest-neighbour upsampling then the [1,2,1] x [1,2,1] / 16 blur
    up = Upsample2d()(impulse)
    assert up.shape == (1, 1, 12, 16)
    assert torch.allclose(up, blur(F.interpolate(impulse, scale_factor=2, mode="nearest")), atol=1e-7)
    assert torch.allclose(up[0, 0, 3:7, 9:13], torch.outer(taps, taps) / 16)  # the response, centred on the 2x2
    # 2x downsampling = the [1,2,1] x [1,2,1] / 16 blur then 2x2 average pooling, on an asymmetric batch too
    x = torch.randn(2, 3, 8, 6) + torch.arange(3).view(1, 3, 1, 1)
    for signal in (impulse, x):
        assert torch.allclose(Downsample2d()(signal), F.avg_pool2d(blur(signal), 2), atol=1e-6)
        assert torch.allclose(Upsample2d()(signal), blur(F.interpolate(signal, scale_factor=2)), atol=1e-6)


def test_generator_starts_from_a_learned_4x4_basis_modulated_by_z():
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=8, resolution=32, channels=3, width=16, group_size=8)
    seen = {}
    G.stages.register_forward_hook(lambda m, inputs, out: seen.setdefault("h", inputs[0]))
    z = torch.randn(3, 8)
    G(z)
    h = seen["h"]
    assert h.shape == (3, 16, 4, 4)
    ratio = h / G.basis[None]  # every channel's map is that channel's basis scaled by a linear function of z
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), rtol=1e-4, atol=1e-5)
    assert torch.allclose(ratio[..., 0, 0], z @ G.modulation.weight.T, rtol=1e-4, atol=1e-5)


def test_discriminator_head_is_a_depthwise_4x4_conv_and_a_linear():
    D = r3gan.Discriminator(resolution=32, channels=3, width=16, group_size=8)
    assert (D.basis.kernel_size, D.basis.groups, D.basis.in_channels, D.basis.out_channels) == ((4, 4), 16, 16, 16)
    assert D.features(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    assert D.adversarial.in_features == 16 and D.adversarial.bias is None
    assert D(torch.randn(5, 3, 32, 32)).shape == (5,)


def test_widths_per_stage_and_refusals_name_the_key():
    G = r3gan.Generator(z_dim=4, resolution=32, channels=1, widths=[32, 24, 16, 8], group_size=8)
    assert [b.residual[4].out_channels for b in blocks_of(G)] == [32, 32, 24, 24, 16, 16, 8, 8]
    with pytest.raises(ConfigError, match=r"model.discriminator.widths=\[8, 8\] has 2 entries, but .* needs 4"):
        r3gan.Discriminator(resolution=32, channels=1, widths=[8, 8])
    with pytest.raises(ConfigError, match="model.generator.group_size=16 must divide .* 12 x 2 = 24"):
        r3gan.Generator(resolution=32, channels=1, width=12)
    with pytest.raises(ConfigError, match="model=r3gan supports resolutions 32, 64, 128, 256, not dataset.resolution=28"):
        r3gan.Discriminator(resolution=28, channels=1)


def test_conditional_r3gan_embeds_the_label_in_g_and_projects_in_d():
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=8, resolution=32, channels=1, width=16, group_size=8, conditioning="projection",
                        num_classes=4)
    D = r3gan.Discriminator(resolution=32, channels=1, width=16, group_size=8, conditioning="projection",
                            num_classes=4)
    assert G.embed.weight.shape == (4, 8) and G.modulation.in_features == 16  # z and an embedding as long as z
    z, y = torch.randn(1, 8).repeat(4, 1), torch.arange(4)
    images = G(z, y)
    assert not torch.allclose(images[0], images[1])
    x = images[:1].repeat(4, 1, 1, 1)
    h = D.features(x)
    assert torch.allclose(D(x, y), D.adversarial(h).squeeze(1) + (D.embed(y) * h).sum(1))  # Miyato & Koyama eq. 3
    assert len(set(D(x, y).tolist())) == 4


def test_one_training_step(tmp_path, data_root):
    result = train_in_process(tmp_path, data_root, "model=r3gan", steps=1)
    assert result.step == 1 and all(math.isfinite(v) for k, v in result.scalars.items() if k.startswith("loss/"))


def test_one_conditional_training_step_with_minibatch_std(tmp_path, data_root):
    result = train_in_process(tmp_path, data_root, "model=r3gan", "model.conditioning=projection",
                              "model.discriminator.mbstd_group=4", steps=1)
    assert result.step == 1 and all(math.isfinite(v) for k, v in result.scalars.items() if k.startswith("loss/"))


def test_an_unsupported_resolution_is_refused_before_training(tmp_path, data_root):
    with pytest.raises(ConfigError, match="model=r3gan supports .* not dataset.resolution=28") as refused:
        train_in_process(tmp_path, data_root, "model=r3gan", "dataset.resolution=28", "dataset.resize=resize")
    assert "\n" not in str(refused.value)
    assert not list(tmp_path.rglob("step_*.pt"))
