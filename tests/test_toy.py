"""Toy 2-D mixtures: exact mode layouts, the mode metrics, and a short run whose metrics are computed."""

import logging
import math

import pytest
import torch
from helpers import events, train_in_process

from ganrun.data import toy
from ganrun.errors import ConfigError
from ganrun.outputs import load_generator
from ganrun.metrics.report import evaluate_generator


def test_ring8_has_eight_distinct_modes_on_the_radius_2_circle():
    modes = toy.ring_modes()
    assert modes.shape == (8, 2)
    assert torch.allclose(modes.norm(dim=1), torch.full((8,), 2.0))
    gaps = torch.cdist(modes, modes) + torch.eye(8) * 10
    assert gaps.min().item() == pytest.approx(2 * 2 * math.sin(math.pi / 8), rel=1e-5)  # neighbours, none doubled


def test_grid25_modes_are_the_5x5_lattice():
    modes = toy.grid_modes()
    assert {tuple(m) for m in modes.tolist()} == {(x, y) for x in (-4.0, -2.0, 0.0, 2.0, 4.0)
                                                  for y in (-4.0, -2.0, 0.0, 2.0, 4.0)}


def test_samples_follow_the_mixture():
    mixture = toy.GaussianMixture("grid", 25, 2.0, 0.05)
    points, index = mixture.sample(50_000, generator=torch.Generator().manual_seed(0))
    offsets = points - mixture.modes[index]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.02)
    assert torch.bincount(index, minlength=25).min() > 1700  # every mode drawn, evenly


def test_mode_metrics():
    mixture = toy.GaussianMixture("ring", 8, 2.0, 0.02)
    perfect = mixture.sample(2500, generator=torch.Generator().manual_seed(0))[0]
    scores = mixture.score(perfect)
    assert scores["modes_covered"] == 8
    assert scores["high_quality_percent"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.6)  # P(chi2_2 <= 9)
    collapsed = mixture.modes[3] + 0.02 * torch.randn(1000, 2)
    assert mixture.score(collapsed)["modes_covered"] == 1
    between = torch.zeros(100, 2)  # the ring's centre: 2 units (100 std) from every mode
    assert mixture.score(between) == {"modes_covered": 0, "high_quality_percent": 0.0, "num_modes": 8}
    strict = toy.GaussianMixture("ring", 8, 2.0, 0.02, min_per_mode=2)
    assert strict.score(mixture.modes)["modes_covered"] == 0  # one sample per mode is not enough here


def test_short_toy_run_computes_its_metrics_and_logs_a_scatter_plot(tmp_path, data_root, caplog):
    caplog.set_level(logging.INFO)  # pytest's log handler fails the test on a log line that cannot be formatted
    result = train_in_process(tmp_path, data_root, "dataset=grid25", "model=mlp", "trainer.batch_size=64",
                              "trainer.sample_every=5", "metrics.final_num_samples=500", steps=5)
    assert "sample shape (2,)" in caplog.text
    final = result.final["metrics"]
    assert final["num_modes"] == 25 and 0 <= final["modes_covered"] <= 25
    # recomputed from the saved generator with the same protocol: the same numbers
    G, cfg, _, _ = load_generator(tmp_path / "run")
    mixture = toy.GaussianMixture("grid", 25, 2.0, 0.05)
    again = evaluate_generator(mixture, G, cfg.model.z_dim, 500, cfg.seed)
    assert again["metrics"] == final
    acc = events(tmp_path / "run")
    assert "samples/scatter" in acc.Tags()["images"]
    assert "metrics_final/modes_covered_toy" in acc.Tags()["scalars"]


def test_image_models_refuse_toy_data(tmp_path, data_root):
    with pytest.raises(ConfigError, match="use model=mlp"):
        train_in_process(tmp_path, data_root, "dataset=ring8")
