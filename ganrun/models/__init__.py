"""Generator/discriminator pairs. Each network takes its shape from the dataset config and refuses shapes it cannot make."""

from __future__ import annotations

import torch

from ganrun.errors import ConfigError
from ganrun.models.conditioning import random_labels, split_output


def check_shapes(G, D, info, z_dim: int, device) -> None:
    """Refuse a model whose output is not the dataset's sample shape (`info`: a DatasetInfo), before training."""
    want = info.sample_shape
    G.eval()
    with torch.no_grad():
        y = random_labels(G, 2, device)
        out = G(torch.zeros(2, z_dim, device=device), y)
        score = split_output(D(out, y))[0]
    G.train()
    if tuple(out.shape[1:]) != want:
        raise ConfigError(
            f"the generator makes images of shape {tuple(out.shape[1:])} but dataset={info.name} has "
            f"sample shape {want}."
        )
    if tuple(score.shape) != (2,):
        raise ConfigError(f"the discriminator returns shape {tuple(score.shape)} per batch of 2, expected (2,).")
