"""Metrics: scores against references and known point sets, the real-statistics cache, offline fallback."""

import json
import logging
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import TINY, events, run_ganrun
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.metrics import extractors, scores
from ganrun.metrics.evaluator import Evaluator


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_of_a_feature_set_with_itself_is_zero():
    x = torch.randn(500, 16, dtype=torch.float64)
    mu, sigma = scores.feature_statistics(x)
    assert abs(scores.frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fid_equals_the_scipy_reference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(800, 32))
    b = rng.normal(size=(700, 32)) @ rng.normal(size=(32, 32)) * 0.3 + 0.5
    ours = scores.frechet_distance(*scores.feature_statistics(torch.from_numpy(a)),
                                   *scores.feature_statistics(torch.from_numpy(b)))
    assert ours == pytest.approx(scipy_fid(a, b), rel=1e-4)


def test_rank_deficient_covariance_is_warned_about():
    assert "rank-deficient" in scores.covariance_rank_warning(100, 128, "generated samples")
    assert scores.covariance_rank_warning(1000, 128, "generated samples") is None


def test_precision_recall_on_known_point_sets():
    grid = torch.stack(torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij"), -1).view(-1, 2)
    assert scores.precision_recall(grid, grid.clone()) == (1.0, 1.0)
    assert scores.precision_recall(grid, grid + 100.0) == (0.0, 0.0)
    # G collapsed onto one corner of the data: every sample is realistic, most of the data is missed.
    corner = grid[(grid[:, 0] < 3) & (grid[:, 1] < 3)]
    precision, recall = scores.precision_recall(grid, corner)
    assert precision == 1.0 and recall < 0.3


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 8, generator=generator), torch.randn(1000, 8, generator=generator)
    same, _ = scores.kernel_inception_distance(a, b, subsets=20, subset_size=500)
    different, _ = scores.kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=500)
    assert abs(same) < 0.01 and different > 0.1


def test_inception_score_bounds():
    uniform = torch.full((100, 10), 0.1)
    assert scores.inception_score(uniform, splits=1)[0] == pytest.approx(1.0)
    confident_and_diverse = torch.eye(10).repeat(10, 1)
    assert scores.inception_score(confident_and_diverse, splits=1)[0] == pytest.approx(10.0, rel=1e-6)


def test_class_coverage_exposes_collapse():
    real = torch.full((10,), 100)
    assert scores.class_coverage(torch.arange(10).repeat(5), real) == (10, pytest.approx(0.0, abs=1e-12))
    covered, kl = scores.class_coverage(torch.zeros(50, dtype=torch.long), real)
    assert covered == 1 and kl == pytest.approx(np.log(10))


def metrics_config(cache_dir, *overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=[f"metrics.cache_dir={cache_dir}", "metrics.classifier_epochs=1",
                                            "metrics.num_real=100", "metrics.kid_subset_size=50",
                                            "metrics.kid_subsets=5", "metrics.download=false", *overrides])


def test_real_statistics_are_cached_across_evaluators(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("GANRUN_DATA", str(data_root))
    cfg = metrics_config(tmp_path / "cache")
    first = Evaluator(cfg.metrics, cfg.dataset, "cpu")
    assert (first.stats_computed, first.cache_hits) == (1, 0)
    second = Evaluator(cfg.metrics, cfg.dataset, "cpu")
    assert (second.stats_computed, second.cache_hits) == (0, 1)
    assert torch.equal(first.real["mu"], second.real["mu"])
    # A different real split is a different key.
    test_split = Evaluator(metrics_config(tmp_path / "cache", "metrics.real_split=test").metrics, cfg.dataset, "cpu")
    assert test_split.stats_computed == 1

    result = second.evaluate(lambda n: torch.rand(n, 1, 28, 28) * 2 - 1, 120)
    assert result["extractor"] == "offline_classifier"
    assert set(result["metrics"]) >= {"FID", "KID", "IS", "precision", "recall", "classes_covered", "class_KL"}
    assert result["protocol"]["n_generated"] == 120 and result["protocol"]["n_real"] == 100
    assert "NOT Inception" in result["protocol"]["extractor"]


def test_without_inception_weights_it_falls_back_and_says_how_to_supply_them(tmp_path, data_root, monkeypatch,
                                                                               caplog):
    monkeypatch.setenv("GANRUN_DATA", str(data_root))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    attempts = []

    def no_network(url, destination, timeout=15.0):
        attempts.append(url)
        raise urllib.error.URLError("Name or service not known (simulated)")

    monkeypatch.setattr(extractors, "download", no_network)
    cfg = metrics_config(tmp_path / "cache", "metrics.extractor=inception", "metrics.download=true")
    with caplog.at_level(logging.WARNING):
        evaluator = Evaluator(cfg.metrics, cfg.dataset, "cpu")
    assert attempts == [extractors.INCEPTION_URL]
    assert evaluator.extractor.name == "offline_classifier"
    warnings = [r.getMessage() for r in caplog.records if "Standard Inception FID is unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert "simulated" in warnings[0] and "metrics.inception_weights=" in warnings[0]
    assert str(tmp_path / "hub" / "checkpoints" / extractors.INCEPTION_FILE) in warnings[0]


def test_a_missing_configured_weights_file_is_named(tmp_path):
    path, why = extractors.find_inception_weights(str(tmp_path / "nope.pth"), allow_download=True)
    assert path is None and "nope.pth does not exist" in why


def test_evaluation_log_lines_name_their_section_once(tmp_path, caplog):
    from torch.utils.tensorboard import SummaryWriter

    from ganrun.metrics import report

    result = {"extractor": "offline_classifier", "metrics": {"FID": 3.5, "KID": 0.01},
              "protocol": {"n_generated": 100}}
    with SummaryWriter(str(tmp_path)) as writer, caplog.at_level(logging.INFO, logger="ganrun.metrics.report"):
        report.log_result(writer, tmp_path, result, 10)
        report.log_result(writer, tmp_path, result, 20, suffix="_ema", section="metrics_final")
    during, final = [r.getMessage() for r in caplog.records]
    assert during.startswith("step 10 metrics (offline_classifier, 100 samples): FID 3.5")
    assert final.startswith("step 20 final metrics of EMA G (offline_classifier, 100 samples)")
    for message in (during, final):
        words = message.split()
        assert all(a != b for a, b in zip(words, words[1:])), message  # no "metrics metrics"
    assert {"metrics/FID_offline_classifier", "metrics_final/FID_offline_classifier_ema"} <= set(
        events(tmp_path).Tags()["scalars"])  # the tags keep their sections


@pytest.mark.slow
def test_training_reports_metrics_keeps_the_best_checkpoint_and_writes_json(tmp_path, data_root):
    run_dir = tmp_path / "run"
    args = [a for a in TINY if not a.startswith("metrics.")]
    run_ganrun([*args, "trainer.steps=4", "trainer.log_every=2", "metrics.every=2", "metrics.num_samples=64",
                "metrics.final_num_samples=100", "metrics.num_real=100", "metrics.classifier_epochs=1",
                "metrics.kid_subset_size=50", "metrics.kid_subsets=5", "metrics.download=false",
                f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    acc = events(run_dir)
    fids = [e.step for e in acc.Scalars("metrics/FID_offline_classifier")]
    assert fids == [2, 4]  # two evaluations during training; the final report (another sample count) apart
    assert [e.step for e in acc.Scalars("metrics_final/FID_offline_classifier")] == [4]
    assert "metrics/precision_offline_classifier" in acc.Tags()["scalars"]
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["final"]["protocol"]["n_generated"] == 100 and report["best"]["step"] in (2, 4)
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"]["FID"] == report["best"]["FID"] and best["step"] == report["best"]["step"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # raw G and (on by default) the EMA G, each at steps 2, 4 and the final report
    assert [(line["step"], line["generator"]) for line in lines] == [(s, g) for s in (2, 4, 4) for g in ("raw", "ema")]


@pytest.mark.slow
def test_eval_and_sample_tools_on_a_saved_checkpoint(tmp_path, data_root):
    import os
    import shutil
    import subprocess

    from ganrun.data import sources

    run_dir = tmp_path / "run"
    run_ganrun([*TINY, "trainer.steps=2", f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    env = {**os.environ, "GANRUN_DATA": str(data_root)}

    def tool(*args):
        return subprocess.run([shutil.which(args[0]), *args[1:]], cwd=tmp_path, env=env, capture_output=True,
                              text=True, check=True)

    evaluated = tool("ganrun-eval", str(run_dir), "--num-samples", "120", "--no-download", "--cache-dir",
                     str(tmp_path / "cache"))
    result = json.loads((run_dir / "eval_step_00000002.json").read_text())
    assert result["step"] == 2 and result["protocol"]["n_generated"] == 120
    assert result["metrics"]["FID"] > 0 and json.loads(evaluated.stdout)["metrics"] == result["metrics"]

    out = tmp_path / "samples"
    tool("ganrun-sample", str(run_dir), "--num", "10", "--format", "both", "--interpolate", "3", "--steps", "5",
         "--out", str(out))
    assert len(list(out.glob("*.png"))) == 10 + 1
    assert np.load(out / "samples.npz")["arr_0"].shape == (10, 32, 32, 1)  # the default: padded to 32 px
    (out / "interpolation.png").rename(tmp_path / "interpolation.png")
    assert len(sources.image_folder(str(out))) == 10  # usable as extra training data: dataset=folder


def test_inception_extractor_on_a_weights_file_of_the_real_architecture(tmp_path, monkeypatch):
    """The real Inception path, with random weights saved in torch-fidelity's format (the real file cannot be
    downloaded here): shapes, probabilities, protocol hash, grayscale input, and the clamp before uint8."""
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity
    from torchmetrics.image.fid import NoTrainInceptionV3

    with monkeypatch.context() as patch:  # build the architecture without loading any weights
        patch.setattr(torch, "load", lambda *args, **kwargs: {})
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        net = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    weights = tmp_path / extractors.INCEPTION_FILE
    torch.save(net.state_dict(), weights)
    monkeypatch.setattr(extractors, "INCEPTION_SHA256", extractors.file_sha256(weights))  # stands in for the real file

    extractor = extractors.InceptionExtractor(weights, "cpu")
    assert extractor.protocol["weights_sha256"] == extractors.file_sha256(weights)
    assert "TF1-compatible" in extractor.protocol["resize"]
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features, probabilities = extractor(images)
    assert features.shape == (3, 2048) and probabilities.shape == (3, 1008)
    assert torch.allclose(probabilities.sum(1), torch.ones(3, dtype=torch.float64))
    # Values just outside [-1, 1] (tanh round-off, augmentation) must not wrap around in the uint8 conversion.
    overshoot = images.clone()
    overshoot[:, :, :4] = 1.02
    clamped = overshoot.clamp(-1, 1)
    assert torch.equal(extractor(overshoot)[0], extractor(clamped)[0])


def test_statistics_cast_at_most_a_chunk_of_rows_to_float64(monkeypatch):
    """Memory stays bounded for 50k x 2048 features: never the whole set copied into float64 at once."""
    rows = []
    double = torch.Tensor.double
    monkeypatch.setattr(torch.Tensor, "double", lambda t: rows.append(len(t)) or double(t))
    x = torch.randn(1000, 8)
    mu, sigma = scores.feature_statistics(x, chunk=128)
    monkeypatch.undo()
    assert max(rows) <= 128
    assert torch.allclose(sigma, torch.from_numpy(np.cov(x.double().numpy(), rowvar=False)), rtol=1e-10)


def test_extractor_features_stay_float32_where_they_were_computed():
    from ganrun.metrics.classifier import SmallClassifier

    extractor = extractors.ClassifierExtractor(SmallClassifier(1, 10), {}, "cpu")
    features, probabilities = extractor(torch.rand(4, 1, 28, 28) * 2 - 1)
    assert features.dtype == torch.float32 and probabilities.dtype == torch.float64  # no float64 copy of features
    assert features.device == probabilities.device == torch.device("cpu")  # the extractor's device
