"""Generator/discriminator pairs. Each network takes its shape from the dataset config and refuses shapes it cannot make."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from ganrun.errors import ConfigError
from ganrun.models.conditioning import random_labels, split_output


def sample_shape(dataset: DictConfig) -> tuple:
    """One sample's shape: `dataset.shape` for non-image data (toy 2-D points), else (channels, H, W)."""
    return tuple(dataset.shape) if dataset.get("shape") else (dataset.channels, dataset.resolution, dataset.resolution)


def check_shapes(G, D, dataset: DictConfig, z_dim: int, device) -> None:
    """Refuse a model whose output is not the dataset's sample shape, before training starts."""
    want = sample_shape(dataset)
    G.eval()
    with torch.no_grad():
        y = random_labels(G, 2, device)
        out = G(torch.zeros(2, z_dim, device=device), y)
        score = split_output(D(out, y))[0]
    G.train()
    if tuple(out.shape[1:]) != want:
        raise ConfigError(
            f"the generator makes images of shape {tuple(out.shape[1:])} but dataset={dataset.name} has "
            f"sample shape {want}."
        )
    if tuple(score.shape) != (2,):
        raise ConfigError(f"the discriminator returns shape {tuple(score.shape)} per batch of 2, expected (2,).")
