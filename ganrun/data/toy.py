"""Toy 2-D datasets: mixtures of isotropic Gaussians, their sample stream, scatter plots and mode metrics.

`ring8`: 8 modes evenly spaced on a circle of radius 2, std 0.02 (Metz et al. 2017, "Unrolled GANs";
Srivastava et al. 2017, VEEGAN). Angles are 2*pi*k/8 for k = 0..7: a widely copied sampler uses
linspace(0, 2*pi, 8), whose first and last angles coincide, and so has only 7 distinct modes.
`grid25`: 25 modes at (-4 + 2i, -4 + 2j), i, j = 0..4, std 0.05 (Lin et al. 2018, PacGAN).

Metrics (VEEGAN / PacGAN protocol): a sample is high quality when it lies within 3 standard deviations of its
nearest mode; a mode is covered when at least `min_per_mode` high-quality samples land on it.
"""

from __future__ import annotations

import math

import torch


def ring_modes(n: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1).float()


def grid_modes(per_side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    coords = (torch.arange(per_side, dtype=torch.float32) - (per_side - 1) / 2) * spacing
    return torch.cartesian_prod(coords, coords)


class GaussianMixture:
    """An endless source of points; labels are the index of the mode each point was drawn from."""

    def __init__(self, layout: str = "ring", num_modes: int = 8, scale: float = 2.0, std: float = 0.02,
                 num_eval_samples: int = 2500, min_per_mode: int = 1):
        if layout == "ring":
            self.modes = ring_modes(num_modes, scale)
        else:
            per_side = math.isqrt(num_modes)
            self.modes = grid_modes(per_side, scale)
        self.std, self.num_eval_samples, self.min_per_mode = float(std), int(num_eval_samples), int(min_per_mode)
        self.classes = None  # unlabelled for conditioning purposes

    def __len__(self) -> int:
        return len(self.modes)

    def sample(self, n: int, device=None, generator: torch.Generator | None = None):
        index = torch.randint(len(self.modes), (n,), generator=generator, device=generator.device if generator else None)
        noise = torch.randn(n, 2, generator=generator, device=generator.device if generator else None)
        points = self.modes.to(noise.device)[index] + self.std * noise
        return points.to(device), index.to(device)

    def stream(self, batch_size: int, device) -> ToyStream:
        return ToyStream(self, batch_size, device)

    def score(self, points: torch.Tensor) -> dict:
        """Modes covered and the fraction of high-quality samples (within 3 std of the nearest mode)."""
        points = points.detach().float().cpu().view(-1, 2)
        distance, nearest = torch.cdist(points, self.modes).min(dim=1)
        good = distance <= 3 * self.std
        counts = torch.bincount(nearest[good], minlength=len(self.modes))
        return {"modes_covered": int((counts >= self.min_per_mode).sum()),
                "high_quality_percent": 100.0 * good.float().mean().item(), "num_modes": len(self.modes)}

    def evaluate(self, generate, num_samples: int) -> dict:
        """The evaluator interface of ganrun.metrics: scores of `num_samples` points from `generate(batch)`."""
        n = num_samples or self.num_eval_samples
        points = torch.cat([generate(min(1000, n - i)).cpu() for i in range(0, n, 1000)])
        protocol = {"n_generated": n, "std": self.std, "high_quality_within_std": 3,
                    "covered_when_high_quality_samples_at_least": self.min_per_mode}
        return {"extractor": "toy", "metrics": self.score(points), "protocol": protocol}

    def scatter(self, points: torch.Tensor):
        """A matplotlib figure of the samples over the modes (3-std circles), for SummaryWriter.add_figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        points = points.detach().float().cpu().view(-1, 2)
        figure, axes = plt.subplots(figsize=(4, 4), dpi=80)
        axes.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, color="tab:blue")
        for x, y in self.modes.tolist():
            axes.add_patch(plt.Circle((x, y), 3 * self.std, fill=False, color="tab:red", lw=1))
        limit = float(self.modes.abs().max()) * 1.5
        axes.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal")
        scores = self.score(points)
        axes.set_title(f"{scores['modes_covered']}/{len(self.modes)} modes, "
                       f"{scores['high_quality_percent']:.0f}% high quality", fontsize=9)
        figure.tight_layout()
        return figure


class ToyStream:
    """Fresh batches from the mixture on every call, drawn from the global RNG (saved in checkpoints), so a
    resumed run continues exactly without any stream position of its own."""

    def __init__(self, mixture: GaussianMixture, batch_size: int, device):
        self.mixture, self.batch_size, self.device = mixture, batch_size, torch.device(device)

    def __iter__(self):
        return self

    def __next__(self):
        return self.mixture.sample(self.batch_size, self.device)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
