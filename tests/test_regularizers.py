"""Regularizer values and gradients on critics with a known input gradient."""

import pytest
import torch
import torch.nn as nn

from ganrun import regularizers


def linear_critic(weights):
    """D(x) = <w, x>: its input gradient is w everywhere, so ||grad|| = ||w|| exactly."""
    layer = nn.Linear(weights.numel(), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weights.view(1, -1))
    return nn.Sequential(nn.Flatten(), layer)


@pytest.mark.parametrize("norm", [0.5, 1.0, 3.0])
def test_gradient_penalty_value_and_parameter_gradient(norm):
    w = torch.tensor([3.0, 4.0]) / 5.0 * norm
    critic = linear_critic(w)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gp = regularizers.GradientPenalty(weight=10.0)
    value = gp.penalty(critic, real, fake, critic)
    assert value.item() == pytest.approx((norm - 1.0) ** 2, abs=1e-6)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||: the penalty must backpropagate into D's weights.
    (grad,) = torch.autograd.grad(value, critic[1].weight)
    assert torch.allclose(grad.view(-1), 2 * (norm - 1.0) * w / norm, atol=1e-6)


def test_one_sided_gradient_penalty_ignores_small_norms():
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    one_sided = regularizers.GradientPenalty(one_sided=True)
    assert one_sided.penalty(linear_critic(torch.tensor([0.3, 0.4])), real, fake, None).item() == 0.0
    assert one_sided.penalty(linear_critic(torch.tensor([1.2, 1.6])), real, fake, None).item() == pytest.approx(1.0)


def test_gradient_penalty_uses_interpolates_between_real_and_fake():
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return (x**2).sum(dim=1)  # grad = 2x, so the norm depends on where x_hat lies

    real, fake = torch.zeros(1000, 1), torch.ones(1000, 1)
    regularizers.GradientPenalty().penalty(critic, real, fake, None)
    x_hat = seen[0]
    assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0
    assert x_hat.mean().item() == pytest.approx(0.5, abs=0.05)  # e ~ U[0, 1]


def test_r1_is_half_squared_gradient_norm_on_reals():
    critic = linear_critic(torch.tensor([1.0, 2.0]))
    value = regularizers.R1(weight=10.0).penalty(critic, torch.randn(5, 2), None, critic)
    assert value.item() == pytest.approx(0.5 * 5.0)


def test_l2_weight_penalty_sums_squared_parameters():
    critic = linear_critic(torch.tensor([1.0, 2.0]))
    assert regularizers.L2WeightPenalty().penalty(critic, None, None, critic).item() == pytest.approx(5.0)


def test_weight_clipping_clamps_after_the_step():
    critic = linear_critic(torch.tensor([0.5, -0.003]))
    clip = regularizers.WeightClipping(clip_value=0.01)
    assert clip.penalty(critic, None, None, critic) is None
    clip.after_d_step(critic)
    assert critic[1].weight.view(-1).tolist() == pytest.approx([0.01, -0.003])




def test_r2_is_half_squared_gradient_norm_on_fakes():
    critic = linear_critic(torch.tensor([2.0, 0.0]))
    assert regularizers.R2().penalty(critic, None, torch.randn(5, 2), critic).item() == pytest.approx(2.0)


def test_dragan_penalises_near_the_real_data():
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.sum(dim=1) * 0.5  # ||grad|| = 0.5 * sqrt(2) everywhere

    real = torch.randn(2000, 2)
    value = regularizers.DRAGAN().penalty(critic, real, None, None)
    assert value.item() == pytest.approx((0.5 * 2**0.5 - 1) ** 2, rel=1e-5)
    offset = seen[0] - real
    assert offset.min() >= 0 and offset.max() <= 0.5 * real.std() + 1e-6


def test_bcr_against_a_hand_computation_with_a_deterministic_flip():
    w = torch.arange(8.0).view(1, 1, 2, 4)  # a linear critic that tells left from right
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(3, 1, 2, 4), torch.randn(3, 1, 2, 4)
    bcr = regularizers.BalancedConsistency(real_weight=10.0, fake_weight=2.0, flip_prob=1.0, translation=0.0)
    expected = sum(weight * ((x * w).flatten(1).sum(1) - (x.flip(3) * w).flatten(1).sum(1)).pow(2).mean()
                   for weight, x in ((10.0, real), (2.0, fake)))
    assert bcr.penalty(critic, real, fake, None).item() == pytest.approx(expected.item(), rel=1e-5)


def test_bcr_vanishes_for_a_critic_blind_to_flips_and_shifts():
    images = torch.zeros(16, 3, 16, 16)
    images[:, :, 6:10, 6:10] = torch.rand(16, 3, 4, 4)  # content away from the borders: shifts keep it whole
    critic = lambda x: x.flatten(1).sum(1)  # noqa: E731
    assert regularizers.BalancedConsistency().penalty(critic, images, images, None).item() == pytest.approx(0, abs=1e-8)


def test_bcr_on_toy_points_is_refused_before_training_and_penalties_on_points_train(tmp_path, data_root):
    """bCR flips and translates images: on 2-D points it was an IndexError from inside the first D step."""
    from helpers import train_in_process

    from ganrun.errors import ConfigError

    toy = ("dataset=ring8", "model=mlp")
    with pytest.raises(ConfigError, match=r"regularizer=bcr \(bCR\) flips and translates images; it cannot act on "
                                          r"samples of shape \(2,\)"):
        train_in_process(tmp_path, data_root, *toy, "regularizer=bcr", run_dir=tmp_path / "bcr")
    assert not (tmp_path / "bcr" / "checkpoints").exists()
    assert train_in_process(tmp_path, data_root, *toy, "regularizer=r1", run_dir=tmp_path / "r1").step == 2
