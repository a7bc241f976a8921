"""Images are read as they are meant to be seen: EXIF orientation applied, high-bit-depth and float images scaled by
their range (or refused, naming the file), a folder mixing grayscale and colour converted to its majority mode; labels
that do not fit the images or dataset.num_classes are refused before training."""

import logging

import numpy as np
import pytest
from helpers import idx_bytes, write_mnist_like, write_png
from hydra import compose, initialize_config_module
from PIL import Image

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.data import decode_all, load_dataset
from ganrun.data.sources import image_folder
from ganrun.errors import ConfigError

ORIENTATION = 0x0112  # EXIF tag


def folder_cfg(path, *overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=["dataset=folder", f"dataset.path={path}", *overrides]).dataset


def test_exif_orientation_is_applied(tmp_path):
    """Stored 40 wide x 20 high, left half white; Orientation 6: shown rotated 90 degrees clockwise, so the image
    is 20 wide x 40 high with the white half on top (EXIF 2.32, tag 0x0112)."""
    stored = np.zeros((20, 40), dtype=np.uint8)
    stored[:, :20] = 255
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    (tmp_path / "images").mkdir()
    Image.fromarray(stored, "L").save(tmp_path / "images" / "camera.jpg", quality=100, exif=exif)
    shown = np.asarray(image_folder(str(tmp_path / "images"))[0][0])
    assert shown.shape == (40, 20)
    assert shown[:18].mean() > 250 and shown[22:].mean() < 5


def _decoded(tmp_path, array, mode, name):
    folder = tmp_path / name
    folder.mkdir()
    image = Image.fromarray(array)
    assert image.mode == mode
    image.save(folder / f"{name}.tiff")
    images, _ = decode_all(image_folder(str(folder)), resolution=2, channels=1, num_workers=0)
    return images[0, 0].flatten().tolist()


@pytest.mark.parametrize("array,mode,expected", [
    (np.array([[0, 65535], [32896, 257]], dtype=np.uint16), "I;16", [0, 255, 128, 1]),  # 16-bit: / 257
    (np.array([[0, 2**31 - 1], [2**30, 2**24]], dtype=np.int32), "I", [0, 255, 128, 2]),  # 32-bit: / (2^31 - 1)
    (np.array([[0, 65535], [257, 0]], dtype=np.int32), "I", [0, 255, 1, 0]),  # 16-bit values in a 32-bit image
    (np.array([[0, 200], [17, 255]], dtype=np.int32), "I", [0, 200, 17, 255]),  # 8-bit values: as they are
    (np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float32), "F", [0, 255, 128, 64]),  # floats in [0, 1]
    (np.array([[0.0, 255.0], [17.0, 100.4]], dtype=np.float32), "F", [0, 255, 17, 100]),  # floats in [0, 255]
])
def test_high_bit_depth_and_float_images_are_scaled_by_their_range(tmp_path, array, mode, expected):
    assert _decoded(tmp_path, array, mode, "deep") == expected


@pytest.mark.parametrize("array,mode", [
    (np.array([[-1.0, 0.5], [0.5, 0.5]], dtype=np.float32), "F"),
    (np.array([[0.0, 300.0], [0.5, 0.5]], dtype=np.float32), "F"),
    (np.array([[np.nan, 0.5], [0.5, 0.5]], dtype=np.float32), "F"),
    (np.array([[-5, 0], [0, 0]], dtype=np.int32), "I"),
])
def test_images_without_a_range_to_read_them_by_are_refused_naming_the_file(tmp_path, array, mode):
    with pytest.raises(ConfigError, match=r"cannot read image .*odd\.tiff"):
        _decoded(tmp_path, array, mode, "odd")


def test_a_mixed_folder_takes_the_majority_mode_and_warns_with_the_count(tmp_path, caplog):
    write_png(tmp_path / "images" / "000.png", size=(16, 16), mode="L")  # the first file is the minority
    for i in range(1, 4):
        write_png(tmp_path / "images" / f"00{i}.png", size=(16, 16), mode="RGB", seed=i)
    cfg = folder_cfg(tmp_path / "images")
    with caplog.at_level(logging.INFO, logger="ganrun"):
        load_dataset(cfg)
    assert cfg.channels == 3
    assert "mixes 1 grayscale and 3 colour images: all are converted to RGB (the majority)" in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dataset.channels=3" in warnings[0].getMessage()


def test_a_mostly_grayscale_folder_is_read_as_grayscale(tmp_path, caplog):
    write_png(tmp_path / "images" / "000.png", size=(16, 16), mode="RGB")
    for i in range(1, 3):
        write_png(tmp_path / "images" / f"00{i}.png", size=(16, 16), mode="L", seed=i)
    cfg = folder_cfg(tmp_path / "images")
    with caplog.at_level(logging.WARNING, logger="ganrun"):
        load_dataset(cfg)
    assert cfg.channels == 1 and "mixes 2 grayscale and 1 colour images" in caplog.text


def test_a_folder_of_one_mode_gives_no_warning(tmp_path, caplog):
    for i in range(3):
        write_png(tmp_path / "images" / f"00{i}.png", size=(16, 16), mode="RGB", seed=i)
    cfg = folder_cfg(tmp_path / "images")
    with caplog.at_level(logging.WARNING, logger="ganrun"):
        load_dataset(cfg)
    assert cfg.channels == 3 and "mixes" not in caplog.text


def _fashion(data_root, *overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=["dataset=fashion_mnist", f"dataset.source.root={data_root}",
                                            *overrides]).dataset


def test_labels_outside_num_classes_are_refused_naming_the_key(tmp_path):
    root = write_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw").parent.parent  # labels 0..9
    load_dataset(_fashion(root))
    with pytest.raises(ConfigError, match=r"labels 0..9, outside 0..4 \(dataset.num_classes=5\)"):
        load_dataset(_fashion(root, "dataset.num_classes=5"))


def test_a_labels_file_shorter_than_the_images_is_refused(tmp_path):
    raw = write_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw", n=32)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(20) % 10))
    with pytest.raises(ConfigError, match="20 labels for 32 images"):
        load_dataset(_fashion(tmp_path / "data"))
