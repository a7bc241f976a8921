"""`ganrun` console script: Hydra composes the config, `ganrun.train.train` runs it.

Interactive commands (`--help`, `--version`, `--cfg job`, `--info`, shell completion) never import torch: it
is imported inside `hydra_main`, after Hydra has parsed the command line, and by the modules that train.

Resuming: `ganrun resume=RUN_DIR` continues the experiment saved in the checkpoint (`ganrun.resume`); before
Hydra writes anything into an existing run dir, the dir is checked (no links, no live writer, no other run's work).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
from importlib import metadata
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import ganrun
import ganrun.schema  # noqa: F401  (registers the typed config schema with Hydra's ConfigStore)
import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.errors import ConfigError, TrainingDivergedError, TrainingInterrupted
from ganrun.rundir import (RunDirLock, holds_a_run, refuse_another_runs_dir, refuse_if_in_use, refuse_links,
                           refuse_to_prune_newer_work, resumed_in_place)

log = logging.getLogger("ganrun")



@hydra.main(version_base="1.3", config_path="pkg://ganrun.conf", config_name="config")
def hydra_main(cfg: DictConfig):
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ganrun.runtime import share_cpu_threads
    from ganrun.sweep.summary import FAILED_FILE
    from ganrun.train import train  # torch is imported here, after Hydra has parsed the command line

    hydra_cfg = HydraConfig.get()
    if "joblib" in str(hydra_cfg.launcher.get("_target_", "")).lower():
        share_cpu_threads(int(hydra_cfg.launcher.get("n_jobs") or -1))
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        (run_dir / FAILED_FILE).unlink(missing_ok=True)  # a job run again (resumed) starts with no failure
        if hydra_cfg.mode == RunMode.MULTIRUN and not cfg.resume and holds_a_run(run_dir):
            cfg.resume = str(run_dir)
            finished = _finished(run_dir, cfg, list(hydra_cfg.overrides.task))
            if finished is not None:  # a sweep run again after a crash: its finished jobs are kept as they are
                log.info("Sweep job %s finished before (metrics.json): skipped.", run_dir)
                return finished
            log.info("Sweep job %s was started before: resuming it.", run_dir)
        refuse_to_prune_newer_work(cfg.resume, run_dir)
        from ganrun import distributed  # torch: imported once Hydra has parsed the command line

        # Log lines go through tqdm.write while a progress bar is shown, so they do not break the bar.
        with RunDirLock(run_dir) if distributed.is_main() else contextlib.nullcontext(), \
                logging_redirect_tqdm(loggers=[logging.getLogger()]):
            result = train(cfg, run_dir, list(hydra_cfg.overrides.task))
        return result.final_fid  # what a sweeper (e.g. Optuna) minimises
    except (ConfigError, TrainingDivergedError) as exc:
        log.error("%s", exc)
        if sweep_goes_on(hydra_cfg):  # the other jobs still run; the summary marks this one, the exit status too
            (run_dir / FAILED_FILE).write_text(f"{exc}\n")
            return None
        raise SystemExit(1 if isinstance(exc, ConfigError) else 3) from None
    except TrainingInterrupted as exc:
        log.warning("%s", exc)
        raise SystemExit(128 + exc.signum) from None


def _finished(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> float | None:
    """The final FID of a job dir whose run finished the steps `cfg` asks for (it wrote metrics.json at that
    step), else None (nan without an FID). Keys the sweep's constant overrides change (not part of the job dir's
    name) are refused as a resume refuses them: a finished job is never taken for another experiment's."""
    import json

    from ganrun import checkpoint, resume

    try:
        summary = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    if checkpoint.step_checkpoints(run_dir):  # none left (deleted to save space): kept as it is
        state, found = checkpoint.load_newest(str(run_dir))
        steps = resume.resumed_config(state["config"], cfg, overrides, str(found))[0].trainer.steps
        if summary.get("step") != state["step"] or state["step"] < steps:
            return None  # stopped before its end, or the sweep now asks for more steps: resumed
    fid = ((summary.get("final") or {}).get("metrics") or {}).get("FID")
    return float(fid) if isinstance(fid, (int, float)) else float("nan")


def sweep_goes_on(hydra_cfg) -> bool:
    """Whether a failed job lets the sweep go on: in a `-m` sweep of Hydra's basic sweeper (a grid), yes, as
    each job is an experiment of its own; a search (Optuna) needs every trial's value, so it stops."""
    return hydra_cfg.mode == RunMode.MULTIRUN and "BasicSweeper" in str(hydra_cfg.sweeper.get("_target_", ""))


def _resume_value(argv: list[str]) -> str | None:
    """The path `resume=...` names, unquoted as Hydra reads it (`resume='/runs/my run ü'`: spaces and non-ASCII
    characters need Hydra's quotes, which must not end up in the path)."""
    return _override_value(argv, "resume")


def _override_value(argv: list[str], key: str) -> str | None:
    """The value `key=...` gives on the command line, as Hydra's parser reads it (None when absent or null)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for arg in argv:
        if arg.startswith(key + "="):
            try:
                value = OverridesParser.create().parse_override(arg).value()
            except Exception:  # a syntax error: Hydra reports it when it parses the command line
                value = arg.split("=", 1)[1]
            return None if value in (None, "", "null") else str(value)
    return None


def quote_resume_path(argv: list[str]) -> list[str]:
    """`resume=PATH` of an existing path that Hydra's grammar cannot read bare (a sweep job's dir
    `.../0_loss=ns` or `.../3_loss=wgan_gp,seed=1`: `=` is a syntax error, `,` a sweep) gets Hydra's quotes, so
    the path of a job dir can be pasted as it is listed."""
    from ganrun.rundir import hydra_value

    return [f"resume={hydra_value(arg[len('resume='):])}"
            if arg.startswith("resume=") and Path(arg[len("resume="):]).expanduser().exists() else arg
            for arg in argv]


def check_run_dir(argv: list[str]) -> None:
    """A single run aimed at an existing run dir (`resume=RUN_DIR`, or `hydra.run.dir=`) is checked before Hydra
    writes its .hydra/ files there: no symbolic links, no live run writing it, and a new run never takes over
    another run's dir. A sweep's existing `hydra.sweep.dir` (a crashed sweep run again) holds no links either."""
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        if any(a.split("=", 1)[0].lstrip("+") == key for a in argv) and not _override_value(argv, key):
            raise ConfigError(f"{key} is empty: give a dir (an empty one would mean the current directory).")
    if any(a in ("-m", "--multirun") for a in argv):  # sweep jobs get their own dirs under the sweep dir, which
        sweep_dir = _override_value(argv, "hydra.sweep.dir")  # Hydra writes (multirun.yaml, jobs' .hydra/) first
        if sweep_dir is not None and "${" not in sweep_dir:
            refuse_links(Path(sweep_dir))
        return
    resume = _resume_value(argv)
    explicit = _override_value(argv, "hydra.run.dir")
    run_dir = Path(explicit) if explicit is not None and "${" not in explicit else None
    if run_dir is None and resume is not None:
        run_dir = resumed_in_place(resume)[0]
    if run_dir is None:
        return
    refuse_links(run_dir)
    refuse_if_in_use(run_dir)
    if resume is None:
        refuse_another_runs_dir(run_dir)


def version_line() -> str:
    """`ganrun --version`: ganrun's version and those of the libraries that make a run, read from the installed
    packages' metadata (no torch import)."""
    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (f"ganrun {ganrun.__version__} (torch {installed('torch')}, torchvision {installed('torchvision')}, "
            f"hydra-core {installed('hydra-core')}, Python {sys.version.split()[0]})")


def for_this_rank(argv: list[str]) -> list[str]:
    """Under torchrun: join the process group, share one run dir, give ranks > 0 their own log file."""
    from ganrun import distributed

    if any(a in ("-m", "--multirun") for a in argv):
        raise SystemExit("ganrun: error: torchrun trains one run; start sweeps (-m) outside torchrun, e.g. with "
                         "hydra/launcher=submitit_slurm and one torchrun per job.")
    distributed.init_from_env()
    if not any(a.startswith(("hydra.run.dir=", "resume=")) for a in argv):
        stamp = distributed.broadcast_object(datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S"))
        argv = [*argv, f"hydra.run.dir=outputs/{stamp}"]
    if not distributed.is_main():
        argv = [*argv, "hydra.output_subdir=null", f"hydra.job.name=ganrun_rank{distributed.rank()}"]
    return argv


def main() -> None:
    if "--version" in sys.argv[1:]:  # Hydra's own --version would print Hydra's
        print(version_line())
        return
    try:
        argv = quote_resume_path(sys.argv[1:])
        check_run_dir(argv)
    except ConfigError as exc:
        print(f"ganrun: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if "WORLD_SIZE" in os.environ:  # set by torchrun; only then is torch.distributed needed here
        from ganrun import distributed

        if distributed.launched_by_torchrun():
            argv = for_this_rank(argv)
    sys.argv = [sys.argv[0], *argv]
    hydra_main()


if __name__ == "__main__":
    main()
