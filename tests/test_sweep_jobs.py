"""Sweep jobs: dir names leave out the overrides every job shares; short jobs skip the 50k-sample final evaluation."""

import json

import pytest
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)

from ganrun.sweep.job_names import CONSTANT_KEYS_ENV, constant_keys, job_dir_name


def test_constant_keys_are_the_non_sweep_overrides():
    sweep = ["loss=ns,hinge", "trainer.steps=200", "seed=range(3)", "+extra=1", "optimizer.d.lr=choice(1e-4,2e-4)",
             "model.generator.width=8", "search.beta1=0.5"]
    assert constant_keys(sweep, swept_params={"search.beta1": "choice(0.0, 0.5)"}) == [
        "extra", "model.generator.width", "trainer.steps"]


def test_job_names_drop_constant_and_excluded_overrides(monkeypatch):
    job = ["trainer.steps=200", "loss=hinge", "seed=2", "dataset.path=/x", "model.generator.width=8"]
    monkeypatch.delenv(CONSTANT_KEYS_ENV, raising=False)
    assert job_dir_name(3, job, ["dataset.path"]) == "3_loss=hinge,model.generator.width=8,seed=2,trainer.steps=200"
    monkeypatch.setenv(CONSTANT_KEYS_ENV, json.dumps(["trainer.steps", "model.generator.width"]))
    assert job_dir_name(3, job, ["dataset.path"]) == "3_loss=hinge,seed=2"
    assert job_dir_name(0, ["trainer.steps=200"], []) == "0"  # nothing varies: the number alone


def test_long_names_are_cut_with_a_hash(monkeypatch):
    monkeypatch.delenv(CONSTANT_KEYS_ENV, raising=False)
    a = job_dir_name(1, [f"k{i}=v{i}" for i in range(40)])
    b = job_dir_name(1, [f"k{i}=v{i}" for i in range(39)] + ["k39=other"])
    assert len(a) == len(b) == 150 and a != b and a[:140] == b[:140]


@pytest.mark.parametrize("overrides, expected", [
    (["trainer.steps=200"], 5000),                                     # short: like the evaluations in training
    (["trainer.steps=200", "metrics.num_samples=2000"], 2000),
    (["trainer.steps=1999"], 10000),
    (["trainer.steps=2000"], 50000),                                   # long enough: the standard protocol
    ([], 50000),                                                       # the default run (5000 steps)
    (["trainer.steps=200", "metrics.final_num_samples=50000"], 50000),  # explicit wins
])
def test_final_num_samples_default_follows_the_run_length(overrides, expected):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert cfg.metrics.final_num_samples == expected
