"""Architectures: output shapes, refused shapes, DCGAN init, normalisation and weight parametrisation."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from ganrun.errors import ConfigError
from ganrun.models import dcgan, mlp, r3gan, resnet
from ganrun.models.conditioning import split_output
from ganrun.models.layers import Downsample2d, Upsample2d, lowpass_kernel


@pytest.mark.parametrize("resolution", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(resolution, channels):
    G = dcgan.Generator(z_dim=16, resolution=resolution, channels=channels, width=8)
    D = dcgan.Discriminator(resolution=resolution, channels=channels, width=8)
    images = G(torch.randn(3, 16))
    assert images.shape == (3, channels, resolution, resolution)
    assert images.abs().max() <= 1.0  # tanh output, like the data in [-1, 1]
    assert D(images).shape == (3,)


def test_dcgan_refuses_resolutions_it_cannot_make():
    with pytest.raises(ConfigError, match="dataset.resolution=48"):
        dcgan.Generator(resolution=48)
    with pytest.raises(ConfigError, match="28, 32, 64, 128, 256, not dataset.resolution=512"):
        dcgan.Discriminator(resolution=512)


def test_dcgan_init_follows_radford():
    G = dcgan.Generator(z_dim=100, resolution=64, channels=3, width=64)
    convs = [m.weight for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    weights = torch.cat([w.flatten() for w in convs])
    assert weights.mean().abs() < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.05)
    bn = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("norm,layer", [("batch", nn.BatchNorm2d), ("instance", nn.InstanceNorm2d),
                                        ("layer", nn.GroupNorm)])
def test_norm_choice(norm, layer):
    D = dcgan.Discriminator(resolution=32, channels=3, width=8, norm=norm)
    assert any(isinstance(m, layer) for m in D.modules())


@pytest.mark.parametrize("kind", ["spectral", "weight"])
def test_weight_parametrisation_on_every_layer(kind):
    D = dcgan.Discriminator(resolution=32, channels=3, width=8, weight_param=kind)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert D(torch.randn(2, 3, 32, 32)).shape == (2,)


def test_spectral_norm_bounds_the_largest_singular_value():
    D = mlp.Discriminator(resolution=4, channels=1, hidden=[32], weight_param="spectral")
    D.train()
    for _ in range(20):  # power iteration converges over forward passes
        D(torch.randn(8, 1, 4, 4))
    linear = [m for m in D.modules() if isinstance(m, nn.Linear)][0]
    assert torch.linalg.matrix_norm(linear.weight, ord=2).item() == pytest.approx(1.0, rel=0.05)


def test_mlp_any_shape():
    G = mlp.Generator(z_dim=8, resolution=12, channels=3, hidden=[16, 16], norm="batch")
    D = mlp.Discriminator(resolution=12, channels=3, hidden=[16], norm="layer")
    assert D(G(torch.randn(4, 8))).shape == (4,)
    assert G(torch.randn(4, 8)).shape == (4, 3, 12, 12)

ARCHITECTURES = {"dcgan": (dcgan, {"width": 8}), "resnet": (resnet, {"width": 8}), "mlp": (mlp, {})}


@pytest.mark.parametrize("resolution", [28, 32, 64])
def test_resnet_shapes_and_paper_defaults(resolution):
    G = resnet.Generator(z_dim=16, resolution=resolution, channels=3, width=8)
    D = resnet.Discriminator(resolution=resolution, channels=3, width=8)
    images = G(torch.randn(2, 16))
    assert images.shape == (2, 3, resolution, resolution)
    assert D(images).shape == (2,)
    assert all(parametrize.is_parametrized(m, "weight") for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert any(isinstance(m, nn.BatchNorm2d) for m in G.modules())


def test_resnet_matches_sngan_cifar_size():
    # SNGAN's CIFAR-10 ResNet: about 4.3M parameters in G and 1.0M in D (Miyato et al. 2018, appendix B.4)
    G, D = resnet.Generator(resolution=32), resnet.Discriminator(resolution=32)
    assert sum(p.numel() for p in G.parameters()) == pytest.approx(4.28e6, rel=0.02)
    assert sum(p.numel() for p in D.parameters()) == pytest.approx(1.05e6, rel=0.02)


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("conditioning", ["concat", "projection", "acgan"])
def test_conditional_networks_use_the_label(name, conditioning):
    module, kwargs = ARCHITECTURES[name]
    torch.manual_seed(0)
    G = module.Generator(z_dim=8, resolution=28, channels=1, conditioning=conditioning, num_classes=4, **kwargs).eval()
    D = module.Discriminator(resolution=28, channels=1, conditioning=conditioning, num_classes=4, **kwargs).eval()
    z = torch.randn(1, 8).repeat(4, 1)
    y = torch.arange(4)
    images = G(z, y)
    assert not torch.allclose(images[0], images[1])  # same noise, other class, other image
    out, class_logits = split_output(D(images, y))
    assert out.shape == (4,)
    if conditioning == "acgan":
        assert class_logits.shape == (4, 4)
    else:
        assert class_logits is None
        same = images[:1].repeat(4, 1, 1, 1)
        assert len(set(D(same, y).tolist())) == 4  # D's verdict on one image depends on the claimed class
    with pytest.raises(ValueError, match="G\\(z, y\\)"):
        G(z)


def test_projection_discriminator_adds_the_class_embedding_inner_product():
    D = dcgan.Discriminator(resolution=28, channels=1, width=8, conditioning="projection", num_classes=3).eval()
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([0, 2])
    h = D.features(x)
    expected = D.adversarial(h).squeeze(1) + (D.embed(y) * h).sum(1)  # Miyato & Koyama 2018, eq. 3
    assert torch.allclose(D(x, y), expected)


def test_conditioning_needs_labels():
    with pytest.raises(ConfigError, match="needs a labelled dataset"):
        dcgan.Discriminator(resolution=28, channels=1, conditioning="projection", num_classes=None)


def test_default_experiment_is_a_32_px_dcgan_from_4x4_on_padded_fashion_mnist():
    from hydra import compose, initialize_config_module

    import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
    from ganrun.config import build

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config")
    assert (cfg.dataset.name, cfg.dataset.resolution, cfg.dataset.resize) == ("fashion_mnist", 32, "pad")
    G, D = build(cfg.model.generator), build(cfg.model.discriminator)
    up = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert up[0].kernel_size == (4, 4) and up[0].stride == (1, 1)  # z -> 4x4
    assert [m.stride for m in up[1:]] == [(2, 2)] * 3  # three up-convolutions: 8, 16, 32
    images = G(torch.randn(2, cfg.model.z_dim))
    assert images.shape == (2, 1, 32, 32)
    padded_real = nn.functional.pad(torch.rand(2, 1, 28, 28) * 2 - 1, (2, 2, 2, 2), value=-1.0)
    assert D(padded_real).shape == (2,)


# ---- issue 21: every convolutional architecture at 32-256 px, widths per stage, minibatch std, conditional BN
CONV = {"dcgan": dcgan, "resnet": resnet, "r3gan": r3gan}


@pytest.mark.parametrize("name", CONV)
@pytest.mark.parametrize("resolution", [128, 256])
def test_conv_architectures_at_128_and_256_px(name, resolution):
    module = CONV[name]
    G = module.Generator(z_dim=4, resolution=resolution, channels=3, width=8)
    D = module.Discriminator(resolution=resolution, channels=3, width=8)
    images = G(torch.randn(2, 4))
    assert images.shape == (2, 3, resolution, resolution)
    assert D(images).shape == (2,)
    with pytest.raises(ConfigError, match=f"model={name} supports resolutions .*256, not dataset.resolution=512"):
        module.Generator(resolution=512)


def test_default_widths_above_64_px_follow_the_papers():
    # DCGAN: halving from 8 x width, capped there; SNGAN's 128 px ImageNet G: 16, 16, 8, 4, 2, 1 x width
    G = dcgan.Generator(z_dim=4, resolution=256, channels=3, width=2)
    assert [m.out_channels for m in G.modules() if isinstance(m, nn.ConvTranspose2d)] == [16, 16, 16, 8, 4, 2, 3]
    G = resnet.Generator(z_dim=4, resolution=128, channels=3, width=2)
    assert G.c0 == 32 and [b.main[3].out_channels for b in G.blocks] == [32, 16, 8, 4, 2]
    D = resnet.Discriminator(resolution=128, channels=3, width=2)
    last_convs = [[m for m in b.main if isinstance(m, nn.Conv2d)][-1] for b in D.blocks]
    assert [c.out_channels for c in last_convs] == [2, 4, 8, 16, 32, 32]


@pytest.mark.parametrize("name", ["dcgan", "resnet"])
def test_widths_per_stage_are_the_channels(name):
    module = CONV[name]
    n = 3 if name == "dcgan" else 4  # 32 px: dcgan's 3 stages, resnet's 4 (G: the 4x4 map and 3 blocks)
    G = module.Generator(z_dim=4, resolution=32, channels=1, widths=[20, 12, 8, 6][:n])
    D = module.Discriminator(resolution=32, channels=1, widths=[6, 8, 12, 20][:n])
    assert D(G(torch.randn(2, 4))).shape == (2,)
    with pytest.raises(ConfigError, match=r"model.generator.widths=\[8\] has 1 entries"):
        module.Generator(z_dim=4, resolution=32, channels=1, widths=[8])


def minibatch_std_by_definition(x, group):
    """Karras et al. 2018: per group (sample i in group i mod N/group), the standard deviation of every feature over
    the group, averaged over channels and pixels, appended to each member as a constant map."""
    n = x.shape[0]
    groups = n // group
    out = torch.empty(n, 1, *x.shape[2:])
    for j in range(groups):
        members = [i for i in range(n) if i % groups == j]
        std = torch.sqrt(x[members].var(dim=0, unbiased=False) + 1e-8).mean()
        out[members] = std
    return torch.cat([x, out], dim=1)


def test_minibatch_std_against_its_definition():
    from ganrun.models.layers import MinibatchStd

    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 4) * torch.tensor([1.0, 3.0, 0.5, 2.0, 1.0, 4.0, 0.1, 1.0]).view(8, 1, 1, 1)
    out = MinibatchStd(4)(x)
    assert out.shape == (8, 4, 5, 4) and torch.equal(out[:, :3], x)
    assert torch.allclose(out, minibatch_std_by_definition(x, 4), atol=1e-6)
    assert not torch.allclose(out[0, 3], out[1, 3])  # two groups ({0, 2, 4, 6}, {1, 3, 5, 7}), two values
    # batches not divisible by the group: the largest divisor of N not above it (the reference's min(group, N) for
    # N < group; a prime N gets groups of 1: the constant sqrt(1e-8))
    assert torch.allclose(MinibatchStd(4)(x[:6]), minibatch_std_by_definition(x[:6], 3), atol=1e-6)
    assert torch.allclose(MinibatchStd(4)(x[:2]), minibatch_std_by_definition(x[:2], 2), atol=1e-6)
    assert torch.allclose(MinibatchStd(4)(x[:5])[:, 3], torch.full((5, 5, 4), 1e-4))


@pytest.mark.parametrize("name", CONV)
def test_minibatch_std_in_every_conv_discriminator(name):
    from ganrun.models.layers import MinibatchStd

    kwargs = dict(resolution=32, channels=1, width=8)
    assert not any(isinstance(m, MinibatchStd) for m in CONV[name].Discriminator(**kwargs).modules())
    D = CONV[name].Discriminator(mbstd_group=4, **kwargs)
    assert sum(isinstance(m, MinibatchStd) for m in D.modules()) == 1
    assert D(torch.randn(6, 1, 32, 32)).shape == (6,)


def test_conditional_batchnorm_is_a_per_class_gain_and_bias():
    from ganrun.models.layers import ConditionalBatchNorm2d

    torch.manual_seed(0)
    G = resnet.Generator(z_dim=8, resolution=32, channels=1, width=8, norm="conditional_batch",
                         conditioning="projection", num_classes=3)
    norms = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 7  # two per up-block, one before the output conv (Miyato & Koyama's G)
    assert not any(isinstance(m, nn.BatchNorm2d) and m.affine for m in G.modules())
    assert all(torch.equal(n.gain, torch.ones(3, n.gain.shape[1])) and not n.bias.any() for n in norms)
    assert G.linear.in_features == 8  # the label enters through the norms only, not with z
    cbn = norms[0]
    with torch.no_grad():
        cbn.gain[2] = torch.linspace(0.5, 2.0, cbn.gain.shape[1])
        cbn.bias[1] = 0.3
    x, y = torch.randn(6, cbn.gain.shape[1], 4, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    plain = F.batch_norm(x, None, None, training=True)
    expected = plain * cbn.gain[y][:, :, None, None] + cbn.bias[y][:, :, None, None]
    assert torch.allclose(cbn(x, y), expected, atol=1e-5)
    G.eval()  # running statistics: each sample alone decides its image
    z = torch.randn(1, 8).repeat(3, 1)
    images = G(z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[0], images[2])
    with torch.no_grad():
        for n in norms:
            n.gain.fill_(1.0), n.bias.zero_()
    images = G(z, torch.tensor([0, 1, 2]))
    assert torch.allclose(images[0], images[1]) and torch.allclose(images[0], images[2])  # at init: plain BN
    with pytest.raises(ConfigError, match="model.generator.norm=conditional_batch needs class labels"):
        resnet.Generator(resolution=32, channels=1, norm="conditional_batch")


def test_conditional_batchnorm_trains(tmp_path, data_root):
    from helpers import train_in_process

    result = train_in_process(tmp_path, data_root, "model=resnet", "model.conditioning=projection",
                              "model.generator.norm=conditional_batch", steps=1)
    assert result.step == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", CONV)
def test_a_folder_of_256_px_images_trains(name, tmp_path):
    from helpers import train_in_process, write_png

    for i in range(6):
        write_png(tmp_path / "images" / f"{i}.png", size=(256, 256), seed=i)
    widths = ["model.generator.width=4", "model.discriminator.width=4"] if name != "r3gan" else [
        "model.generator.width=8", "model.discriminator.width=8"]
    result = train_in_process(tmp_path, tmp_path, f"model={name}", "dataset=folder",
                              f"dataset.path={tmp_path / 'images'}", "trainer.batch_size=4", "ema.enabled=false",
                              *widths, steps=2)
    assert result.step == 2


# ---- issue 19: definitions against closed forms, on asymmetric inputs (generated mutants, docs/mutation.md)
def layer_list(module):
    """The leaf layers in order, each as the values that define it (not the in-place flag of an activation, which
    changes no value)."""
    rows = []
    for m in module.modules():
        name = type(m).__name__.replace("Parametrized", "")
        if name.startswith("_") or name in ("ModuleDict", "ParametrizationList"):  # a weight parametrisation's parts
            continue
        if list(m.children()) and not parametrize.is_parametrized(m):
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            rows.append((name, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.groups,
                         m.bias is not None))
        elif isinstance(m, nn.Linear):
            rows.append((name, m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)):
            rows.append((name, m.num_features, m.affine))
        elif isinstance(m, nn.GroupNorm):
            rows.append((name, m.num_groups, m.num_channels, m.affine))
        elif isinstance(m, nn.LayerNorm):
            rows.append((name, tuple(m.normalized_shape), m.elementwise_affine))
        elif isinstance(m, nn.LeakyReLU):
            rows.append((name, m.negative_slope))
        elif isinstance(m, nn.Embedding):
            rows.append((name, m.num_embeddings, m.embedding_dim))
        else:
            rows.append((name,))
    return rows


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def asymmetric(*shape, seed=0):
    """A batch whose samples, channels and pixels all differ in scale and offset."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    for dim, size in enumerate(shape):
        view = [1] * len(shape)
        view[dim] = size
        x = x * torch.linspace(0.5, 2.0, size).view(view) + torch.linspace(-0.3, 0.4, size).view(view)
    return x


def test_norm_layer_normalises_over_the_axes_of_its_definition():
    from ganrun.models.layers import ConditionalBatchNorm2d, norm_layer

    x = asymmetric(3, 4, 5, 2)

    def standardise(t, dims):
        mean = t.mean(dim=dims, keepdim=True)
        return (t - mean) / torch.sqrt(t.var(dim=dims, unbiased=False, keepdim=True) + 1e-5)

    # feature maps: batch over (N, H, W) per channel (Ioffe & Szegedy), instance over (H, W) per sample and channel
    # (Ulyanov et al.), layer over (C, H, W) per sample (Ba et al.); each with a learned per-channel gain and bias
    for kind, dims in (("batch", (0, 2, 3)), ("instance", (2, 3)), ("layer", (1, 2, 3))):
        layer = norm_layer(kind, 4).train()
        assert [tuple(p.shape) for p in layer.parameters()] == [(4,), (4,)], kind
        assert torch.allclose(layer(x), standardise(x, dims), atol=1e-5), kind
    assert layer_list(norm_layer("layer", 4)) == [("GroupNorm", 1, 4, True)]
    assert isinstance(norm_layer("none", 4), nn.Identity)
    # flat features (fully connected nets): batch over N, layer over the features
    flat = x[:, :, 0, 0] * torch.tensor([1.0, -2.0, 3.0]).view(3, 1)
    assert torch.allclose(norm_layer("batch", 4, image=False).train()(flat), standardise(flat, (0,)), atol=1e-5)
    assert torch.allclose(norm_layer("layer", 4, image=False)(flat), standardise(flat, (1,)), atol=1e-5)
    assert layer_list(nn.Sequential(norm_layer("batch", 4, image=False), norm_layer("layer", 4, image=False))) == [
        ("BatchNorm1d", 4, True), ("LayerNorm", (4,), True)]
    cbn = norm_layer("conditional_batch", 4, num_classes=3)
    assert isinstance(cbn, ConditionalBatchNorm2d) and cbn.gain.shape == (3, 4)


@pytest.mark.parametrize("kind", ["spectral", "weight"])
def test_weight_parametrisation_is_the_papers(kind):
    """Spectral norm: W / sigma(W) on every conv, linear and (Miyato & Koyama) the projection embedding. Weight norm
    (Salimans & Kingma 2016): W = g v / ||v|| per output unit, on conv and linear layers only."""
    D = mlp.Discriminator(resolution=3, channels=2, hidden=[7, 5], weight_param=kind, conditioning="projection",
                          num_classes=3)
    G = dcgan.Generator(z_dim=4, resolution=28, channels=1, widths=[6, 3], weight_param=kind)
    layers = [m for net in (D, G) for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    want = "_SpectralNorm" if kind == "spectral" else "_WeightNorm"
    assert len(layers) == 6  # D: two hidden layers and the head; G: three transposed convs
    assert all(type(m.parametrizations.weight[0]).__name__ == want for m in layers)
    assert parametrize.is_parametrized(D.embed) == (kind == "spectral")
    if kind == "weight":
        linear = D.net[0]
        g, v = linear.parametrizations.weight.original0, linear.parametrizations.weight.original1
        with torch.no_grad():
            g.copy_(torch.linspace(0.5, 3.0, 7).view(7, 1))
        assert torch.allclose(linear.weight, g * v / v.norm(dim=1, keepdim=True), atol=1e-6)
        assert torch.allclose(linear.weight.norm(dim=1), torch.linspace(0.5, 3.0, 7), atol=1e-5)


def test_dcgan_init_is_radfords_on_every_layer_of_both_networks():
    """Radford et al. 2015: all weights from N(0, 0.02); norm gains from N(1, 0.02) (the reference code); biases 0."""
    torch.manual_seed(0)
    for net, n_norms in ((dcgan.Generator(z_dim=100, resolution=64, channels=3, width=32), 4),
                         (dcgan.Discriminator(resolution=64, channels=3, width=32, norm="instance"), 3)):
        weights = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
        assert len(weights) == 5 and len(norms) == n_norms
        for m in weights:
            assert m.weight.mean().abs() < 0.02 * 4 / m.weight.numel() ** 0.5
            assert m.weight.std().item() == pytest.approx(0.02, rel=0.25 if m.weight.numel() < 5000 else 0.05)
            assert m.bias is None or not m.bias.any()
        gains = torch.cat([m.weight for m in norms])
        assert gains.mean().item() == pytest.approx(1.0, abs=0.004)
        assert gains.std().item() == pytest.approx(0.02, rel=0.15)
        assert not torch.cat([m.bias for m in norms]).any()
    D = dcgan.Discriminator(resolution=32, channels=1, width=16, norm="layer")
    assert torch.cat([m.weight for m in D.modules() if isinstance(m, nn.GroupNorm)]).std() < 0.05


def test_dcgan_is_the_papers_network_at_64_px():
    """Radford et al.'s 64 px LSUN net as pytorch/examples dcgan writes it (G 3,576,704 and D 2,765,568 parameters,
    every conv bias-free), plus ganrun's biases on the three layers no BatchNorm follows: G's output conv (3), D's
    first conv (64) and D's head (1)."""
    G, D = dcgan.Generator(), dcgan.Discriminator()  # the defaults: z 100, 64 px RGB, width 64
    assert n_params(G) == 3_576_704 + 3 and n_params(D) == 2_765_568 + 64 + 1
    assert G(torch.randn(2, 100)).shape == (2, 3, 64, 64)


def test_dcgan_layers_at_28_px_with_widths_and_every_option():
    """z -> 7x7 by a 7x7 transposed conv, then 4x4 stride-2 transposed convs (padding 1) doubling the size,
    BatchNorm + ReLU after each but the last, tanh; D: 4x4 stride-2 convs, LeakyReLU(0.2), no norm on the first,
    the minibatch-std map, then the 7x7 head on the flattened map."""
    G = dcgan.Generator(z_dim=5, resolution=28, channels=2, widths=[12, 6], conditioning="concat", num_classes=3)
    assert layer_list(G) == [
        ("ConvTranspose2d", 8, 12, 7, 1, 0, 1, False), ("BatchNorm2d", 12, True), ("ReLU",),
        ("ConvTranspose2d", 12, 6, 4, 2, 1, 1, False), ("BatchNorm2d", 6, True), ("ReLU",),
        ("ConvTranspose2d", 6, 2, 4, 2, 1, 1, True), ("Tanh",)]
    D = dcgan.Discriminator(resolution=28, channels=2, widths=[6, 12], mbstd_group=2, conditioning="concat",
                            num_classes=3)
    assert layer_list(D) == [
        ("Conv2d", 5, 6, 4, 2, 1, 1, True), ("LeakyReLU", 0.2), ("Conv2d", 6, 12, 4, 2, 1, 1, False),
        ("BatchNorm2d", 12, True), ("LeakyReLU", 0.2), ("MinibatchStd",), ("Flatten",), ("Linear", 13 * 49, 1, True)]
    y = torch.tensor([2, 0, 1, 2])
    images = G(torch.randn(4, 5), y)
    assert images.shape == (4, 2, 28, 28) and D(images, y).shape == (4,)
    seen = {}
    D.net[-1].register_forward_hook(lambda m, inputs, out: seen.update(flat=out))
    D(images, y)
    assert seen["flat"].shape == (4, 13 * 7 * 7)
    # default widths: 8, 4, 2, 1 x width from the smallest map, as many as the doublings
    for resolution, want in ((28, [6, 3]), (32, [12, 6, 3]), (64, [24, 12, 6, 3])):
        convs = [m for m in dcgan.Generator(z_dim=2, resolution=resolution, channels=1, width=3).modules()
                 if isinstance(m, nn.ConvTranspose2d)]
        assert [c.out_channels for c in convs[:-1]] == want
        assert [c.kernel_size[0] for c in convs[:1]] == [7 if resolution == 28 else 4]
        convs = [m for m in dcgan.Discriminator(resolution=resolution, channels=1, width=3).modules()
                 if isinstance(m, nn.Conv2d)]
        assert [c.out_channels for c in convs] == want[::-1]


def test_mlp_layers_and_output():
    """Goodfellow et al.'s fully connected nets: Linear + norm + ReLU (G) or LeakyReLU(0.2) (D) per hidden layer,
    G's output tanh for images, linear for the toy points; cGAN's one-hot y joins z and the flattened image."""
    G = mlp.Generator(z_dim=5, resolution=3, channels=2, hidden=[7, 11], norm="batch", conditioning="concat",
                      num_classes=3)
    assert layer_list(G) == [("Linear", 8, 7, True), ("BatchNorm1d", 7, True), ("ReLU",), ("Linear", 7, 11, True),
                             ("BatchNorm1d", 11, True), ("ReLU",), ("Linear", 11, 18, True), ("Tanh",)]
    D = mlp.Discriminator(resolution=3, channels=2, hidden=[11, 7], norm="layer", conditioning="concat",
                          num_classes=3)
    assert layer_list(D) == [("Linear", 21, 11, True), ("LayerNorm", (11,), True), ("LeakyReLU", 0.2),
                             ("Linear", 11, 7, True), ("LayerNorm", (7,), True), ("LeakyReLU", 0.2),
                             ("Linear", 7, 1, True)]
    y = torch.tensor([1, 0, 2, 2])
    images = G(torch.randn(4, 5), y)
    assert images.shape == (4, 2, 3, 3) and D(images, y).shape == (4,)
    x = asymmetric(4, 2, 3, 3)
    assert torch.equal(D.join_labels(x, y), torch.cat([x.flatten(1), F.one_hot(y, 3).float()], dim=1))
    assert torch.allclose(D.features(D.join_labels(x, y)), D.net(D.join_labels(x, y)))
    # toy 2-D points: linear output, not confined to [-1, 1]
    G = mlp.Generator(z_dim=2, hidden=[4], shape=[2], output="linear")
    D = mlp.Discriminator(hidden=[4], shape=[2])
    assert layer_list(G)[-1] == ("Linear", 4, 2, True) and layer_list(D)[0] == ("Linear", 2, 4, True)
    with torch.no_grad():
        G.net[-1].bias.fill_(5.0)
    assert G(torch.randn(3, 2)).min() > 1.0 and D(G(torch.randn(3, 2))).shape == (3,)


def yaml_of(model: str):
    import importlib.resources

    from omegaconf import OmegaConf

    return OmegaConf.load(importlib.resources.files("ganrun.conf") / "model" / f"{model}.yaml")


# the class defaults that come from the dataset: the paper's data (DCGAN's 64 px LSUN net, SNGAN's and R3GAN's
# CIFAR-10, the vanilla GAN's MNIST)
PAPER_DATA = {"dcgan": (64, 3), "resnet": (32, 3), "r3gan": (32, 3), "mlp": (28, 1)}


@pytest.mark.parametrize("name", ["dcgan", "resnet", "r3gan", "mlp"])
def test_class_defaults_are_the_shipped_config(name):
    """Each class serves one section of conf/model/<name>.yaml: its keyword defaults are that section's values
    (a class built without the config is the configured network), and the dataset-given ones the paper's data."""
    import inspect

    module = {"dcgan": dcgan, "resnet": resnet, "r3gan": r3gan, "mlp": mlp}[name]
    cfg = yaml_of(name)
    for cls, section in ((module.Generator, cfg.generator), (module.Discriminator, cfg.discriminator)):
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        assert set(defaults) == set(section) - {"_target_"}, cls
        for key in defaults:
            value = section._get_node(key)._value()
            if key == "z_dim":
                value = cfg.z_dim
            elif key in ("resolution", "channels"):
                value = PAPER_DATA[name][key == "channels"]
            elif key == "num_classes" or key == "shape" or key == "output":
                continue  # dataset-given: no default class count, image data, tanh (checked in their tests)
            elif key == "conditioning":
                value = cfg.conditioning
            value = list(value) if hasattr(value, "__len__") and not isinstance(value, str) else value
            default = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
            assert default == value, (cls, key)
    assert inspect.signature(mlp.Generator).parameters["output"].default == "tanh"
    assert inspect.signature(mlp.Generator).parameters["shape"].default is None


def test_conditioning_needs_at_least_two_classes():
    for classes in (None, 0, 1):
        with pytest.raises(ConfigError, match=f"at least 2 classes, but the dataset has num_classes={classes}"):
            mlp.Generator(z_dim=4, hidden=[4], conditioning="concat", num_classes=classes)
    G = mlp.Generator(z_dim=4, hidden=[4], resolution=2, conditioning="acgan", num_classes=2)  # binary labels
    assert (G.z_dim, G.num_classes, G.input_dim) == (4, 2, 6)
    G = mlp.Generator(z_dim=4, hidden=[4], resolution=2, conditioning="none", num_classes=10)  # labels unused
    assert (G.z_dim, G.num_classes, G.input_dim) == (4, 0, 4)
    assert G(torch.randn(3, 4)).shape == (3, 1, 2, 2)
    D = dcgan.Discriminator(resolution=28, channels=2, width=4, conditioning="none", num_classes=10)
    assert D.in_channels == 2 and D.embed is None and D.classifier is None
    assert D(torch.randn(3, 2, 28, 28)).shape == (3,)


def test_random_labels_are_uniform_over_the_classes_of_a_conditional_generator():
    from ganrun.models.conditioning import random_labels

    assert random_labels(mlp.Generator(z_dim=4, hidden=[4]), 5, "cpu") is None
    assert random_labels(nn.Identity(), 5, "cpu") is None  # a network without classes (e.g. a translation G)
    G = mlp.Generator(z_dim=4, hidden=[4], conditioning="projection", num_classes=3)
    y = random_labels(G, 3000, "cpu", torch.Generator().manual_seed(0))
    assert y.shape == (3000,) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=3).tolist() == pytest.approx([1000] * 3, abs=100)  # ~6 sigma
    assert torch.equal(y, random_labels(G, 3000, "cpu", torch.Generator().manual_seed(0)))


def test_cgan_concat_joins_one_hot_labels_to_z_and_as_constant_maps_to_d():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=3, resolution=28, channels=1, width=4, conditioning="concat", num_classes=4)
    z, y = asymmetric(5, 3), torch.tensor([3, 0, 2, 1, 3])
    assert torch.equal(G.join_labels(z, y), torch.cat([z, F.one_hot(y, 4).float()], dim=1))
    seen = {}
    G.net[0].register_forward_hook(lambda m, inputs, out: seen.update({"in": inputs[0]}))
    G(z, y)
    assert torch.equal(seen["in"], torch.cat([z, F.one_hot(y, 4).float()], dim=1).view(5, 7, 1, 1))
    D = dcgan.Discriminator(resolution=28, channels=2, width=4, conditioning="concat", num_classes=4)
    x = asymmetric(5, 2, 28, 28)
    joined = D.join_labels(x, y)
    assert joined.shape == (5, 6, 28, 28) and torch.equal(joined[:, :2], x)
    assert torch.equal(joined[:, 2:], F.one_hot(y, 4).float()[:, :, None, None].expand(5, 4, 28, 28))
    seen.clear()
    D.net[0].register_forward_hook(lambda m, inputs, out: seen.update({"in": inputs[0]}))
    D(x, y)
    assert torch.equal(seen["in"], joined)


def test_projection_and_acgan_heads():
    """Projection (Miyato & Koyama 2018, eq. 3): D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, needs y; AC-GAN
    (Odena et al. 2017): a class head next to the adversarial one, D needs no label."""
    torch.manual_seed(0)
    D = resnet.Discriminator(resolution=32, channels=1, width=6, conditioning="projection", num_classes=3,
                             weight_param="none").eval()
    x, y = asymmetric(4, 1, 32, 32), torch.tensor([2, 0, 1, 2])
    with torch.no_grad():
        D.embed.weight.copy_(asymmetric(3, 6, seed=1))
    h = D.features(x)
    want = h @ D.adversarial.weight[0] + (D.embed.weight[y] * h).sum(dim=1)
    assert torch.allclose(D(x, y), want, atol=1e-5)
    with pytest.raises(ValueError, match="D\\(x, y\\)"):
        D(x)
    D = resnet.Discriminator(resolution=32, channels=1, width=6, conditioning="acgan", num_classes=3).eval()
    out, classes = D(x)  # no label needed
    h = D.features(x)
    assert torch.allclose(out, D.adversarial(h)[:, 0], atol=1e-6)
    assert torch.allclose(classes, D.classifier(h), atol=1e-6) and classes.shape == (4, 3)
    assert D.embed is None and layer_list(D.classifier) == [("Linear", 6, 3, True)]


def test_acgan_class_terms_are_odenas_cross_entropies():
    """Odena et al. 2017 eq. 2-3 as minimised losses: D adds w (CE(real) + CE(fake)), G adds w CE(fake)."""
    from ganrun.models.conditioning import conditioning_terms
    from ganrun.regularizers import TermContext

    real_classes, fake_classes = asymmetric(4, 3, seed=1) * 2, asymmetric(4, 3, seed=2) - 1
    labels = torch.tensor([2, 0, 1, 2])
    ctx = TermContext(critic=None, discriminator=None, real=None, fake=None, labels=labels,
                      real_classes=real_classes, fake_classes=fake_classes)

    def ce(logits):  # -log softmax at the label, averaged
        return -(logits.log_softmax(dim=1)[torch.arange(4), labels]).mean()

    D = dcgan.Discriminator(resolution=28, channels=1, width=4, conditioning="acgan", num_classes=3)
    term = conditioning_terms(D, 0.7)["acgan_class"]
    assert term.d_term(ctx).item() == pytest.approx(0.7 * (ce(real_classes) + ce(fake_classes)).item(), rel=1e-6)
    assert term.g_term(ctx).item() == pytest.approx(0.7 * ce(fake_classes).item(), rel=1e-6)
    assert conditioning_terms(D)["acgan_class"].weight == 1.0  # the paper's weight
    for conditioning in ("none", "concat", "projection"):
        D = dcgan.Discriminator(resolution=28, channels=1, width=4, conditioning=conditioning, num_classes=3)
        assert conditioning_terms(D) == {}
    assert conditioning_terms(nn.Identity()) == {}


def test_unsupported_resolution_names_the_key_and_the_toy_hint():
    from ganrun.models.layers import check_resolution

    with pytest.raises(ConfigError) as refused:
        check_resolution("dcgan", 48, (28, 32))
    assert str(refused.value) == "model=dcgan supports resolutions 28, 32, not dataset.resolution=48."
    with pytest.raises(ConfigError) as refused:
        check_resolution("resnet", None, (28, 32))
    assert str(refused.value).endswith("dataset.resolution=None (toy 2-D points: use model=mlp).")
    check_resolution("resnet", 32, (28, 32))


def conv_params(c_in, c_out, k, bias=True):
    return c_in * c_out * k * k + (c_out if bias else 0)


def sngan_g_params(z, channels, widths, start=4, norm_params=2):
    """SNGAN's ResNet G: linear z -> start^2 x widths[0]; per up-block norm, conv3x3, norm, conv3x3 and a 1x1
    shortcut; norm and conv3x3 to the image."""
    n = z * start * start * widths[0] + start * start * widths[0]
    for a, b in zip(widths, widths[1:]):
        n += norm_params * (a + b) + conv_params(a, b, 3) + conv_params(b, b, 3) + conv_params(a, b, 1)
    return n + norm_params * widths[-1] + conv_params(widths[-1], channels, 3)


def sngan_d_params(c_in, widths, downsample, head_inputs=None):
    """Per down-block two 3x3 convs, and a 1x1 shortcut where the block downsamples or changes the width (always
    in the first); a bias-free linear head."""
    n = 0
    for i, (a, b, down) in enumerate(zip(c_in, widths, downsample)):
        n += conv_params(a, b, 3) + conv_params(b, b, 3) + (conv_params(a, b, 1) if i == 0 or down or a != b else 0)
    return n + widths[-1]


def test_resnet_parameters_are_sngans_closed_form():
    # the paper's CIFAR-10 nets (the class defaults): G 256 channels from 4x4, three up-blocks; D 128 channels,
    # two downsampling blocks then two that keep the size
    assert n_params(resnet.Generator()) == sngan_g_params(128, 3, [256] * 4) == 4_276_739
    assert n_params(resnet.Discriminator()) == sngan_d_params([3, 128, 128, 128], [128] * 4,
                                                              [True, True, False, False]) == 1_053_824
    # 64 px, widths per block, minibatch std before the last block (one more input map), concat / projection
    G = resnet.Generator(z_dim=6, resolution=64, channels=2, widths=[11, 9, 7, 5, 3], conditioning="concat",
                         num_classes=3)
    assert n_params(G) == sngan_g_params(9, 2, [11, 9, 7, 5, 3])
    assert G(torch.randn(2, 6), torch.tensor([0, 2])).shape == (2, 2, 64, 64)
    D = resnet.Discriminator(resolution=64, channels=2, widths=[3, 5, 7, 9, 11], mbstd_group=2,
                             conditioning="projection", num_classes=3)
    assert n_params(D) == sngan_d_params([2, 3, 5, 7, 10], [3, 5, 7, 9, 11], [True] * 4 + [False]) + 3 * 11
    assert D(torch.randn(4, 2, 64, 64), torch.tensor([0, 2, 1, 1])).shape == (4,)
    # 28 px: from 7x7, two up-blocks; D as at 32 px
    G = resnet.Generator(z_dim=4, resolution=28, channels=1, width=5)
    assert n_params(G) == sngan_g_params(4, 1, [5, 5, 5], start=7) and G.start == 7
    D = resnet.Discriminator(resolution=28, channels=1, width=5, conditioning="concat", num_classes=2)
    assert n_params(D) == sngan_d_params([3, 5, 5, 5], [5] * 4, [True, True, False, False])
    # conditional BatchNorm: per-class gains and biases in place of BatchNorm's own (3 classes: 2 x 3 per channel)
    G = resnet.Generator(z_dim=4, resolution=32, channels=1, width=5, norm="conditional_batch",
                         conditioning="projection", num_classes=3)
    assert n_params(G) == sngan_g_params(4, 1, [5] * 4, norm_params=6)


def test_resnet_feature_map_sizes_and_default_widths():
    def sizes(blocks, x):
        out = []
        for block in blocks:
            x = block(x)
            out.append(tuple(x.shape[1:]))
        return out

    D = resnet.Discriminator(resolution=32, channels=1, width=4)
    assert sizes(D.blocks, torch.randn(2, 1, 32, 32)) == [(4, 16, 16), (4, 8, 8), (4, 8, 8), (4, 8, 8)]
    D = resnet.Discriminator(resolution=64, channels=1, width=2)
    assert sizes(D.blocks, torch.randn(2, 1, 64, 64)) == [(2, 32, 32), (4, 16, 16), (8, 8, 8), (16, 4, 4),
                                                          (32, 4, 4)]
    G = resnet.Generator(z_dim=3, resolution=64, channels=1, width=2)
    h = G.linear(torch.randn(2, 3)).view(2, G.c0, 4, 4)
    assert sizes(G.blocks, h) == [(16, 8, 8), (8, 16, 16), (4, 32, 32), (2, 64, 64)]
    # the paper's default widths: 32 px G 256, D 128; 64 px from 64 (G 16 x 64 at 4 x 4)
    assert resnet.Generator(resolution=32, z_dim=2).c0 == 256
    assert resnet.Generator(resolution=64, z_dim=2).c0 == 1024
    def widths(D):
        return [[m for m in b.main if isinstance(m, nn.Conv2d)][-1].out_channels for b in D.blocks]

    assert widths(resnet.Discriminator(resolution=32)) == [128] * 4
    assert widths(resnet.Discriminator(resolution=64)) == [64, 128, 256, 512, 1024]


def test_resnet_blocks_are_gulrajanis_pre_activation_blocks():
    """Up: BN-ReLU-up-conv3x3-BN-ReLU-conv3x3 + conv1x1(up(x)); down: ReLU-conv3x3-ReLU-conv3x3-avgpool +
    avgpool(conv1x1(x)); the first (optimized) block: conv3x3-ReLU-conv3x3-avgpool + conv1x1(avgpool(x)); a block
    keeping the size and the width: identity shortcut. Nearest-neighbour upsampling, 2x2 average pooling."""
    torch.manual_seed(0)
    x = asymmetric(3, 4, 6, 5)

    def conv(layer, t):
        return F.conv2d(t, layer.weight, layer.bias, padding=layer.kernel_size[0] // 2)

    def bn(t):
        return F.batch_norm(t, None, None, training=True)

    up = resnet.UpBlock(4, 6, "batch").train()
    c1, c2, sc = [m for m in up.main if isinstance(m, nn.Conv2d)] + [up.shortcut[1]]
    with torch.no_grad():
        for m in (c1, c2, sc):
            m.bias.copy_(torch.linspace(-0.5, 0.5, m.bias.numel()))
    upsample = lambda t: t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # noqa: E731
    want = conv(c2, F.relu(bn(conv(c1, upsample(F.relu(bn(x))))))) + conv(sc, upsample(x))
    assert torch.allclose(up(x), want, atol=1e-4)
    assert layer_list(up)[3][1:6] == (4, 6, 3, 1, 1) and layer_list(up)[6][1:6] == (6, 6, 3, 1, 1)

    x = asymmetric(3, 4, 6, 8)
    pool = lambda t: F.avg_pool2d(t, 2)  # noqa: E731
    for first, downsample, c_out in ((False, True, 6), (True, True, 6), (False, False, 4), (False, False, 6)):
        block = resnet.DownBlock(4, c_out, "none", downsample=downsample, first=first)
        c1, c2 = [m for m in block.main if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            for m in block.modules():
                if isinstance(m, nn.Conv2d):
                    m.bias.copy_(torch.linspace(-0.5, 0.5, m.bias.numel()))
        maybe_pool = pool if downsample else (lambda t: t)
        main = maybe_pool(conv(c2, F.relu(conv(c1, x if first else F.relu(x)))))
        if first:
            shortcut = conv(block.shortcut[-1], pool(x))
        elif c_out != 4 or downsample:
            shortcut = maybe_pool(conv(block.shortcut[0], x))
        else:
            shortcut = x
            assert isinstance(block.shortcut, nn.Identity)
        assert torch.allclose(block(x), main + shortcut, atol=1e-5), (first, downsample, c_out)


def test_resnet_generator_and_discriminator_ends():
    """G: linear -> (c0, s0, s0) -> up-blocks -> BN-ReLU-conv3x3-tanh; D: blocks -> ReLU -> global sum pooling."""
    torch.manual_seed(0)
    G = resnet.Generator(z_dim=5, resolution=32, channels=2, widths=[6, 5, 4, 3]).train()
    z = asymmetric(3, 5)
    h = G.linear(z).view(3, 6, 4, 4)
    for block in G.blocks:
        h = block(h)
    conv = G.out[2]
    want = torch.tanh(F.conv2d(F.relu(F.batch_norm(h, None, None, training=True)), conv.weight, conv.bias, padding=1))
    assert torch.allclose(G(z), want, atol=1e-5)
    assert layer_list(G.out) == [("BatchNorm2d", 3, True), ("ReLU",), ("Conv2d", 3, 2, 3, 1, 1, 1, True), ("Tanh",)]
    D = resnet.Discriminator(resolution=32, channels=2, widths=[3, 4, 5, 6], weight_param="none")
    x = asymmetric(3, 2, 32, 32)
    h = D.blocks(x)
    assert h.shape == (3, 6, 8, 8)
    assert torch.allclose(D.features(x), F.relu(h).sum(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(D(x), F.relu(h).sum(dim=(2, 3)) @ D.adversarial.weight[0], atol=1e-4)
    assert D.adversarial.bias is None  # the reference's head: nobias=True
    assert [type(b.main[0]).__name__ for b in D.blocks] == ["Conv2d", "ReLU", "ReLU", "ReLU"]  # the optimized first


def test_resnet_init_is_the_references_xavier_uniform():
    """sngan_projection: GlorotUniform(sqrt(2)) in the residual branches' 3x3 convs, GlorotUniform(1) elsewhere (the
    shortcuts, G's linear and output conv, D's head and embedding); zero biases. Xavier-uniform with gain a draws
    from U(-b, b), b = a sqrt(6 / (fan_in + fan_out)): std b / sqrt(3)."""
    from torch.nn.init import _calculate_fan_in_and_fan_out

    torch.manual_seed(0)
    G = resnet.Generator(z_dim=16, resolution=32, channels=3, width=32)
    D = resnet.Discriminator(resolution=32, channels=3, width=32, weight_param="none", conditioning="projection",
                             num_classes=5)
    residual = [m for net in (G, D) for b in net.blocks for m in b.main if isinstance(m, nn.Conv2d)]
    other = [m for net in (G, D) for b in net.blocks for m in b.shortcut.modules() if isinstance(m, nn.Conv2d)]
    other += [G.linear, G.out[2], D.adversarial, D.embed]
    assert len(residual) == 14 and len(other) == 9
    for layers, gain in ((residual, 2 ** 0.5), (other, 1.0)):
        scaled = []
        for m in layers:
            fan_in, fan_out = _calculate_fan_in_and_fan_out(m.weight)
            bound = gain * (6 / (fan_in + fan_out)) ** 0.5
            assert m.weight.abs().max() <= bound * (1 + 1e-6)
            scaled.append(m.weight.flatten() / bound)
            assert getattr(m, "bias", None) is None or not m.bias.any()
        assert torch.cat(scaled).std().item() == pytest.approx(3 ** -0.5, rel=0.02)


# ---- the [1, 2, 1] resampling of R3GAN (layers.Upsample2d / Downsample2d; Resamplers.py)
BLUR = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])) / 16  # [1,2,1] x [1,2,1] / 16


def blur(x):
    """The [1, 2, 1] low-pass filter of every channel, zero padding."""
    return F.conv2d(x, BLUR.expand(x.shape[1], 1, 3, 3), padding=1, groups=x.shape[1])


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


def test_resampling_filters_are_constants_of_any_odd_length():
    """The filter is no state (no checkpoint entry); a longer odd filter keeps the 2x sizes and the mean."""
    G = r3gan.Generator(z_dim=4, resolution=32, channels=1, width=8, group_size=8)
    assert not any("kernel" in key for key in G.state_dict())
    assert lowpass_kernel().tolist() == lowpass_kernel((1, 2, 1)).tolist()  # R3GAN's default: [1, 2, 1]
    x = torch.full((1, 2, 12, 12), 3.0)
    up, down = Upsample2d((1, 4, 6, 4, 1)), Downsample2d((1, 4, 6, 4, 1))
    assert up(x).shape == (1, 2, 24, 24) and down(x).shape == (1, 2, 6, 6)
    assert torch.allclose(up(x)[..., 4:-4, 4:-4], torch.tensor(3.0)) and torch.allclose(down(x)[..., 2:-2, 2:-2],
                                                                                      torch.tensor(3.0))
