"""Hydra callbacks: checks that must run before Hydra itself writes anything into the output dir."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ganrun.sweep.job_names import CONSTANT_KEYS_ENV, constant_keys
from ganrun.sweep.summary import FAILED_FILE, write_summary

log = logging.getLogger("ganrun")


def _refuse_unwritable(folder: str, key: str) -> None:
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".ganrun-write-check-"):
            pass
    except OSError as exc:
        print(f"ganrun: error: the output dir {key}={path} cannot be written ({exc.strerror or exc}). "
              f"Choose another with {key}=PATH.", file=sys.stderr)
        raise SystemExit(1) from None


class OutputDirCheck(Callback):
    """Refuse an output dir that cannot be created or written, naming it, instead of Hydra's traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_unwritable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_unwritable(config.hydra.sweep.dir, "hydra.sweep.dir")


class SweepSummary(Callback):
    """When a sweep ends, write summary.csv and summary.md at its root and print the table."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        written = write_summary(sweep_dir)
        if written:
            csv_path, md_path, table = written
            print(f"\nSweep summary ({csv_path}, {md_path}):\n{table}")
        failed = sorted(p.parent.name for p in sweep_dir.glob(f"*/{FAILED_FILE}"))
        if failed:
            print(f"ganrun: error: {len(failed)} sweep job(s) failed: {', '.join(failed)} (the error is in each job's "
                  f"{FAILED_FILE} and ganrun.log).", file=sys.stderr)
            raise SystemExit(1)


class SweepJobNames(Callback):
    """Before any job is configured: tell the jobs which overrides are the same for all of them, so their dir
    names leave those out (ganrun.sweep.job_names)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        params = config.hydra.sweeper.get("params") or {}
        os.environ[CONSTANT_KEYS_ENV] = json.dumps(constant_keys(config.hydra.overrides.task, params))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        os.environ.pop(CONSTANT_KEYS_ENV, None)
