"""Device choice, seeding and RNG state capture: what makes a run reproducible and resumable."""

from __future__ import annotations

import contextlib
import logging
import os
import signal

import torch

from ganrun.errors import ConfigError, TrainingInterrupted

log = logging.getLogger(__name__)


def select_device(requested: str, option: str = "trainer.device=") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; the choice is logged. `option` names the setting in errors
    (`--device ` for the companion commands)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:  # torch's list of every device type it knows, as a traceback
        raise ConfigError(f"{option}{requested} is not a device: auto | cpu | cuda | cuda:N | mps.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option}{requested} but no CUDA device is available; use {option}auto.")
        log.info("Using %s (%s)", device, torch.cuda.get_device_name(device))
    else:
        log.info("Using %s%s", device, "" if torch.cuda.is_available() else " (no CUDA device found)")
    return device


def configure_determinism(device: torch.device, deterministic: bool) -> None:
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def isolated_rng(device: torch.device):
    """Work that must not move the training RNG (evaluation, the offline classifier, DataLoader seeds) draws from
    a fork: the same seed trains the same whether metrics are on, or their caches warm or cold."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield


def share_cpu_threads(parallel_jobs: int) -> None:
    """Jobs run side by side on one machine (joblib launcher) split the cores instead of each taking all."""
    cores = os.cpu_count() or 1
    jobs = parallel_jobs if parallel_jobs > 0 else max(1, cores + 1 + parallel_jobs)  # joblib: -1 = all cores
    threads = max(1, cores // jobs)
    torch.set_num_threads(threads)
    log.info("Parallel jobs on one machine: %d job(s), %d torch thread(s) each", jobs, threads)


@contextlib.contextmanager
def interrupt_on_signals(message: str):
    """SIGINT/SIGTERM end the block at once with `TrainingInterrupted(message)`: for work after the last
    checkpoint (the final evaluation), where stopping loses nothing and waiting could take minutes."""
    def handler(signum, frame):
        raise TrainingInterrupted(signum, f"{signal.Signals(signum).name} received: {message}")

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not in the main thread
            pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set a flag the loop checks after each step; a second signal acts as usual."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        signal.signal(signum, previous[signum])

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not in the main thread (e.g. some launchers): no graceful stop
            pass
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
