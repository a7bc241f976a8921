"""Architectures: output shapes, refused shapes, DCGAN init, normalisation and weight parametrisation."""

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from ganrun.errors import ConfigError
from ganrun.models import dcgan, mlp


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
    with pytest.raises(ConfigError, match="28, 32, 64"):
        dcgan.Discriminator(resolution=128)


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
    with pytest.raises(ConfigError, match="norm='group'"):
        dcgan.Discriminator(resolution=32, norm="group")


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
