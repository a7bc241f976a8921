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
        if device.index is not None:  # cuda:1: what torch puts on "cuda" (its caches, libraries' tensors) goes there
            torch.cuda.set_device(device)
        log.info("Using %s (%s)", device, torch.cuda.get_device_name(device))
    else:
        log.info("Using %s%s", device, "" if torch.cuda.is_available() else " (no CUDA device found)")
    return device


CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def configure_determinism(device: torch.device, deterministic: bool) -> None:
    """torch.use_deterministic_algorithms; on CUDA also the cuBLAS workspace setting it requires (else the first
    matmul dies with cuBLAS's raw error), set here before cuBLAS starts unless the user set it."""
    if deterministic and device.type == "cuda" and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC_WORKSPACE
        log.info("trainer.deterministic=true: CUBLAS_WORKSPACE_CONFIG=%s", CUBLAS_DETERMINISTIC_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic


@contextlib.contextmanager
def warn_only_determinism():
    """Inside the block a deterministic run (trainer.deterministic) warns instead of failing on an op without a
    deterministic kernel: the fixed classifiers (offline metrics, downstream) use AdaptiveAvgPool2d, whose CUDA
    backward has none, and they are not part of the training numbers."""
    if not torch.are_deterministic_algorithms_enabled() or torch.is_deterministic_algorithms_warn_only_enabled():
        yield
        return
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True)


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype of trainer.amp: bfloat16 on a CUDA GPU that has it natively (Ampere and newer), None
    when off. Older GPUs are refused (float16 would need a GradScaler and scaled penalties); on other devices
    amp is off, and the log says so."""
    if not amp:
        return None
    if device.type != "cuda":
        log.info("trainer.amp=true has no effect on %s: training runs in float32.", device)
        return None
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ConfigError(f"trainer.amp=true trains in bfloat16, which {torch.cuda.get_device_name(device)} lacks "
                          "(it needs an Ampere or newer GPU): use trainer.amp=false.")
    return torch.bfloat16


def rng_state(device: torch.device) -> dict:
    """The CPU generator's state and the training device's (not every visible GPU's: a resume may see fewer)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    saved = state.get("cuda")
    if saved is None or device.type != "cuda":
        return
    if isinstance(saved, (list, tuple)):  # older checkpoints: one state per visible GPU
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= len(saved):
            log.warning("The checkpoint has no CUDA RNG state for %s; its random stream starts afresh.", device)
            return
        saved = saved[index]
    torch.cuda.set_rng_state(saved, device)


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
