"""Fixtures only; what tests share as functions lives in helpers.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers import write_mnist_like
from hydra.core.global_hydra import GlobalHydra


@pytest.fixture
def data_root(tmp_path) -> Path:
    """A dataset root holding a tiny Fashion-MNIST and MNIST in torchvision's layout."""
    root = tmp_path / "data"
    write_mnist_like(root / "FashionMNIST" / "raw")
    write_mnist_like(root / "MNIST" / "raw", seed=1)
    return root


@pytest.fixture(autouse=True)
def clear_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@pytest.fixture(autouse=True)
def no_leftover_log_handlers():
    """A companion's main() run in process configures root logging on that test's captured stderr: drop what a
    test added, so a later test's log lines never go to a closed capture ("--- Logging error ---")."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run on CUDA when one is present and are skipped otherwise."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
