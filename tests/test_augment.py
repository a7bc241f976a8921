"""DiffAugment and instance noise: what each op does, and that real and fake get the same treatment."""

import pytest
import torch

from ganrun import augment
from ganrun.errors import ConfigError


def test_translation_shifts_content_with_zero_padding():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0  # one bright pixel per image
    out = augment.translation(x)
    positions = out.flatten(1).argmax(1)
    dy, dx = positions // 16 - 8, positions % 16 - 8
    assert out.sum(dim=(1, 2, 3)).eq(1).all()  # moved, not blurred or lost
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2  # at most 1/8 of 16 px
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 5  # drawn per sample
    edge = torch.ones(8, 1, 16, 16)
    assert (augment.translation(edge) == 0).any()  # padding enters as zeros


def test_cutout_zeroes_a_square_of_half_the_size():
    torch.manual_seed(0)
    out = augment.cutout(torch.ones(256, 3, 16, 16))
    zeroed = (out == 0).all(dim=1).flatten(1).sum(1)
    assert zeroed.max() == 64  # an 8 x 8 square when it lies inside the image
    assert (zeroed <= 64).all() and (zeroed > 0).all()


def test_color_changes_brightness_saturation_contrast_per_sample():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 8, 8) * 2 - 1
    out = augment.color(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    shift = (out - x).mean(dim=(1, 2, 3))
    assert shift.std() > 0.05


def test_real_and_fake_get_the_same_transforms_and_gradients_flow():
    pipeline = augment.Pipeline({"d": augment.DiffAugment("color,translation,cutout")})
    images = torch.rand(4, 3, 16, 16)
    torch.manual_seed(1)
    as_real = pipeline(images, step=0)
    fake = images.clone().requires_grad_(True)
    torch.manual_seed(1)
    as_fake = pipeline(fake, step=0)
    assert torch.equal(as_real, as_fake)  # one pipeline, one policy for both sides of D
    as_fake.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0  # differentiable: G learns through it


def test_non_images_are_refused():
    with pytest.raises(ConfigError, match="works on images"):
        augment.DiffAugment().check((2,))


def test_instance_noise_std_anneals_linearly_to_zero():
    noise = augment.InstanceNoise(std=0.5, anneal_steps=100)
    x = torch.zeros(200_000)
    torch.manual_seed(0)
    assert noise(x, 0).std().item() == pytest.approx(0.5, rel=0.01)
    assert noise(x, 50).std().item() == pytest.approx(0.25, rel=0.01)
    assert torch.equal(noise(x, 100), x) and torch.equal(noise(x, 150), x)
    assert augment.InstanceNoise(std=0.1, anneal_steps=0).sigma(10**6) == 0.1
