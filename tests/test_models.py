"""Architectures: output shapes, refused shapes, DCGAN init, normalisation and weight parametrisation."""

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from ganrun.errors import ConfigError
from ganrun.models import dcgan, mlp, resnet
from ganrun.models.conditioning import split_output


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
