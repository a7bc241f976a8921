"""Counting the calls that make the host wait for the device, so a CPU test can show a step makes none.

`torch.cuda.set_sync_debug_mode` reports synchronisations, but only on a GPU. On any device, these Python-level
calls are what synchronises on CUDA: reading a value (`item`, `bool`/`if`, `int`, `float`, `tolist`, `numpy`),
copying to the host (`cpu`), a blocking `to(device)` (a host-to-device copy from pageable memory), and ops whose
output size depends on the data (`nonzero`, `masked_select`). `HostSyncCounter` wraps them on `torch.Tensor`
for the duration of a `with` block and records where each call came from. One call of torch's own is left out:
its optimizers read their step counters with `item()` (torch.optim.optimizer._get_value), and those counters stay
on the CPU when training on CUDA (unless capturable/fused), so that never syncs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass

import torch

SYNCING_METHODS = ("item", "__bool__", "__int__", "__float__", "__index__", "tolist", "numpy", "cpu", "nonzero",
                   "masked_select")
SYNCING_FUNCTIONS = ("nonzero", "masked_select")  # torch.nonzero(x) and the like
_CPU_STEP_COUNTER_READ = (os.path.join(os.path.dirname(torch.__file__), "optim", "optimizer.py"), "_get_value")


@dataclass
class HostSync:
    call: str  # e.g. "item", "to(device)"
    where: str  # file:line of the caller
    label: object  # the counter's label when it happened (e.g. the step)


class HostSyncCounter:
    """`with HostSyncCounter() as syncs:` ... `syncs.calls` lists every syncing call made in the block, tagged
    with `syncs.label` (set it to tell steps apart)."""

    def __init__(self):
        self.calls: list[HostSync] = []
        self.label = None
        self._saved: dict[str, object] = {}
        self._saved_functions: dict[str, object] = {}

    def _record(self, call: str) -> None:
        frame = sys._getframe(2)  # the wrapper's caller
        if (frame.f_code.co_filename, frame.f_code.co_name) == _CPU_STEP_COUNTER_READ:
            return
        self.calls.append(HostSync(call, f"{frame.f_code.co_filename}:{frame.f_lineno}", self.label))

    def _wrap(self, name: str, original):
        def wrapper(tensor, *args, **kwargs):
            self._record(name)
            return original(tensor, *args, **kwargs)
        return wrapper

    def _wrap_to(self, original):
        def to(tensor, *args, **kwargs):
            moves = any(isinstance(a, (torch.device, str)) for a in args) or "device" in kwargs
            if moves and not kwargs.get("non_blocking", False):
                self._record("to(device)")
            return original(tensor, *args, **kwargs)
        return to

    def __enter__(self) -> HostSyncCounter:
        for name in (*SYNCING_METHODS, "to"):
            self._saved[name] = torch.Tensor.__dict__.get(name)  # None: inherited from torch._C.TensorBase
            original = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._wrap_to(original) if name == "to" else self._wrap(name, original))
        for name in SYNCING_FUNCTIONS:
            self._saved_functions[name] = getattr(torch, name)
            setattr(torch, name, self._wrap(name, self._saved_functions[name]))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._saved.items():
            if original is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, original)
        for name, original in self._saved_functions.items():
            setattr(torch, name, original)
        self._saved.clear()
        self._saved_functions.clear()

    def at(self, label) -> list[HostSync]:
        return [c for c in self.calls if c.label == label]


@contextlib.contextmanager
def per_training_step():
    """Count the syncing calls of every `ganrun.train.train` run inside the block, by generator step: label k
    covers step k's D and G steps and EMA update, and the report and stop check of step k - 1. On CUDA, the
    syncs torch itself reports (`torch.cuda.set_sync_debug_mode`) are counted too, as "cuda sync"."""
    import ganrun.train
    from ganrun.run_state import RunState

    counter = HostSyncCounter()
    advance, train_steps = RunState.advance, ganrun.train.train_steps

    def counted_advance(state):
        advance(state)
        counter.label = state.step + 1

    def counted_train_steps(state, *args):
        counter.label = state.step + 1
        with counter, _cuda_sync_reports(counter):
            train_steps(state, *args)

    RunState.advance, ganrun.train.train_steps = counted_advance, counted_train_steps
    try:
        yield counter
    finally:
        RunState.advance, ganrun.train.train_steps = advance, train_steps


@contextlib.contextmanager
def _cuda_sync_reports(counter: HostSyncCounter):
    if not torch.cuda.is_available():
        yield
        return
    mode = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        show = warnings.showwarning

        def record(message, category, filename, lineno, file=None, line=None):
            if "synchronizing CUDA operation" in str(message):
                counter.calls.append(HostSync("cuda sync", f"{filename}:{lineno}", counter.label))
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(mode)
            warnings.showwarning = show
