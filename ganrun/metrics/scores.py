"""Scores computed on feature vectors, independent of which network produced the features.

All statistics are accumulated in float64: FID subtracts large, nearly equal numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of (N, d) features, in float64."""
    x = features.double()
    mu = x.mean(dim=0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017).

    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2, which are real and
    non-negative for covariance matrices (up to round-off, hence the clamp).
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    eigenvalues = torch.linalg.eigvals(sigma1 @ sigma2)
    sqrt_trace = eigenvalues.real.clamp(min=0).sqrt().sum()
    value = ((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * sqrt_trace).item()
    if value != value or value in (float("inf"), float("-inf")):
        warnings.warn("FID is not finite: the feature covariance is degenerate (too few samples or NaN features).")
    return value


def covariance_rank_warning(n_samples: int, dim: int, what: str) -> str | None:
    if n_samples <= dim:
        return (f"{what}: {n_samples} samples for {dim}-dimensional features give a rank-deficient covariance; "
                "FID is biased and not comparable. Use more samples than feature dimensions.")
    return None


def kid_subset_size(subset_size: int, n_real: int, n_fake: int) -> int:
    """The subset size KID actually uses: the requested one, or fewer when either side has fewer samples."""
    return min(subset_size, n_real, n_fake)


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, mean and
    (population, ddof=0) std over `subsets` random subsets. Subsets are drawn as torch-fidelity draws them
    (numpy RandomState(seed).choice without replacement, real then fake), so with its rng_seed the numbers match."""
    real, fake = real.double(), fake.double()
    m = kid_subset_size(subset_size, len(real), len(fake))
    d = real.shape[1]
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        x = real[torch.from_numpy(rng.choice(len(real), m, replace=False))]
        y = fake[torch.from_numpy(rng.choice(len(fake), m, replace=False))]
        k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off_diagonal = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values.append((off_diagonal - 2 * k_xy.mean()).item())
    return float(np.mean(values)), float(np.std(values))


def _kth_neighbour_radii(points: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    radii = []
    for start in range(0, len(points), chunk):
        distances = torch.cdist(points[start : start + chunk], points)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # k+1: the point itself is at distance 0
    return torch.cat(radii)


def _fraction_inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    inside = 0
    for start in range(0, len(queries), chunk):
        distances = torch.cdist(queries[start : start + chunk], centres)
        inside += (distances <= radii.unsqueeze(0)).any(dim=1).sum().item()
    return inside / len(queries)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance to the k-th nearest
    neighbour. Precision: share of fakes inside the real manifold; recall: share of reals inside the fake one.
    """
    real, fake = real.float(), fake.float()
    precision = _fraction_inside(fake, real, _kth_neighbour_radii(real, k))
    recall = _fraction_inside(real, fake, _kth_neighbour_radii(fake, k))
    return precision, recall


def inception_score(probabilities: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016) on `splits` consecutive, equal (to one sample) parts,
    mean and population (ddof=0) std over the parts: torch-fidelity's protocol (without its shuffle)."""
    p = probabilities.double().clamp(min=1e-12)
    n = len(p)
    if n < splits:
        raise ValueError(f"the Inception Score needs at least {splits} samples for {splits} splits, got {n}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(dim=0, keepdim=True)
        scores.append((part * (part.log() - marginal.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def class_coverage(predicted: torch.Tensor, real_histogram: torch.Tensor) -> tuple[int, float]:
    """Classes that received at least one generated sample, and KL(generated class histogram || real one).

    Both expose mode collapse: a collapsed G covers few classes and its histogram diverges from the data's.
    """
    counts = torch.bincount(predicted, minlength=len(real_histogram)).double()
    fake_hist = counts / counts.sum()
    real_hist = real_histogram.double() / real_histogram.sum()
    mask = fake_hist > 0
    kl = (fake_hist[mask] * (fake_hist[mask] / real_hist[mask].clamp(min=1e-12)).log()).sum().item()
    return int(mask.sum().item()), kl
