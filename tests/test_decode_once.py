"""A `dataset=folder` start decodes each image once per process: the stream, the fingerprint, the evaluator's real
statistics and the end-of-run downstream metric share one decoded uint8 tensor (issue 21; before it, a start
decoded every image four times and hashed the folder twice)."""

import gc
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import train_in_process, write_png
from omegaconf import OmegaConf
from PIL import ImageFile

from ganrun.data import BatchStream, PaddedSource, decode_all, decoded, load_dataset, sources
from ganrun.metrics.evaluator import load_real_splits

N_PER_CLASS = 12


@pytest.fixture
def decodes(monkeypatch):
    """Pixel decodes by PIL (ImageFile.load with tiles left to decode; header reads do not count)."""
    count = {"n": 0}
    load = ImageFile.ImageFile.load

    def counting(self):
        count["n"] += bool(self.tile)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return count


def class_tree(root, size=(40, 36)):
    for label, name in enumerate(("cats", "dogs")):
        for i in range(N_PER_CLASS):
            write_png(root / name / f"{i}.png", size=size, seed=10 * label + i)
    return root


def test_a_folder_start_with_metrics_and_downstream_decodes_each_image_once(tmp_path, data_root, decodes,
                                                                           monkeypatch):
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "cache"))
    folder = class_tree(tmp_path / "images")
    decodes["n"] = 0
    train_in_process(tmp_path, data_root, "dataset=folder", f"dataset.path={folder}", "dataset.resolution=32",
                     "trainer.batch_size=4", "model.conditioning=concat", "metrics.final_num_samples=10",
                     "metrics.num_samples=10", "metrics.kid_subset_size=4", "metrics.pr_samples=8",
                     "metrics.downstream.enabled=true", "metrics.downstream.steps=2",
                     "metrics.downstream.repeats=1", steps=1)
    assert decodes["n"] <= 2 * N_PER_CLASS, f"{decodes['n']} decodes of {2 * N_PER_CLASS} images"


def folder_cfg(path, **values):
    cfg = {"name": "folder", "num_classes": None, "resolution": 16, "channels": 3, "in_memory": "auto",
           "source": {"_target_": "ganrun.data.sources.image_folder", "path": str(path)}}
    return OmegaConf.create({**cfg, **values})


def test_the_evaluator_and_downstream_read_the_streams_decode(tmp_path, decodes):
    folder = class_tree(tmp_path / "images")
    cfg = folder_cfg(folder)
    decodes["n"] = 0
    source, info = load_dataset(cfg)
    stream = BatchStream(source, 16, 3, 4, 0, "cpu")
    assert decodes["n"] == 2 * N_PER_CLASS
    (train, train_labels), (test, _) = load_real_splits(cfg)  # what the evaluator and downstream call
    assert decodes["n"] == 2 * N_PER_CLASS  # none more while the stream holds the decode
    assert stream.images.data_ptr() == source.images.data_ptr()  # the stream indexes the tensor itself (CPU)
    assert len(train) + len(test) == 2 * N_PER_CLASS and train_labels.tolist().count(1) > 0
    del stream, source
    gc.collect()
    load_real_splits(cfg)  # nothing holds it any more: decoded again, once
    assert decodes["n"] == 4 * N_PER_CLASS


def _files_fingerprint(folder):
    """The folder's fingerprint as defined (relative path, label, size, bytes of each file in order): what a
    checkpoint saved before issue 21 holds, so that resuming it still works."""
    digest = hashlib.sha1()
    for label, name in enumerate(sorted(p.name for p in folder.iterdir())):
        for path in sorted((folder / name).iterdir()):
            digest.update(f"{name}/{path.name}\0{label}\0{path.stat().st_size}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("resize", ["resize", "pad"])
def test_the_decode_matches_the_per_image_transform_and_the_fingerprint_the_files(tmp_path, resize):
    folder = tmp_path / "images"
    for i in range(5):
        write_png(folder / "a" / f"{i}.png", size=(10 + i, 11), mode="RGB" if i % 2 else "L", seed=i)
    write_png(folder / "b" / "x.png", size=(9, 16), mode="RGBA", seed=7)
    cfg = folder_cfg(folder, resize=resize)
    source, info = load_dataset(cfg)
    raw = sources.image_folder(str(folder))
    expected, labels = decode_all(PaddedSource(raw, 16) if resize == "pad" else raw, 16, 3, num_workers=0)
    assert source.images.shape == (6, 3, 16, 16) and torch.equal(source.images, expected)
    assert source.labels.tolist() == labels.tolist() == [0, 0, 0, 0, 0, 1]
    assert info.fingerprint == _files_fingerprint(folder)
    assert ("zero-padded" if resize == "pad" else "torchvision bilinear, antialias=True") in info.describe()


def test_a_folder_past_the_memory_bound_is_prepared_once_and_reused(tmp_path, decodes, caplog):
    folder = class_tree(tmp_path / "images", size=(20, 18))
    (folder / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    held = load_dataset(folder_cfg(folder, source={"_target_": "ganrun.data.sources.image_folder",
                                                   "path": str(folder), "skip_unreadable": True}))[0]
    cfg = folder_cfg(folder, in_memory_gb=1e-6, source={"_target_": "ganrun.data.sources.image_folder",
                                                        "path": str(folder), "skip_unreadable": True})
    decodes["n"] = 0
    source, info = load_dataset(cfg, tmp_path / "cache")
    assert decodes["n"] == 2 * N_PER_CLASS  # the broken file counts as no decode
    prepared = Path(source.prepared)
    assert prepared.parent == tmp_path / "cache" / "prepared" and prepared.stat().st_size == 128 + 24 * 3 * 16 * 16
    assert torch.equal(source.images, held.images) and torch.equal(source.labels, held.labels)
    assert [Path(p).name for p, _ in source.samples] == [Path(p).name for p, _ in held.samples]
    del source
    gc.collect()
    again, info_again = load_dataset(cfg, tmp_path / "cache")
    assert decodes["n"] == 2 * N_PER_CLASS and info_again.fingerprint == info.fingerprint  # read, not decoded
    assert torch.equal(again.images, held.images)
    # Batches through DataLoader workers (which reopen the file) are those of the held tensor.
    streams = [BatchStream(s, 16, 3, 4, 3, "cpu", False, workers) for s, workers in ((again, 1), (held, 0))]
    for _ in range(7):
        (a, la), (b, lb) = (next(s) for s in streams)
        assert torch.equal(a, b) and torch.equal(la, lb)
    del again, streams
    gc.collect()
    prepared.write_bytes(prepared.read_bytes()[:-5])  # cut short: not used, made again
    with caplog.at_level(logging.WARNING, logger="ganrun"):
        remade = load_dataset(cfg, tmp_path / "cache")[0]
    assert "cannot be used" in caplog.text and torch.equal(remade.images, held.images)
    assert decodes["n"] == 4 * N_PER_CLASS


def test_a_prepared_file_is_data_never_a_link_or_another_dtype(tmp_path):
    np.save(tmp_path / "floats.npy", np.zeros((2, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="float32"):
        decoded._open_prepared(tmp_path / "floats.npy")
    np.save(tmp_path / "ok.npy", np.arange(96, dtype=np.uint8).reshape(2, 3, 4, 4))
    assert decoded._open_prepared(tmp_path / "ok.npy", 2)[1, 0, 0, 1] == 49
    with pytest.raises(ValueError, match="header says"):
        decoded._open_prepared(tmp_path / "ok.npy", 3)  # not the rows its index lists
    (tmp_path / "link.npy").symlink_to(tmp_path / "ok.npy")
    with pytest.raises(ValueError, match="not a plain file"):
        decoded._open_prepared(tmp_path / "link.npy")
