"""Evaluation costs (issue 20, item 7): the final report does not re-score the last periodic evaluation, and the
logged img/s counts training time only."""

from __future__ import annotations

import pytest
from helpers import events, run_ganrun, train_in_process

from ganrun.metrics import report

METRICS = ["metrics.every=2", "metrics.num_samples=64", "metrics.num_real=100", "metrics.kid_subset_size=50",
           "metrics.kid_subsets=5", "metrics.download=false", "metrics.pr_samples=64"]


@pytest.mark.slow  # trains the offline classifier on the tiny data first
def test_the_final_report_reuses_the_last_periodic_evaluation_of_the_same_size(tmp_path, data_root, monkeypatch):
    scored = []
    evaluate_generator = report.evaluate_generator
    monkeypatch.setattr(report, "evaluate_generator", lambda *a, **k: scored.append(a[3]) or evaluate_generator(*a, **k))
    result = train_in_process(tmp_path, data_root, *METRICS, "metrics.final_num_samples=64",
                              f"metrics.cache_dir={tmp_path / 'cache'}", steps=4)
    assert scored == [64] * 4  # raw and EMA G at steps 2 and 4; the final report at step 4 is not scored again
    acc = events(tmp_path / "run")
    periodic = {e.step: e.value for e in acc.Scalars("metrics/FID_offline_classifier")}
    final = {e.step: e.value for e in acc.Scalars("metrics_final/FID_offline_classifier")}
    assert final == {4: periodic[4]} and result.final["metrics"]["FID"] == pytest.approx(periodic[4])
    assert result.final["seconds"] is None  # the log line gives no time for numbers it did not compute again


def test_images_per_second_leave_out_set_up_and_sample_time(tmp_path, data_root, monkeypatch):
    """A clock that jumps 1000 s during the set-up after the log window exists and during each sample grid: were
    either counted, a window of 2 steps x 16 images would log under 0.04 img/s."""
    import time
    import types

    import ganrun.window
    from ganrun.reporter import Reporter

    jumped = [0.0]
    monkeypatch.setattr(ganrun.window, "time", types.SimpleNamespace(perf_counter=lambda: time.perf_counter()
                                                                      + jumped[0]))
    init, log_samples = Reporter.__init__, Reporter.log_samples

    def slow(method):
        def wrapper(*args, **kwargs):
            jumped[0] += 1000.0
            return method(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(Reporter, "__init__", slow(init))
    monkeypatch.setattr(Reporter, "log_samples", slow(log_samples))
    train_in_process(tmp_path, data_root, "trainer.log_every=2", "trainer.sample_every=2", steps=4)
    throughput = {e.step: e.value for e in events(tmp_path / "run").Scalars("throughput/images_per_sec")}
    assert set(throughput) == {2, 4} and min(throughput.values()) > 0.5, throughput


# --- sizes that follow the run's length (ganrun.metrics.sizing), closed form ------------------------------------
@pytest.mark.parametrize("steps, during, final, real", [
    (3, 500, 500, 500),          # smoke: seconds, against as many real images as generated ones
    (99, 500, 500, 500),
    (100, 5000, 5000, 50000),    # short (a sweep job): 5k, above Inception's 2048 dims; the shared 50k real cache
    (999, 5000, 5000, 50000),
    (1000, 10000, 10000, 50000),  # FID-10k during training
    (1999, 10000, 10000, 50000),
    (2000, 10000, 50000, 50000),  # the standard 50k final report
    (5000, 10000, 50000, 50000),  # the default run
])
def test_default_sizes_follow_the_run_length(steps, during, final, real):
    from ganrun.metrics import sizing

    n = sizing.num_samples(steps)
    f = sizing.final_num_samples(steps, n)
    assert (n, f, sizing.num_real(1000, n, f)) == (during, final, real)
    assert composed_metrics(f"trainer.steps={steps}")[:3] == (during, final, real)  # what conf/config.yaml resolves


def test_the_real_count_follows_the_largest_evaluation_actually_made():
    from ganrun.metrics import sizing

    assert sizing.num_real(0, 10000, 500) == 500  # no evaluation during training: the final one alone counts
    assert sizing.num_real(1000, 10000, 0) == 50000  # no final report: the periodic ones
    assert sizing.num_real(1000, 64, 100) == 100
    assert sizing.num_real(0, 500, 0) == 50000  # nothing evaluated: the standard value stands


def test_the_offline_classifier_trains_on_a_subset_only_for_smoke_sized_evaluations():
    from ganrun.metrics import sizing

    assert sizing.classifier_images(500) == 5000  # 10 training images per generated sample
    assert sizing.classifier_images(64) == 640
    assert sizing.classifier_images(4999) == 49990
    assert sizing.classifier_images(5000) is None and sizing.classifier_images(50000) is None  # the whole split
    assert sizing.classifier_images(0) is None  # metrics off (a benchmark's evaluator): the whole split, never 0 images


def composed_metrics(*overrides):
    from hydra import compose, initialize_config_module

    import ganrun.resolvers  # noqa: F401

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        m = compose("config", overrides=list(overrides)).metrics
    return m.num_samples, m.final_num_samples, m.num_real


@pytest.mark.parametrize("overrides, expected", [
    (["trainer.steps=3", "metrics.num_samples=10000"], (10000, 10000, 50000)),  # the standard sizes on a smoke run
    (["trainer.steps=5000", "metrics.num_samples=2000"], (2000, 50000, 50000)),
    (["trainer.steps=3", "metrics.final_num_samples=777"], (500, 777, 777)),
    (["trainer.steps=5000", "metrics.num_real=1234", "metrics.final_num_samples=600"], (10000, 600, 1234)),
])
def test_an_explicit_size_is_obeyed(overrides, expected):
    assert composed_metrics(*overrides) == expected


def test_resume_rederives_the_sizes_it_derived_and_keeps_the_ones_given(tmp_path):
    """Extending a smoke run to a real one gets the real run's sizes; a size the user gave stays as given."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import ganrun.resolvers  # noqa: F401
    from ganrun.resume import resumed_config

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        smoke = OmegaConf.to_container(compose("config", overrides=["trainer.steps=3"]), resolve=True)
        given = OmegaConf.to_container(compose("config", overrides=["trainer.steps=3", "metrics.num_samples=64"]),
                                       resolve=True)
        extend = ["resume=/nowhere", "trainer.steps=5000"]
        cfg = compose("config", overrides=extend)
    m = resumed_config(smoke, cfg, extend, "ck.pt")[0].metrics
    assert (m.num_samples, m.final_num_samples, m.num_real) == (10000, 50000, 50000)
    m = resumed_config(given, cfg, extend, "ck.pt")[0].metrics
    assert (m.num_samples, m.final_num_samples, m.num_real) == (64, 50000, 50000)  # 64 stays; the rest follows


def test_a_smoke_sized_evaluation_trains_the_classifier_on_a_named_subset(tmp_path, data_root):
    """128 labelled images, evaluations of 8 samples: the classifier sees 80 of them (seeded), in a cache file and a
    protocol of its own; evaluations of 5000 or more use the classifier of the whole split."""
    from hydra import compose, initialize_config_module

    import ganrun.resolvers  # noqa: F401

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset.source.root={data_root}", "dataset.source.download=false",
                                           "metrics.every=0", "metrics.final_num_samples=8", "metrics.pr_samples=8",
                                           "metrics.download=false", f"metrics.cache_dir={tmp_path / 'cache'}"])
    from ganrun.data import load_dataset

    load_dataset(cfg.dataset)  # fixes up the dataset config as a run does
    evaluator = report.make_evaluator(cfg.metrics, cfg.dataset, "cpu")
    assert evaluator.real["n"] == 8  # the real count followed the generated one
    assert "-n80.pt" in evaluator.extractor.protocol["extractor"]
    whole = report.make_evaluator(cfg.metrics, cfg.dataset, "cpu", largest=5000)
    assert "-e1.pt" in whole.extractor.protocol["extractor"]
    names = sorted(p.name for p in (tmp_path / "cache" / "classifiers").iterdir())
    assert len(names) == 2 and names[0].endswith("-e1-n80.pt") and names[1].endswith("-e1.pt"), names


def test_the_log_line_and_the_protocol_name_both_sample_counts(tmp_path, caplog):
    import logging

    from torch.utils.tensorboard import SummaryWriter

    result = {"extractor": "offline_classifier", "metrics": {"FID": 3.5}, "seconds": 2.31,
              "protocol": {"n_generated": 500, "n_real": 128}}
    with SummaryWriter(str(tmp_path)) as writer, caplog.at_level(logging.INFO, logger="ganrun.metrics.report"):
        report.log_result(writer, tmp_path, result, 3, section="metrics_final")
    assert caplog.records[-1].getMessage() == ("step 3 final metrics (offline_classifier, 500 samples vs 128 real, "
                                               "2.3 s): FID 3.5")


@pytest.mark.slow  # the CLI end to end (the before/after times are in docs/benchmarks.md)
def test_a_smoke_run_evaluates_smoke_sized_and_says_so(tmp_path, data_root):
    """`ganrun trainer.steps=3` with metrics on at their defaults: before, 10,000 samples each for raw and EMA G (the
    final report alone took minutes on a CPU); now 500, against as many real images as the data has up to 500, and
    the log, metrics.jsonl and TensorBoard's protocol text say so."""
    import json

    run_dir = tmp_path / "run"
    proc = run_ganrun(["trainer.steps=3", "trainer.num_workers=0", "trainer.device=cpu", "metrics.download=false",
                       f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path, timeout=600)
    log = proc.stdout + proc.stderr
    assert ("Evaluation sizes: none during training, 500 for the final report, against up to 500 real images"
            in log), log
    summary = json.loads((run_dir / "metrics.json").read_text())
    for final in (summary["final"], summary["final_ema"]):
        assert (final["protocol"]["n_generated"], final["protocol"]["n_real"]) == (500, 128)  # tiny data: 128 images
        assert final["protocol"]["sample_counts"].startswith("500 generated vs 128 real")
    assert log.count("final metrics") == 2 and "(offline_classifier, 500 samples vs 128 real, " in log
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["generator"], r["protocol"]["n_generated"]) for r in lines] == [("raw", 500), ("ema", 500)]
    protocol = events(run_dir).Tensors("metrics_final/protocol_offline_classifier/text_summary")[0]
    assert "500 generated vs 128 real" in protocol.tensor_proto.string_val[0].decode()


def test_the_plan_line_names_the_evaluations_the_run_will_make():
    from types import SimpleNamespace

    from ganrun.metrics import sizing

    metrics = SimpleNamespace(every=1000, num_samples=10000, final_num_samples=50000, num_real=50000)
    assert sizing.describe(5000, metrics).startswith("Evaluation sizes: 10000 generated samples every 1000 steps, "
                                                     "50000 for the final report, against up to 50000 real images (")
    assert sizing.describe(3, metrics).startswith(  # no evaluation at step 1000 of a 3-step run
        "Evaluation sizes: none during training, 50000 for the final report, against")
