"""Data is never silently wrong: 16-bit images keep their values, folder layouts are not half-read, symlink
loops do not repeat data, the user's broken files are named (never overwritten), and content changes show in a
fingerprint."""

import os

import numpy as np
import pytest
import torch
from helpers import write_mnist_like, write_png
from omegaconf import OmegaConf
from PIL import Image

from ganrun.data import decode_all, load_dataset, sources
from ganrun.errors import ConfigError


def folder_cfg(path):
    return OmegaConf.create({"name": "folder", "num_classes": None, "resolution": 8, "channels": 3,
                             "source": {"_target_": "ganrun.data.sources.image_folder", "path": str(path)}})


def test_16_bit_png_trains_as_its_real_values_scaled_to_8_bits(tmp_path):
    levels = np.array([0, 257 * 10, 257 * 128, 257 * 200, 65535, 1000], dtype=np.uint16)  # -> 0 10 128 200 255 4
    image = np.resize(levels, (8, 8)).astype(np.uint16)
    Image.fromarray(image).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    expected = torch.from_numpy(np.rint(image / 257.0).astype(np.uint8))
    for channels in (1, 3):
        images, _ = decode_all(sources.image_folder(str(tmp_path)), 8, channels, num_workers=0)
        assert images.shape == (1, channels, 8, 8)
        assert all(torch.equal(images[0, c], expected) for c in range(channels))
    assert int(expected.max()) == 255 and int(expected[0, 5]) == 4  # scaled, not clipped (clipping gives 255)


def test_a_flat_folder_with_a_sub_folder_is_refused_not_half_read(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"{i}.png", seed=i)
    write_png(tmp_path / "thumbs" / "t.png")
    with pytest.raises(ConfigError) as refused:
        sources.image_folder(str(tmp_path))
    assert "3 image file(s) next to 1 sub-folder(s) (thumbs)" in str(refused.value)
    # Hidden folders (.ipynb_checkpoints, .git) are not classes and do not count.
    (tmp_path / "thumbs" / "t.png").unlink()
    (tmp_path / "thumbs").rmdir()
    write_png(tmp_path / ".cache" / "x.png")
    assert len(sources.image_folder(str(tmp_path))) == 3


def test_symlink_loops_do_not_multiply_the_data(tmp_path):
    for i in range(3):
        write_png(tmp_path / "cats" / f"{i}.png", seed=i)
    write_png(tmp_path / "dogs" / "d.png")
    os.symlink(tmp_path / "cats", tmp_path / "cats" / "loop")      # a folder linking to itself
    os.symlink(tmp_path, tmp_path / "dogs" / "up")                 # a link to the root
    (tmp_path / "dogs" / "more").mkdir()
    write_png(tmp_path / "dogs" / "more" / "e.png", seed=9)         # real nested folders are still read
    dataset = sources.image_folder(str(tmp_path))
    assert dataset.classes == ["cats", "dogs"]
    by_class = sorted((label, os.path.basename(p)) for p, label in dataset.samples)
    assert by_class == [(0, "0.png"), (0, "1.png"), (0, "2.png"), (1, "d.png"), (1, "e.png")]


def test_broken_idx_files_in_the_users_root_are_named_and_never_overwritten(tmp_path, monkeypatch):
    debian = write_mnist_like(tmp_path / "debian", n=32, gz=True)  # a good copy ganrun could extract over it
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(debian))
    raw = write_mnist_like(tmp_path / "root" / "FashionMNIST" / "raw", n=16)
    broken = raw / "train-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:1000])  # truncated
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    with pytest.raises(ConfigError) as refused:
        sources.fashion_mnist(str(tmp_path / "root"), download=True)
    assert str(broken) in str(refused.value) and "does not overwrite" in str(refused.value)
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_fingerprint_follows_content_not_location(tmp_path):
    for i in range(3):
        write_png(tmp_path / "a" / f"{i}.png", seed=i)
    first = load_dataset(folder_cfg(tmp_path / "a"))[1].fingerprint
    assert load_dataset(folder_cfg(tmp_path / "a"))[1].fingerprint == first
    os.rename(tmp_path / "a", tmp_path / "moved")
    assert load_dataset(folder_cfg(tmp_path / "moved"))[1].fingerprint == first
    write_png(tmp_path / "moved" / "1.png", seed=42)  # same name, new pixels
    assert load_dataset(folder_cfg(tmp_path / "moved"))[1].fingerprint != first

    def mnist_fingerprint(root, seed):
        write_mnist_like(root / "FashionMNIST" / "raw", n=16, seed=seed)
        cfg = OmegaConf.create({"name": "fm", "num_classes": 10, "resolution": 28, "channels": 1, "source": {
            "_target_": "ganrun.data.sources.fashion_mnist", "root": str(root), "download": False}})
        return load_dataset(cfg)[1].fingerprint

    assert mnist_fingerprint(tmp_path / "r1", 0) == mnist_fingerprint(tmp_path / "r2", 0)
    assert mnist_fingerprint(tmp_path / "r3", 0) != mnist_fingerprint(tmp_path / "r4", 1)


def metrics_setup(tmp_path, data_root, monkeypatch):
    from hydra import compose, initialize_config_module

    import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)

    monkeypatch.setenv("GANRUN_DATA", str(data_root))
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=[f"metrics.cache_dir={tmp_path / 'cache'}", "metrics.classifier_epochs=1",
                                            "metrics.num_real=60", "metrics.download=false"])


def test_a_corrupt_metrics_cache_is_recomputed_with_the_file_named(tmp_path, data_root, monkeypatch, caplog):
    import logging

    from ganrun.metrics.evaluator import Evaluator

    cfg = metrics_setup(tmp_path, data_root, monkeypatch)
    first = Evaluator(cfg.metrics, cfg.dataset, "cpu")
    files = sorted((tmp_path / "cache").rglob("*.pt"))
    assert len(files) == 2  # the offline classifier and the real statistics
    for f in files:
        f.write_bytes(f.read_bytes()[:200])  # truncated, as by a full disk or a killed copy
    with caplog.at_level(logging.WARNING):
        second = Evaluator(cfg.metrics, cfg.dataset, "cpu")
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert all(f"Metrics cache file {f} cannot be used" in warned for f in files)
    assert second.stats_computed == 1 and torch.equal(first.real["mu"], second.real["mu"])
    third = Evaluator(cfg.metrics, cfg.dataset, "cpu")  # rewritten: a hit again
    assert (third.stats_computed, third.cache_hits) == (0, 1)


def test_a_cache_that_cannot_be_written_does_not_stop_the_run(tmp_path, data_root, monkeypatch, caplog):
    import errno
    import logging

    from ganrun.metrics.evaluator import Evaluator

    cfg = metrics_setup(tmp_path, data_root, monkeypatch)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with caplog.at_level(logging.WARNING):
        evaluator = Evaluator(cfg.metrics, cfg.dataset, "cpu")
    assert evaluator.stats_computed == 1 and not list((tmp_path / "cache").rglob("*.pt"))
    assert "Metrics cache not written: cannot write" in " ".join(r.getMessage() for r in caplog.records)
