"""dataset=folder: resolution and channels come from the images when not given, and the choice is logged."""

import logging

import pytest
from helpers import train_in_process, write_png
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.data import load_dataset


def folder_cfg(path, *overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=["dataset=folder", f"dataset.path={path}", *overrides]).dataset


@pytest.mark.parametrize("size, mode, resolution, channels", [
    ((28, 28), "L", 28, 1),    # grayscale stays grayscale, 28 px stays 28 px (was: 64 px RGB)
    ((40, 32), "RGB", 32, 3),  # the shorter side
    ((32, 32), "RGBA", 32, 3),
    ((32, 32), "LA", 32, 1),
])
def test_shape_inferred_from_the_first_image(tmp_path, caplog, size, mode, resolution, channels):
    write_png(tmp_path / "images" / "000.png", size=size, mode=mode)
    write_png(tmp_path / "images" / "001.png", size=(64, 64), mode="RGB", seed=1)  # not the first: ignored (a
    # tie of modes also goes to the first image)
    cfg = folder_cfg(tmp_path / "images")
    with caplog.at_level(logging.INFO, logger="ganrun"):
        load_dataset(cfg)
    assert (cfg.resolution, cfg.channels) == (resolution, channels)
    assert f"Images: {resolution} px, {channels} channel(s)" in caplog.text and "inferred" in caplog.text
    assert "000.png" in caplog.text


def test_given_values_are_kept_and_logged(tmp_path, caplog):
    write_png(tmp_path / "images" / "000.png", size=(28, 28), mode="L")
    cfg = folder_cfg(tmp_path / "images", "dataset.resolution=64", "dataset.channels=3")
    with caplog.at_level(logging.INFO, logger="ganrun"):
        load_dataset(cfg)
    assert (cfg.resolution, cfg.channels) == (64, 3)
    assert "Images: 64 px, 3 channel(s)" in caplog.text and "28x28, mode L" in caplog.text


def test_inferred_shape_trains_and_is_saved(tmp_path, data_root):
    for i in range(8):
        write_png(tmp_path / "gray" / f"{i}.png", size=(28, 28), mode="L", seed=i)
    train_in_process(tmp_path, data_root, "dataset=folder", f"dataset.path={tmp_path / 'gray'}",
                     "trainer.batch_size=4")
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert (saved.dataset.resolution, saved.dataset.channels) == (28, 1)
    assert saved.model.generator.channels == 1  # the model was built for the inferred shape
