"""Evaluation costs (issue 20, item 7): the final report does not re-score the last periodic evaluation, and the
logged img/s counts training time only."""

from __future__ import annotations

import pytest
from helpers import events, train_in_process

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
