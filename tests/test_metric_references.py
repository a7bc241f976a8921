"""Metrics against independent references on the same features: torch-fidelity's own functions (IS, KID,
precision/recall) to 1e-6 relative, the protocol strings against what was computed, and the real-statistics
cache key against every input that changes the cached content."""

import inspect
import math
import warnings

import pytest
import torch
from omegaconf import OmegaConf
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from ganrun.metrics import scores
from ganrun.metrics.evaluator import Evaluator, real_statistics_key

REL = 1e-6


def features(n, d=16, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_inception_score_matches_torch_fidelity_with_uneven_splits():
    logits = features(1003, 10, seed=1) * 2.0  # 1003 samples: the 10 splits differ in size by one
    reference = isc_features_to_metric(logits, splits=10, shuffle=False)
    mean, std = scores.inception_score(logits.softmax(dim=1))
    assert mean == pytest.approx(reference["inception_score_mean"], rel=REL)
    assert std == pytest.approx(reference["inception_score_std"], rel=REL)  # population std (ddof=0)
    assert std > 0


@pytest.mark.parametrize("subsets,subset_size", [(7, 40), (3, 120)])
def test_kid_matches_torch_fidelity(subsets, subset_size):
    real, fake = features(150, seed=2), features(130, shift=0.3, seed=3)
    reference = kid_features_to_metric(real, fake, kid_subsets=subsets, kid_subset_size=subset_size, rng_seed=5,
                                       verbose=False)
    mean, std = scores.kernel_inception_distance(real, fake, subsets, subset_size, seed=5)
    assert mean == pytest.approx(reference["kernel_inception_distance_mean"], rel=REL)
    assert std == pytest.approx(reference["kernel_inception_distance_std"], rel=REL)


def test_kid_of_a_brute_force_unbiased_mmd_on_one_subset():
    """One subset of all samples: KID is the unbiased MMD^2 of the whole sets, written out term by term."""
    x, y = features(20, d=3, seed=4), features(20, d=3, shift=0.5, seed=6)
    k = lambda a, b: (sum(ai * bi for ai, bi in zip(a.tolist(), b.tolist())) / 3 + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert scores.kernel_inception_distance(x, y, subsets=1, subset_size=m)[0] == pytest.approx(xx + yy - 2 * xy,
                                                                                                rel=REL)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_match_torch_fidelity(k):
    real, fake = features(300, d=4, seed=7), features(300, d=4, shift=1.0, seed=8) * 1.3
    reference = prc_features_to_metric(fake.float(), real.float(), prc_neighborhood=k, prc_batch_size=10000,
                                       save_cpu_ram=False, verbose=False)
    precision, recall = scores.precision_recall(real, fake, k=k)
    assert precision == pytest.approx(reference["precision"], rel=REL)
    assert recall == pytest.approx(reference["recall"], rel=REL)
    for other in (k - 1, k + 1):  # informative sets: an off-by-one k gives other values
        if other >= 1:
            assert scores.precision_recall(real, fake, k=other) != (precision, recall)


class FakeExtractor:
    """Features: the flattened image; probabilities: a softmax of its first 4 values."""

    name, protocol = "stub", {"extractor": "stub"}

    def __call__(self, images):
        f = images.flatten(1).double()
        return f, f[:, :4].softmax(dim=1)


def stub_evaluator(n_real, **metrics):
    evaluator = Evaluator.__new__(Evaluator)
    evaluator.cfg = OmegaConf.create({"batch_size": 50, "kid_subsets": 3, "kid_subset_size": 1000, "pr_k": 3,
                                      "pr_samples": 10000, "real_split": "train", **metrics})
    evaluator.dataset_cfg = OmegaConf.create({"name": "stub", "resolution": 2})
    evaluator.extractor = FakeExtractor()
    real = features(n_real, d=8, seed=9)
    mu, sigma = scores.feature_statistics(real)
    evaluator.real = {"mu": mu, "sigma": sigma, "n": n_real, "features": real}
    return evaluator


def test_protocol_strings_report_what_was_computed():
    evaluator = stub_evaluator(300)
    result = evaluator.evaluate(lambda n: torch.randn(n, 2, 2, 2), 120)  # fewer fakes than kid_subset_size
    protocol = result["protocol"]
    assert protocol["KID"].startswith("3 subsets of 120,")
    assert protocol["precision_recall"].startswith("k=3, 120 real vs 120 generated")
    assert "VGG-16" in protocol["precision_recall"] and "stub features" in protocol["precision_recall"]
    assert protocol["n_generated"] == 120 and protocol["n_real"] == 300


def test_cache_key_changes_with_everything_that_changes_the_cached_content(monkeypatch):
    metrics = OmegaConf.create({"real_split": "train", "num_real_kept": 10000, "batch_size": 250})
    dataset = OmegaConf.create({"resolution": 28, "channels": 1})
    base = dict(metrics_cfg=metrics, dataset_cfg=dataset, data_hash="abc", extractor_protocol={"e": "inception"},
                n_real=50000)
    key = real_statistics_key(**base)
    assert real_statistics_key(**base) == key  # deterministic
    variants = [
        {"n_real": 40000},
        {"data_hash": "abd"},
        {"extractor_protocol": {"e": "classifier"}},
        {"metrics_cfg": OmegaConf.merge(metrics, {"num_real_kept": 20000})},
        {"metrics_cfg": OmegaConf.merge(metrics, {"batch_size": 100})},
        {"metrics_cfg": OmegaConf.merge(metrics, {"real_split": "test"})},
        {"dataset_cfg": OmegaConf.merge(dataset, {"resolution": 32})},
        {"dataset_cfg": OmegaConf.merge(dataset, {"channels": 3})},
    ]
    keys = {real_statistics_key(**{**base, **variant}) for variant in variants}
    assert key not in keys and len(keys) == len(variants)
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert real_statistics_key(**base) != key
    monkeypatch.undo()
    import torchmetrics

    monkeypatch.setattr(torchmetrics, "__version__", "0.0.1")
    assert real_statistics_key(**base) != key


def test_fid_and_chunked_statistics_match_torch_fidelity():
    """Statistics accumulated over chunks of rows (bounded float64 memory) and FID through two symmetric
    eigendecompositions: the same numbers as torch-fidelity's statistics and its eigvals-based FID."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    real, fake = features(700, d=24, seed=9), features(650, d=24, shift=0.4, seed=10) * 0.7
    ours = [scores.feature_statistics(x, chunk=128) for x in (real, fake)]
    reference = [fid_features_to_statistics(x) for x in (real, fake)]
    for (mu, sigma), ref in zip(ours, reference):
        assert torch.allclose(mu, torch.from_numpy(ref["mu"]), rtol=REL, atol=1e-12)
        assert torch.allclose(sigma, torch.from_numpy(ref["sigma"]), rtol=REL, atol=1e-12)
    fid = scores.frechet_distance(*ours[0], *ours[1])
    assert fid == pytest.approx(fid_statistics_to_metric(*reference, verbose=False)["frechet_inception_distance"],
                                rel=REL)


def test_fid_warns_when_and_only_when_it_is_not_finite():
    g = torch.Generator().manual_seed(0)
    mu, sigma = scores.feature_statistics(torch.randn(64, 4, generator=g))
    other_mu, other_sigma = scores.feature_statistics(torch.randn(64, 4, generator=g) + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finite FID says nothing
        assert scores.frechet_distance(mu, sigma, other_mu, other_sigma) > 0
    for bad in (float("nan"), float("inf")):
        with pytest.warns(UserWarning, match="FID is not finite"):
            scores.frechet_distance(mu, sigma, other_mu + bad, other_sigma)


# ---- the definitions' defaults, boundaries and roles (generated mutants, docs/mutation.md)
def test_default_protocols_are_the_references_defaults():
    """The defaults are torch-fidelity's (and the shipped config's): KID over 100 subsets of 1000 (Binkowski et al.
    2018), IS over 10 splits (Salimans et al. 2016), precision/recall with k=3 (Kynkaanniemi et al. 2019). KID's
    subsets are drawn with seed 0 (the evaluator passes none): torch-fidelity's numbers at its rng_seed=0."""
    from pathlib import Path

    from torch_fidelity.defaults import DEFAULTS

    shipped = OmegaConf.load(Path(__file__).parents[1] / "conf" / "config.yaml").metrics
    kid_defaults = inspect.signature(scores.kernel_inception_distance).parameters
    assert (kid_defaults["subsets"].default, kid_defaults["subset_size"].default) == \
        (DEFAULTS["kid_subsets"], DEFAULTS["kid_subset_size"]) == (shipped.kid_subsets, shipped.kid_subset_size)
    real, fake = features(90, d=4, seed=11), features(80, d=4, shift=0.2, seed=12) * 1.2
    reference = kid_features_to_metric(real, fake, kid_subsets=4, kid_subset_size=50, rng_seed=0, verbose=False)
    assert scores.kernel_inception_distance(real, fake, 4, 50) == pytest.approx(
        (reference["kernel_inception_distance_mean"], reference["kernel_inception_distance_std"]), rel=REL)
    logits = features(1003, 10, seed=13) * 2.0
    reference = isc_features_to_metric(logits, shuffle=False)  # its default splits
    assert scores.inception_score(logits.softmax(dim=1)) == pytest.approx(
        (reference["inception_score_mean"], reference["inception_score_std"]), rel=REL)
    assert DEFAULTS["prc_neighborhood"] == shipped.pr_k
    reference = prc_features_to_metric(fake.float(), real.float(), save_cpu_ram=False, verbose=False)  # its k
    assert scores.precision_recall(real, fake) == pytest.approx((reference["precision"], reference["recall"]),
                                                                rel=REL)
    assert scores.precision_recall(real, fake) != scores.precision_recall(real, fake, k=4)  # k acts here


def test_a_point_on_a_balls_boundary_is_inside_the_manifold():
    """Kynkaanniemi et al. 2019, eq. 1: f(phi, Phi) = 1 when ||phi - phi'|| <= ||phi' - NN_k(phi')|| for some phi'
    (a closed ball). Integer coordinates: the distances are exact, the tie is a tie on every machine."""
    real = torch.tensor([[0.0], [1.0], [10.0], [12.0]])  # k=1 radii: 1, 1, 2, 2
    fake = torch.tensor([[2.0], [14.0], [20.0], [21.0]])  # 2: on 1's ball; 14: on 12's ball; 20, 21: outside
    precision, recall = scores.precision_recall(real, fake, k=1)
    assert precision == 0.5  # the two boundary points
    # recall: fake radii (k=1) 12, 6, 1, 1; reals 0, 1 within 12 of fake 2; 10 within 6 of 14 (and of 2); 12 too
    assert recall == 1.0
    assert scores.precision_recall(real, fake[2:], k=1) == (0.0, 0.0)  # roles: reals far from the fakes' balls


def test_rank_warning_fires_exactly_when_the_covariance_is_rank_deficient():
    """n samples give a covariance of rank at most n - 1 (centring removes one): deficient for n <= d."""
    d = 6
    for n in (d - 1, d, d + 1, d + 2):
        x = features(n, d=d, seed=n)
        deficient = torch.linalg.matrix_rank(scores.feature_statistics(x)[1]).item() < d
        assert deficient == (n <= d)
        assert (scores.covariance_rank_warning(n, d, "generated samples") is not None) == deficient


def test_inception_score_with_one_sample_per_split():
    """As many samples as splits: each split's marginal is its one sample, KL 0, IS 1 in every split."""
    p = features(5, 4, seed=14).softmax(dim=1)
    assert scores.inception_score(p, splits=5) == pytest.approx((1.0, 0.0), abs=1e-12)
    with pytest.raises(ValueError, match="at least 6 samples for 6 splits, got 5"):
        scores.inception_score(p, splits=6)


def test_class_coverage_counts_covered_classes_and_is_kl_of_generated_to_real():
    """KL(generated class histogram || real one): sum over generated classes of q log(q / p), not the reverse."""
    predicted = torch.tensor([0, 0, 1, 3, 3, 3, 3, 0])  # classes 2 and 4 never generated
    real = torch.tensor([10, 20, 30, 25, 15])
    q = {0: 3 / 8, 1: 1 / 8, 3: 4 / 8}
    p = {c: n / 100 for c, n in enumerate(real.tolist())}
    covered, kl = scores.class_coverage(predicted, real)
    assert covered == 3
    assert kl == pytest.approx(sum(qc * math.log(qc / p[c]) for c, qc in q.items()), rel=1e-12)
    assert scores.class_coverage(torch.arange(5).repeat_interleave(real), real) == pytest.approx((5, 0.0), abs=1e-12)


def test_precision_recall_over_more_samples_than_one_chunk_match_torch_fidelity():
    """2100 samples a side: distances go in chunks of 2048 query rows; every chunk counts."""
    real, fake = features(2100, d=2, seed=15), features(2100, d=2, shift=0.5, seed=16) * 1.5
    reference = prc_features_to_metric(fake.float(), real.float(), prc_neighborhood=3, prc_batch_size=10000,
                                       save_cpu_ram=False, verbose=False)
    assert scores.precision_recall(real, fake, k=3) == pytest.approx((reference["precision"], reference["recall"]),
                                                                       rel=REL)
