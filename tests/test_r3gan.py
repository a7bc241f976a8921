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
from ganrun.models.layers import Downsample2d, Upsample2d

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


# ---- issue 19: definitions against closed forms, on asymmetric inputs (generated mutants, docs/mutation.md)
def block_params(c, expansion, group_size):
    """1x1 to c x expansion, grouped 3x3 (group_size inputs per output), 1x1 back, all bias-free; a learned bias
    in each of the two activations."""
    inner = c * expansion
    return c * inner + inner * group_size * 9 + inner * c + 2 * inner


def test_parameters_are_r3gans_closed_form_with_widths_per_stage():
    G = r3gan.Generator(z_dim=4, resolution=32, channels=2, widths=[16, 8, 8, 12], blocks=2, group_size=4,
                        expansion=3, conditioning="projection", num_classes=3)
    n = 3 * 4 + 16 * 16 + 8 * 16  # class embedding as long as z; 4x4 basis; modulation of [z, embed(y)]
    n += 2 * block_params(16, 3, 4) + 16 * 8 + 2 * block_params(8, 3, 4) + 2 * block_params(8, 3, 4)
    n += 8 * 12 + 2 * block_params(12, 3, 4) + 12 * 2  # a 1x1 where the width changes; to the image
    assert sum(p.numel() for p in G.parameters()) == n
    y = torch.tensor([2, 0, 1])
    assert G(torch.randn(3, 4), y).shape == (3, 2, 32, 32)
    D = r3gan.Discriminator(resolution=32, channels=2, widths=[12, 8, 8, 16], blocks=1, group_size=4, expansion=3,
                            mbstd_group=3, conditioning="acgan", num_classes=3)
    n = 2 * 12 + block_params(12, 3, 4) + 12 * 8 + block_params(8, 3, 4) + block_params(8, 3, 4) + 8 * 16
    n += 17 * 16 + block_params(16, 3, 4)  # the minibatch-std map joins the 4x4 stage through a 1x1
    n += 16 * 16 + 16 + 16 * 3 + 3  # depthwise 4x4; bias-free adversarial head; AC-GAN class head
    assert sum(p.numel() for p in D.parameters()) == n
    out, classes = D(torch.randn(3, 2, 32, 32))
    assert out.shape == (3,) and classes.shape == (3, 3)
    # the paper's CIFAR-10 nets (the class defaults): 768 channels at 4 stages, 2 blocks each, groups of 16
    G, D = r3gan.Generator(), r3gan.Discriminator()
    assert sum(p.numel() for p in G.parameters()) == 768 * 16 + 64 * 768 + 8 * block_params(768, 2, 16) + 768 * 3
    assert sum(p.numel() for p in D.parameters()) == 3 * 768 + 8 * block_params(768, 2, 16) + 768 * 16 + 768


def test_feature_maps_from_4x4_up_and_down_with_every_width():
    G = r3gan.Generator(z_dim=3, resolution=64, channels=1, widths=[10, 8, 8, 6, 4], blocks=1, group_size=2)
    sizes, h = [], G.basis[None] * G.modulation(torch.randn(2, 3))[:, :, None, None]
    for layer in G.stages:
        h = layer(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes[0] == (10, 4, 4) and sizes[-1] == (4, 64, 64)
    assert [s for s, layer in zip(sizes, G.stages) if isinstance(layer, Upsample2d)] == [
        (8, 8, 8), (8, 16, 16), (6, 32, 32), (4, 64, 64)]
    D = r3gan.Discriminator(resolution=64, channels=1, widths=[4, 6, 8, 8, 10], blocks=1, group_size=2,
                            mbstd_group=2)
    sizes, h = [], torch.randn(4, 1, 64, 64)
    for layer in D.stages:
        h = layer(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes[0] == (4, 64, 64) and sizes[-1] == (10, 4, 4) and (11, 4, 4) in sizes  # the mbstd map
    assert [s for s, layer in zip(sizes, D.stages) if isinstance(layer, Downsample2d)] == [
        (4, 32, 32), (6, 16, 16), (8, 8, 8), (8, 4, 4)]
    assert D(torch.randn(4, 1, 64, 64)).shape == (4,)


def test_the_block_adds_its_residual_branch():
    """x + conv1x1(act(gconv3x3(act(conv1x1(x))))), act(t) = leaky_relu(t + b, 0.2), once the last conv is trained."""
    torch.manual_seed(0)
    block = r3gan.ResidualBlock(channels=6, expansion=2, group_size=4, total_blocks=3)
    c1, a1, c2, a2, c3 = block.residual
    with torch.no_grad():
        c3.weight.normal_()
        a1.bias.copy_(torch.linspace(-1, 1, 12))
        a2.bias.copy_(torch.linspace(1, -0.5, 12))
    x = torch.randn(2, 6, 5, 7) * torch.linspace(0.5, 2, 7)
    t = F.leaky_relu(F.conv2d(x, c1.weight) + a1.bias.view(1, -1, 1, 1), 0.2)
    t = F.leaky_relu(F.conv2d(t, c2.weight, padding=1, groups=3) + a2.bias.view(1, -1, 1, 1), 0.2)
    assert torch.allclose(block(x), x + F.conv2d(t, c3.weight), atol=1e-5)


def test_msr_init_is_he_normal_over_each_units_fan_in():
    """R3GAN's MSRInitializer: N(0, gain^2 / fan_in), fan_in the inputs of one output unit (one group of a grouped
    conv, 16 taps of the depthwise head); gain 1 outside the blocks, the leaky ReLU gain in them (torch's
    calculate_gain('leaky_relu', 0.2))."""
    assert r3gan.LRELU_GAIN == pytest.approx(nn.init.calculate_gain("leaky_relu", 0.2), rel=1e-12)
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=96, resolution=32, channels=3, widths=[64, 48, 48, 32], blocks=1, group_size=8,
                        conditioning="acgan", num_classes=5)
    D = r3gan.Discriminator(resolution=32, channels=3, widths=[32, 48, 48, 64], blocks=1, group_size=8,
                            mbstd_group=2, conditioning="acgan", num_classes=5)
    outside = [m for net in (G, D) for m in net.stages if isinstance(m, nn.Conv2d)]
    outside += [G.modulation, G.to_image, D.basis, D.adversarial, D.classifier]
    assert len(outside) == 11  # G: 2 width changes; D: from the image, 2 width changes, after the mbstd map
    scaled = []
    for m in outside:
        fan_in = m.weight[0].numel()
        assert fan_in == (16 if m is D.basis else m.weight.shape[1])
        scaled.append(m.weight.flatten() * fan_in ** 0.5)
        assert getattr(m, "bias", None) is None or not m.bias.any()
    scaled = torch.cat(scaled)
    assert scaled.mean().abs() < 0.05 and scaled.std().item() == pytest.approx(1.0, rel=0.05)
    for block in blocks_of(G) + blocks_of(D):
        gain = r3gan.LRELU_GAIN * 4 ** -0.25  # 4 stages x 1 block
        for conv in block.residual[0], block.residual[2]:
            assert conv.weight.std().item() == pytest.approx(gain / conv.weight[0].numel() ** 0.5, rel=0.1)
            assert conv.weight.mean().abs() < 0.1 * gain / conv.weight[0].numel() ** 0.5


def test_class_embeddings_are_the_references():
    """G: a bias-free linear map of one-hot y as long as z, MSR-initialised: N(0, 1 / num_classes); D's projection
    embedding: N(0, 1 / (width x num_classes))."""
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=256, resolution=32, channels=1, width=8, group_size=8, conditioning="projection",
                        num_classes=20)
    assert G.embed.weight.shape == (20, 256)
    assert G.embed.weight.mean().abs() < 0.02
    assert G.embed.weight.std().item() == pytest.approx(20 ** -0.5, rel=0.1)
    z, y = torch.randn(2, 256), torch.tensor([3, 17])
    assert torch.equal(G.join_labels(z, y), torch.cat([z, G.embed.weight[y]], dim=1))
    D = r3gan.Discriminator(resolution=32, channels=1, widths=[8, 8, 8, 128], group_size=8,
                            conditioning="projection", num_classes=40)
    assert D.embed.weight.shape == (40, 128)
    assert D.embed.weight.mean().abs() < 0.002
    assert D.embed.weight.std().item() == pytest.approx((128 * 40) ** -0.5, rel=0.1)


def test_discriminator_features_are_the_depthwise_4x4_contraction():
    torch.manual_seed(0)
    D = r3gan.Discriminator(resolution=32, channels=2, widths=[8, 4, 4, 6], blocks=1, group_size=4)
    x = torch.randn(3, 2, 32, 32) * torch.linspace(0.5, 2, 32)
    h = D.stages(x)
    assert h.shape == (3, 6, 4, 4)
    want = (h * D.basis.weight[:, 0][None]).sum(dim=(2, 3))  # one value per channel: its own 4x4 filter
    assert torch.allclose(D.features(x), want, atol=1e-5)
    assert torch.allclose(D(x), want @ D.adversarial.weight[0], atol=1e-5)


def test_group_size_must_divide_the_inner_width_not_the_width():
    G = r3gan.Generator(z_dim=4, resolution=32, channels=1, width=12, group_size=8)  # 12 x 2 = 24 = 3 groups of 8
    assert [b.residual[2].groups for b in blocks_of(G)] == [3] * 8
    with pytest.raises(ConfigError, match="model.discriminator.group_size=16 must divide .* 12 x 3 = 36"):
        r3gan.Discriminator(resolution=32, channels=1, width=12, group_size=16, expansion=3)
