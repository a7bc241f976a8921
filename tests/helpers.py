"""What the tests share: tiny datasets written by the tests themselves (no network, no Debian package needed),
the CLI runner, the in-process trainer and TensorBoard's own event reader."""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

MNIST_FILES = {
    "train-images-idx3-ubyte": True,
    "train-labels-idx1-ubyte": False,
    "t10k-images-idx3-ubyte": True,
    "t10k-labels-idx1-ubyte": False,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX format: magic (0, 0, type 0x08 = uint8, ndim), big-endian int32 dims, then the raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist_like(folder: Path, n: int = 128, seed: int = 0, gz: bool = False) -> Path:
    """The four MNIST/Fashion-MNIST IDX files with `n` random 28x28 images and labels 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, is_images in MNIST_FILES.items():
        array = rng.integers(0, 256, (n, 28, 28)) if is_images else np.arange(n) % 10
        data = idx_bytes(array)
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(data)
        else:
            (folder / name).write_bytes(data)
    return folder


def write_png(path: Path, size=(40, 30), mode="RGB", seed=0) -> Path:
    """A random image of `size` (width, height) saved as PNG in `mode` (L, RGB, RGBA, P...)."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb.convert(mode).save(path)
    return path


# Small, fast settings for end-to-end runs on CPU.
TINY = [
    "model.generator.width=8",
    "model.discriminator.width=8",
    "trainer.batch_size=16",
    "trainer.num_samples=4",
    "trainer.num_workers=0",
    "metrics.every=0",
    "metrics.final_num_samples=0",
]


def cpu_env(**extra: str) -> dict:
    """This process's environment for a subprocess, with GPUs hidden: tests pin the CPU unless marked gpu."""
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", **extra}


def run_ganrun(args, data_root: Path, cwd: Path, check=True, timeout=300, extra_path=None):
    """Run the installed `ganrun` console script the way a user would; `extra_path` goes on PYTHONPATH."""
    env = cpu_env(GANRUN_DATA=str(data_root), HYDRA_FULL_ERROR="0", GANRUN_CACHE=str(Path(cwd) / "ganrun-cache"))
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    command = shutil.which("ganrun") or str(Path(sys.executable).with_name("ganrun"))
    proc = subprocess.run(
        [command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ganrun {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def compose_tiny(data_root: Path, *overrides: str, steps: int | None = 2):
    """(config, command line): the config the CLI composes from `overrides` on top of a tiny, quick experiment
    (TINY, steps, the CPU; MNIST-like data under `data_root` unless a toy or folder dataset is chosen)."""
    from hydra import compose, initialize_config_module

    import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)

    tiny = TINY
    if "model=mlp" in overrides:  # no conv widths; small hidden layers instead
        tiny = [o for o in TINY if ".width=" not in o] + ["model.generator.hidden=[32]", "model.discriminator.hidden=[32]"]
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        own_files = any(o.startswith("dataset=") and o not in ("dataset=mnist", "dataset=fashion_mnist")
                        for o in overrides)  # folder and toy datasets: no dataset.source.root
        source = [] if own_files else [f"dataset.source.root={data_root}",
                                                            "dataset.source.download=false"]
        given = [*tiny, *([f"trainer.steps={steps}"] if steps is not None else []), "trainer.log_every=1", *source,
                 "trainer.device=cpu", *overrides]  # the CPU unless a test says cuda; steps=None: the default
        return compose("config", overrides=given), given


def train_in_process(tmp_path: Path, data_root: Path, *overrides: str, steps: int | None = 2,
                     run_dir: Path | None = None):
    """Compose the config as the CLI does and run the loop in this process: fast checks that an option combination
    trains (the CLI itself is tested end to end in test_cli.py)."""
    from ganrun.train import train

    cfg, given = compose_tiny(data_root, *overrides, steps=steps)
    if run_dir is None:  # a fresh dir per run: ganrun refuses a new run in a dir that holds another run
        run_dir = next(tmp_path / name for name in ("run", *(f"run_{i}" for i in range(1, 100)))
                       if not (tmp_path / name).exists())
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return train(cfg, run_dir, given)  # the whole command line, as Hydra's task overrides give it


@functools.cache
def every_shipped_config() -> tuple:
    """(choice, composed config) for every option of every group ganrun ships, composed once per test session
    (several tests check them all: validation, the target allowlist)."""
    from hydra import compose, initialize_config_module

    import ganrun.conf
    import ganrun.resolvers  # noqa: F401

    conf = Path(ganrun.conf.__path__[0])
    choices = [f"{group}={option.stem}" for group in ("dataset", "model", "loss", "regularizer", "optimizer",
                                                      "scheduler", "augment", "task", "experiment")
               for option in sorted(conf.joinpath(group).glob("*.yaml"))]
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return tuple((choice, compose("config", overrides=[choice, *(["dataset.path=/x"] if choice ==
                                                                     "dataset=folder" else [])]))
                     for choice in choices)


def straight_and_split(tmp_path, data_root, *options, steps=6, split_at=3):
    """One run of `steps` steps, and one stopped at `split_at` then resumed to `steps`."""
    common = ["trainer.ckpt_every=3", "seed=3", *options]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_in_process(tmp_path, data_root, *common, steps=steps, run_dir=straight)
    train_in_process(tmp_path, data_root, *common, steps=split_at, run_dir=split)
    train_in_process(tmp_path, data_root, *common, f"resume={split}", steps=steps, run_dir=split)
    return straight, split


def events(run_dir: Path) -> EventAccumulator:
    """A run's TensorBoard events, read back with TensorBoard's own reader (nothing subsampled)."""
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(run_dir: Path, tag: str) -> dict:
    """{step: value} of one scalar tag, {} when the run never logged it."""
    accumulator = events(run_dir)
    if tag not in accumulator.Tags()["scalars"]:
        return {}
    return {e.step: e.value for e in accumulator.Scalars(tag)}
