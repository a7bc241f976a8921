"""Scores computed on feature vectors, independent of which network produced the features.

They run where the features are (the evaluation device), reading one number back per score at the end.
Statistics and KID's kernels are computed in float64 (FID subtracts large, nearly equal numbers), a chunk of rows
at a time, so 50k features of 2048 dimensions are never copied whole into float64.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def feature_statistics(features: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of (N, d) features, in float64, on their device: two passes over chunks
    of rows (the mean, then the centred products), the float64 copy never more than `chunk` rows."""
    n, d = features.shape
    mu = torch.zeros(d, dtype=torch.float64, device=features.device)
    for i in range(0, n, chunk):
        mu += features[i : i + chunk].double().sum(dim=0)
    mu /= n
    sigma = torch.zeros(d, d, dtype=torch.float64, device=features.device)
    for i in range(0, n, chunk):
        centred = features[i : i + chunk].double() - mu
        sigma.addmm_(centred.T, centred)
    return mu, sigma / (n - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017).

    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2, which are those of the
    symmetric S1^(1/2) S2 S1^(1/2): two symmetric eigendecompositions (eigh, fast on CPU and GPU) instead of a
    general one (eigvals: 116 s at 2048-d on 2 CPU cores, docs/benchmarks-gpu.md). Eigenvalues of covariances
    are non-negative up to round-off, hence the clamps.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    w, v = torch.linalg.eigh(sigma1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    sqrt_trace = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp(min=0).sqrt().sum()
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
    m = kid_subset_size(subset_size, len(real), len(fake))
    d = real.shape[1]
    rng = np.random.RandomState(seed)
    indices = [(rng.choice(len(real), m, replace=False), rng.choice(len(fake), m, replace=False))
               for _ in range(subsets)]
    values = torch.empty(subsets, dtype=torch.float64, device=real.device)
    for i, (real_index, fake_index) in enumerate(indices):
        x = real[torch.from_numpy(real_index).to(real.device)].double()  # float64 subsets only
        y = fake[torch.from_numpy(fake_index).to(fake.device)].double()
        k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off_diagonal = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values[i] = off_diagonal - 2 * k_xy.mean()
    values = values.cpu().numpy()  # the one read-back
    return float(np.mean(values)), float(np.std(values))


def _kth_neighbour_radii(points: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    radii = []
    for start in range(0, len(points), chunk):
        distances = torch.cdist(points[start : start + chunk], points)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # k+1: the point itself is at distance 0
    return torch.cat(radii)


def _fraction_inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                     chunk: int = 2048) -> torch.Tensor:
    inside = torch.zeros((), dtype=torch.long, device=queries.device)
    for start in range(0, len(queries), chunk):
        distances = torch.cdist(queries[start : start + chunk], centres)
        inside += (distances <= radii.unsqueeze(0)).any(dim=1).sum()
    return inside / len(queries)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance to the k-th nearest
    neighbour. Precision: share of fakes inside the real manifold; recall: share of reals inside the fake one.
    """
    real, fake = real.float(), fake.float()
    precision = _fraction_inside(fake, real, _kth_neighbour_radii(real, k))
    recall = _fraction_inside(real, fake, _kth_neighbour_radii(fake, k))
    precision, recall = torch.stack([precision, recall]).tolist()
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
        scores.append((part * (part.log() - marginal.log())).sum(dim=1).mean().exp())
    scores = torch.stack(scores).cpu().numpy()
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
