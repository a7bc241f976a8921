"""Per-step scalars summed on the device between log steps, so training never waits for a GPU sync, and the
training time of the window's steps for its img/s."""

from __future__ import annotations

import contextlib
import time

import torch

from ganrun import distributed


class LogWindow:
    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.restart_clock()

    def restart_clock(self) -> None:
        """Time from now on: set-up, or the steps a resumed window holds from before, are not in `elapsed`."""
        self.timed_steps, self.seconds, self.start = 0, 0.0, time.perf_counter()

    @contextlib.contextmanager
    def clock_paused(self):
        """Work inside the block (samples, evaluations) is not training time."""
        self.seconds += time.perf_counter() - self.start
        try:
            yield
        finally:
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
        """Seconds of training in the `timed_steps` since the clock started."""
        return self.seconds + time.perf_counter() - self.start
