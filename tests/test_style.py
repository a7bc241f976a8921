"""task=style (ganrun/style.py): the style folder, the (style, content) stream and G's style-transfer terms."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ganrun import perceptual, style
from ganrun.errors import ConfigError


def make_style_folder(folder, count=3, seed=0):
    """`count` RGB images of different sizes and colours (stripes: a texture with a clear Gram signature)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = 40 + 8 * i, 48
        pixels = np.zeros((h, w, 3), np.uint8)
        pixels[:, :, i % 3] = (np.arange(w) % (4 + 2 * i) < 2 + i) * 255  # vertical stripes
        pixels[:, :, (i + 1) % 3] = rng.integers(0, 64, (h, w))
        Image.fromarray(pixels).save(folder / f"style{i}.png")
    return folder


def offline_features(**kwargs):
    return functools.partial(perceptual.FeatureNetwork, network="vgg16", download=False, **kwargs)


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_style_images_are_decoded_at_the_datasets_size(tmp_path):
    images = style.load_style_images(str(make_style_folder(tmp_path / "s")), 32, 3)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    grey = style.load_style_images(str(tmp_path / "s"), 28, 1)
    assert grey.shape == (3, 1, 28, 28)
    assert images[0, 0].float().std() > 50  # the stripes survived


@pytest.mark.parametrize("root, message", [(None, "task.style.root=DIR"), ("nowhere", r"task.style.root='.*nowhere' is not a folder")])
def test_a_missing_style_folder_is_named(root, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        style.load_style_images(root if root is None else str(tmp_path / root), 32, 3)


def test_an_empty_or_unreadable_style_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="task.style.root=.*empty has no image files"):
        style.load_style_images(str(tmp_path / "empty"), 32, 3)
    folder = make_style_folder(tmp_path / "s", count=1)
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"unreadable image file\(s\) in task.style.root=") as refused:
        style.load_style_images(str(folder), 32, 3)
    assert "broken.png" in str(refused.value) and "skip_unreadable" not in str(refused.value)


def test_links_are_refused_naming_them(tmp_path):
    real = make_style_folder(tmp_path / "real", count=1)
    linked_root = tmp_path / "linked"
    os.symlink(real, linked_root)
    with pytest.raises(ConfigError, match="is a symbolic link: name the folder itself"):
        style.load_style_images(str(linked_root), 32, 3)
    folder = make_style_folder(tmp_path / "s", count=1)
    os.symlink(real / "style0.png", folder / "elsewhere.png")
    with pytest.raises(ConfigError, match=r"elsewhere.png is a symbolic link"):
        style.load_style_images(str(folder), 32, 3)
    classes = tmp_path / "classes"
    make_style_folder(classes / "a", count=1)
    os.symlink(real, classes / "b")
    with pytest.raises(ConfigError, match=r"classes/b is a symbolic link"):
        style.load_style_images(str(classes), 32, 3)


class Batches:
    """A content stream stand-in: fixed batches, label-less, with a position."""

    def __init__(self, batch):
        self.batch, self.position = batch, 0

    def __next__(self):
        self.position += 1
        return self.batch + self.position, None

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def test_the_stream_pairs_each_content_batch_with_style_images_from_the_global_rng():
    styles = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 4, 4).contiguous() * 50
    stream = style.StyleStream(Batches(torch.zeros(6, 1, 4, 4)), styles)
    torch.manual_seed(3)
    first, content = next(stream)
    assert torch.equal(content, torch.ones(6, 1, 4, 4))
    drawn = ((first[:, 0, 0, 0] + 1) * 127.5 / 50).round().long()
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.randint(5, (6,)))  # uniform indices from the global RNG: resume replays them
    assert first.min() >= -1 and first.max() <= 1
    assert stream.state_dict() == {"position": 1}


def test_the_task_terms_are_the_weighted_perceptual_losses(tmp_path, no_hub):
    task = style.StyleTask({"root": str(make_style_folder(tmp_path / "s")), "resolution": 16, "channels": 3},
                           offline_features(), ["relu2_2"], ["relu1_2", "relu2_2"], content_weight=2.0,
                           style_weight=3.0, tv_weight=0.5)
    assert set(task.features.layers) == {"relu1_2", "relu2_2"} and task.styles.shape == (3, 3, 16, 16)
    torch.manual_seed(0)
    output, styles, content = (torch.rand(2, 3, 16, 16) * 2 - 1 for _ in range(3))
    terms = task.generator_terms(output, styles, content)
    phi = task.features
    expected = {"content": perceptual.content_loss(phi(output)["relu2_2"], phi(content)["relu2_2"]),
                "style": perceptual.style_loss(phi(output), phi(styles), ["relu1_2", "relu2_2"]),
                "tv": perceptual.total_variation(output)}
    for name, weight in (("content", 2.0), ("style", 3.0), ("tv", 0.5)):
        assert terms[name][0] == weight
        torch.testing.assert_close(terms[name][1], expected[name], rtol=1e-5, atol=1e-7)
    assert task.losses(content, styles, content)["content"] == 0 and task.losses(styles, styles, content)["style"] == 0
    output.requires_grad_(True)
    sum(w * v for w, v in task.generator_terms(output, styles, content).values()).backward()
    assert output.grad.abs().sum() > 0 and not any(p.grad is not None for p in task.features.parameters())


# ---- the task in the runner
def test_a_style_run_trains_logs_its_terms_and_draws_the_content_style_output_grid(tmp_path, data_root, no_hub,
                                                                                    monkeypatch):
    from helpers import events, train_in_process

    from ganrun.metrics import report

    def no_evaluator(*args, **kwargs):
        raise AssertionError("task=style scores itself: no classifier or real statistics are built")

    monkeypatch.setattr(report, "make_evaluator", no_evaluator)

    folder = make_style_folder(tmp_path / "styles", count=2)
    run = tmp_path / "run"
    train_in_process(tmp_path, data_root, "task=style", "model=transformer_net", f"task.style.root={folder}",
                     "task.features.download=false", "model.generator.num_residual=1", "trainer.sample_every=2",
                     "task.content_layers=[relu1_2]", "task.style_layers=[relu1_1,relu1_2]", "task.eval_samples=3",
                     "metrics.every=2", "metrics.final_num_samples=8", "metrics.num_samples=8", steps=2, run_dir=run)
    scalars = events(run).Tags()["scalars"]
    for name in ("loss/G_content", "loss/G_style", "loss/G_tv", "loss/G_adversarial", "metrics/style_distance_style",
                 "metrics/content_loss_style", "metrics/style_distance_input_style"):
        assert name in scalars, scalars
    assert "samples/content_style_output" in events(run).Tags()["images"]
    grid = events(run).Images("samples/content_style_output")[-1]
    assert (grid.width, grid.height) == (2 + 9 * 34, 2 + 34)  # 3 triplets of 32 px images (+2 px padding) in a row
    evaluations = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert evaluations and all(e["extractor"] == "style" for e in evaluations)
    features = evaluations[-1]["protocol"]["features"]  # the offline fallback, recorded with every number
    assert features["comparable_with_papers"] is False and "random weights" in features["network"]


def test_translate_stylises_a_folder_and_sample_refuses_the_run(tmp_path, data_root, no_hub, capsys):
    import shutil

    import torchvision
    from helpers import train_in_process, write_png

    from ganrun import sample_cli, translate_cli
    from ganrun.outputs import load_generator

    folder = make_style_folder(tmp_path / "styles", count=1)
    run = tmp_path / "run"
    train_in_process(tmp_path, data_root, "task=style", "model=transformer_net", f"task.style.root={folder}",
                     "task.features.download=false", "model.generator.num_residual=1",
                     "task.content_layers=[relu1_2]", "task.style_layers=[relu1_2]", steps=1, run_dir=run)
    shutil.rmtree(folder)  # translating needs G only: not the style folder, not the feature network
    inputs = tmp_path / "in"
    for i in range(2):
        write_png(inputs / f"c{i}.png", size=(32, 32), mode="L", seed=i)
    translate_cli.main([str(run), "--in", str(inputs), "--out", str(tmp_path / "out")])
    G = load_generator(str(run), image_to_image=True)[0]
    content = torchvision.io.read_image(str(inputs / "c1.png")).float().div(127.5).sub(1).unsqueeze(0)
    expected = ((G(content).clamp(-1, 1) + 1) * 127.5).round()
    written = torchvision.io.read_image(str(tmp_path / "out" / "c1.png")).float()
    assert written.shape == (1, 32, 32) and (written - expected[0]).abs().max() <= 1  # uint8 rounding
    for main, argv in ((translate_cli.main, [str(run), "--in", str(inputs), "--out", str(tmp_path / "o2"),
                                             "--degrade"]),
                       (sample_cli.main, [str(run), "--out", str(tmp_path / "s"), "--num", "2"])):
        with pytest.raises(SystemExit):
            main(argv)
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "task=style" in error[0], error


# ---- every value of the new task keys acts (the keys of conf/task/style.yaml and the paired tasks' new ones)
def composed_task(*overrides):
    from hydra import compose, initialize_config_module

    import ganrun.resolvers  # noqa: F401

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=["task.features.download=false", *overrides]).task


def test_every_style_key_acts(tmp_path, no_hub):
    from ganrun.config import build

    root = f"task.style.root={make_style_folder(tmp_path / 's', count=2)}"
    base = build(composed_task("task=style", root))
    assert base.styles.shape == (2, 1, 32, 32) and base.adversarial_weight == 1e-3  # Fashion-MNIST's size
    changed = build(composed_task("task=style", root, "task.content_weight=2", "task.style_weight=7",
                                  "task.tv_weight=0.5", "task.adversarial_weight=0.25", "task.content_layers=[relu1_1]",
                                  "task.style_layers=[relu1_1,relu2_1]", "task.features.network=vgg19",
                                  "dataset=cifar10", "task.eval_samples=5"))
    assert (changed.content_weight, changed.style_weight, changed.tv_weight, changed.adversarial_weight) == \
        (2.0, 7.0, 0.5, 0.25)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert {k: w for k, (w, _) in changed.generator_terms(x, x, x).items()} == {"content": 2.0, "style": 7.0, "tv": 0.5}
    assert changed.styles.shape == (2, 3, 32, 32) and changed.eval_samples == 5  # CIFAR-10's size and channels
    assert set(changed.features.layers) == {"relu1_1", "relu2_1"} and "vgg19" in changed.features.protocol["network"]
    with pytest.raises(ConfigError, match="vgg16 ImageNet weights are unavailable"):
        build(composed_task("task=style", root, "task.features.offline=error"))
    wrong = tmp_path / "vgg16-397923af.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ConfigError, match=str(wrong)):
        build(composed_task("task=style", root, f"task.features.weights={wrong}"))


def test_the_paired_tasks_perceptual_keys_act(tmp_path, no_hub):
    from ganrun.config import build

    off = build(composed_task("task=superres"))
    assert off.features is None and off.adversarial_weight == 1.0
    x, y = (torch.rand(2, 1, 32, 32) * 2 - 1 for _ in range(2))
    assert set(off.generator_terms(x, y, y)) == {"reconstruction"}
    on = build(composed_task("task=superres", "task.perceptual_weight=0.5", "task.perceptual_layers=[relu2_2]",
                             "task.adversarial_weight=1e-3", "task.features.network=vgg16"))
    terms = on.generator_terms(x, y, y)
    assert terms["perceptual"][0] == 0.5 and on.adversarial_weight == 1e-3
    expected = perceptual.content_loss(on.features(x)["relu2_2"], on.features(y)["relu2_2"])
    torch.testing.assert_close(terms["perceptual"][1], expected)
    assert "vgg16" in on.features.protocol["network"] and list(on.features.layers) == ["relu2_2"]
