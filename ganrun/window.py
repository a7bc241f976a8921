"""Per-step scalars summed on the device between log steps, so training never waits for a GPU sync."""

from __future__ import annotations

import time

import torch

from ganrun import distributed


class LogWindow:
    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self.sums[name] = self.sums[name] + value if name in self.sums else value

    def means(self) -> dict[str, float]:
        """Mean per step over the window (and over ranks under torchrun); one sync per value."""
        return {name: (total / self.steps).item() for name, total in distributed.mean_over_ranks(self.sums).items()}

    def state_dict(self) -> dict:
        """The open window's sums: a run resumed between two log steps logs the same means as an uninterrupted one."""
        return {"sums": {name: total.cpu() for name, total in self.sums.items()}, "steps": self.steps}

    def load_state_dict(self, state: dict, device) -> None:
        self.reset()
        self.sums = {name: total.to(device) for name, total in state["sums"].items()}
        self.steps = int(state["steps"])

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
