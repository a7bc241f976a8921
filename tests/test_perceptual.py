"""Feature-network losses (ganrun/perceptual.py) against their closed forms, and the VGG weights' safety: verified
by hash, never downloaded in tests, an honest fallback offline."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from ganrun import perceptual
from ganrun.errors import ConfigError
from ganrun.metrics import extractors

TOL = dict(rtol=1e-5, atol=1e-6)  # float32 sums of a few hundred terms


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty torch hub cache, and a download that fails like an offline machine (and records that it was tried)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    tried = []

    def no_network(url, destination, timeout=15.0):
        tried.append(url)
        raise OSError("simulated: network unreachable")

    monkeypatch.setattr(extractors, "download", no_network)
    return tried


def test_layers_are_named_as_the_papers_name_them():
    vgg16, vgg19 = perceptual.layer_indices("vgg16"), perceptual.layer_indices("vgg19")
    # Johnson et al.'s layers at the indices of torchvision's vgg16.features (PyTorch's fast_neural_style slices)
    assert [vgg16[n] for n in ("relu1_2", "relu2_2", "relu3_3", "relu4_3")] == [3, 8, 15, 22]
    assert len(vgg16) == 13 and len(vgg19) == 16  # VGG16/19: 13/16 convolutions
    assert vgg19["relu5_4"] == 35 and vgg19["relu4_2"] == 22  # SRGAN's VGG54; Gatys et al.'s content layer
    from torchvision.models import vgg19 as tv_vgg19

    full = tv_vgg19().features
    for last in (3, 22, 35):  # the prefix built is torchvision's features up to the layer read, parameter for parameter
        prefix = perceptual.make_prefix("vgg19", last)
        assert [type(m) for m in prefix] == [type(m) for m in full[: last + 1]]
        assert {k: v.shape for k, v in prefix.state_dict().items()} == \
            {k: v.shape for k, v in full[: last + 1].state_dict().items()}


def test_torchvision_publishes_the_hash_prefix_in_the_file_name():
    url, name, prefix = perceptual.weights_info("vgg16")
    assert url == "https://download.pytorch.org/models/vgg16-397923af.pth" and prefix == "397923af"
    assert perceptual.weights_info("vgg19")[2] == "dcbb9e9d"


def test_offline_it_says_what_is_missing_and_falls_back_to_a_fixed_random_vgg(offline, caplog):
    with caplog.at_level(logging.WARNING):
        net = perceptual.FeatureNetwork("vgg16", ["relu1_2", "relu2_2"], download=False)
    assert offline == []  # downloads off: not even tried
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "vgg16-397923af.pth is absent" in lines[0] and "task.features.weights=" in lines[0]
    assert net.protocol["comparable_with_papers"] is False and "random weights (seed 0" in net.protocol["network"]
    again = perceptual.FeatureNetwork("vgg16", ["relu1_2", "relu2_2"], download=False)
    assert torch.equal(net.net[2].weight, again.net[2].weight)  # the same features in every run
    assert net.net[2].weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)  # He et al., fan-out


def test_a_failed_download_is_reported_not_raised(offline, caplog):
    with caplog.at_level(logging.WARNING):
        perceptual.FeatureNetwork("vgg19", ["relu5_4"], download=True)
    assert offline == ["https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"]
    assert "simulated: network unreachable" in caplog.text


def test_offline_error_refuses_naming_the_key(offline):
    with pytest.raises(ConfigError, match=r"vgg16 ImageNet weights are unavailable.*task.features.weights="):
        perceptual.FeatureNetwork("vgg16", ["relu2_2"], download=False, offline="error")


def test_unknown_layers_and_networks_are_refused_by_name(offline):
    with pytest.raises(ConfigError, match="relu4_4"):
        perceptual.FeatureNetwork("vgg16", ["relu4_4"], download=False)
    with pytest.raises(ConfigError, match="alexnet"):
        perceptual.FeatureNetwork("alexnet", ["relu1_1"], download=False)


def fake_vgg_file(path, convs=((3, 64), (64, 64))):
    """torchvision's key names with small random tensors: features.0 and features.2 (up to relu1_2)."""
    state = {}
    for i, (c_in, c_out) in enumerate(convs):
        state[f"features.{2 * i}.weight"] = torch.randn(c_out, c_in, 3, 3) * 0.1
        state[f"features.{2 * i}.bias"] = torch.randn(c_out) * 0.1
    torch.save(state, path)
    return state


def test_a_weights_file_with_the_wrong_hash_is_refused_naming_it(offline, tmp_path):
    path = tmp_path / "vgg16-397923af.pth"
    fake_vgg_file(path)
    with pytest.raises(ConfigError) as refused:
        perceptual.FeatureNetwork("vgg16", ["relu1_2"], weights=str(path))
    message = str(refused.value)
    assert str(path) in message and "397923af" in message and extractors.file_sha256(path) in message
    assert "task.features.weights" in message


def test_a_wrong_file_in_the_hub_cache_is_refused_too(offline):
    cached = perceptual.hub_path("vgg16")
    cached.parent.mkdir(parents=True)
    fake_vgg_file(cached)
    with pytest.raises(ConfigError, match="397923af"):
        perceptual.FeatureNetwork("vgg16", ["relu1_2"], download=False)


def test_a_verified_file_is_loaded_and_the_features_are_imagenet_normalised_vgg(offline, tmp_path, monkeypatch):
    path = tmp_path / "weights.pth"
    state = fake_vgg_file(path)
    url, name, _ = perceptual.weights_info("vgg16")
    digest = extractors.file_sha256(path)
    monkeypatch.setattr(perceptual, "weights_info", lambda network: (url, name, digest[:8]))  # stands in for the file
    net = perceptual.FeatureNetwork("vgg16", ["relu1_1", "relu1_2"], weights=str(path))
    assert net.protocol["weights_sha256"] == digest and "comparable_with_papers" not in net.protocol

    images = torch.rand(2, 1, 5, 7) * 2 - 1  # grey, asymmetric
    x = (images.repeat(1, 3, 1, 1) + 1) / 2
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    relu1_1 = F.relu(F.conv2d(x, state["features.0.weight"], state["features.0.bias"], padding=1))
    relu1_2 = F.relu(F.conv2d(relu1_1, state["features.2.weight"], state["features.2.bias"], padding=1))
    out = net(images)
    torch.testing.assert_close(out["relu1_1"], relu1_1, **TOL)
    torch.testing.assert_close(out["relu1_2"], relu1_2, **TOL)
    assert net.state_dict() == {}  # never saved in checkpoints: the file is the state

    truncated = tmp_path / "short.pth"
    fake_vgg_file(truncated, convs=((3, 64),))
    monkeypatch.setattr(perceptual, "weights_info",
                        lambda network: (url, name, extractors.file_sha256(truncated)[:8]))
    with pytest.raises(ConfigError, match=r"short.pth: it lacks features.2.weight"):
        perceptual.FeatureNetwork("vgg16", ["relu1_2"], weights=str(truncated))


def test_the_network_is_frozen_but_passes_gradients_to_its_input(offline):
    net = perceptual.FeatureNetwork("vgg16", ["relu2_2"], download=False).train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    images = torch.rand(2, 3, 8, 12, requires_grad=True)
    net(images)["relu2_2"].sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


# ---- closed forms, by explicit loops (Johnson et al. 2016, eq. 2-4; Gatys et al. 2016)
def test_content_loss_is_the_per_image_normalised_squared_distance_averaged_over_the_batch():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4, 5, 6), torch.randn(3, 4, 5, 6)
    n, c, h, w = a.shape
    per_image = [sum((a[i, k, y, x] - b[i, k, y, x]) ** 2 for k in range(c) for y in range(h) for x in range(w))
                 / (c * h * w) for i in range(n)]
    torch.testing.assert_close(perceptual.content_loss(a, b), torch.stack(per_image).mean(), **TOL)


def test_gram_matrix_by_loops():
    torch.manual_seed(1)
    f = torch.randn(2, 3, 4, 5)
    n, c, h, w = f.shape
    expected = torch.zeros(n, c, c)
    for i in range(n):
        for p in range(c):
            for q in range(c):
                expected[i, p, q] = sum(f[i, p, y, x] * f[i, q, y, x] for y in range(h) for x in range(w)) / (c * h * w)
    torch.testing.assert_close(perceptual.gram(f), expected, **TOL)
    assert not torch.allclose(expected[0], expected[1])  # asymmetric inputs: a batch mix-up would show


def test_style_loss_sums_squared_frobenius_distances_over_the_named_layers():
    torch.manual_seed(2)
    out = {"a": torch.randn(2, 3, 4, 5), "b": torch.randn(2, 6, 2, 3), "c": torch.randn(2, 2, 2, 2)}
    target = {k: torch.randn_like(v) for k, v in out.items()}
    expected = 0.0
    for name in ("a", "b"):  # "c" is not a style layer
        g_o = torch.einsum("nchw,ndhw->ncd", out[name], out[name]) / out[name][0].numel()
        g_s = torch.einsum("nchw,ndhw->ncd", target[name], target[name]) / target[name][0].numel()
        expected = expected + sum(((g_o[i] - g_s[i]) ** 2).sum() for i in range(2)) / 2
    torch.testing.assert_close(perceptual.style_loss(out, target, ["a", "b"]), expected, **TOL)
    assert perceptual.style_loss(out, out, ["a", "b"]) == 0


def test_total_variation_by_loops():
    torch.manual_seed(3)
    img = torch.randn(2, 3, 4, 5)
    n, c, h, w = img.shape
    per_image = []
    for i in range(n):
        total = sum((img[i, k, y + 1, x] - img[i, k, y, x]) ** 2 for k in range(c) for y in range(h - 1) for x in range(w))
        total += sum((img[i, k, y, x + 1] - img[i, k, y, x]) ** 2 for k in range(c) for y in range(h) for x in range(w - 1))
        per_image.append(total)
    torch.testing.assert_close(perceptual.total_variation(img), torch.stack(per_image).mean(), **TOL)
