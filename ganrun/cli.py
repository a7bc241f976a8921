"""`ganrun` console script: Hydra composes the config, `ganrun.train.train` runs it.

Resuming: `ganrun resume=RUN_DIR` continues the saved experiment, so the overrides it was started with are
read back from the checkpoint and placed before the ones given now (later ones win).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import ganrun.schema  # noqa: F401  (registers the typed config schema with Hydra's ConfigStore)
from ganrun.checkpoint import job_dir_name, load_for_resume, run_dir_for_resume
from ganrun.errors import ConfigError, TrainingDivergedError, TrainingInterrupted
from ganrun.runtime import share_cpu_threads

log = logging.getLogger("ganrun")

OmegaConf.register_new_resolver("ganrun_run_dir", run_dir_for_resume, replace=True)
OmegaConf.register_new_resolver("ganrun_job_dir", job_dir_name, replace=True)


@hydra.main(version_base="1.3", config_path="pkg://ganrun.conf", config_name="config")
def hydra_main(cfg: DictConfig):
    from ganrun.train import (
        train,  # torch import after Hydra has parsed the command line (fast --help)
    )

    hydra_cfg = HydraConfig.get()
    if "joblib" in str(hydra_cfg.launcher.get("_target_", "")).lower():
        share_cpu_threads(int(hydra_cfg.launcher.get("n_jobs") or -1))
    try:
        result = train(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
        # A sweeper (e.g. Optuna) minimises what the task returns: the final FID when metrics ran.
        return result["final"]["metrics"]["FID"] if result.get("final") else None
    except ConfigError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    except TrainingDivergedError as exc:
        log.error("%s", exc)
        raise SystemExit(3) from None
    except TrainingInterrupted as exc:
        log.warning("%s", exc)
        raise SystemExit(128 + exc.signum) from None


def _override_key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def with_saved_overrides(argv: list[str]) -> list[str]:
    """Prepend the overrides a run was started with when `resume=...` is among the arguments."""
    resume = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    if not resume or resume[0] in ("null", ""):
        return argv
    try:
        saved = load_for_resume(resume[0])[0].get("overrides", [])
    except ConfigError:
        return argv  # train() reports the problem with the resume path
    given = {_override_key(a) for a in argv if "=" in a and not a.startswith("-")}
    return [a for a in saved if _override_key(a) not in given] + argv


def main() -> None:
    sys.argv = [sys.argv[0], *with_saved_overrides(sys.argv[1:])]
    hydra_main()


if __name__ == "__main__":
    main()
