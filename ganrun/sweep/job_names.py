"""Sweep job dir names: `<job number>_<overrides that differ between jobs>`, also the TensorBoard run names.

Overrides given the same value for every job of a sweep (`ganrun -m loss=ns,hinge trainer.steps=200`) say
nothing about a job, so they are left out of its name (`0_loss=ns`, `1_loss=hinge`). The sweep's command line
is only known where the sweep starts (SweepSummary.on_multirun_start); it hands the constant keys to the jobs
through the environment, which every launcher (in-process, joblib, submitit, Slurm) passes on.
"""

from __future__ import annotations

import hashlib
import json
import os

from hydra.core.override_parser.overrides_parser import OverridesParser

from ganrun.trust import safe_name

CONSTANT_KEYS_ENV = "GANRUN_SWEEP_CONSTANT_KEYS"


def constant_keys(sweep_overrides, swept_params=()) -> list[str]:
    """Keys of the sweep's command-line overrides that are not sweeps (`a=1`, not `a=1,2` or `a=range(3)`);
    keys the sweeper's own `params` sweep (Optuna, a preset) are never constant."""
    parsed = OverridesParser.create().parse_overrides([str(o) for o in sweep_overrides])
    return sorted({o.key_or_group for o in parsed if not o.is_sweep_override()} - set(swept_params))


def job_dir_name(number, overrides, exclude_keys=(), limit: int = 150) -> str:
    """`<job number>_<overrides>` for a sweep job (Hydra resolver): the job's overrides, sorted and joined by ","
    as in Hydra's override_dirname, without `exclude_keys` and the sweep's constant keys; shortened with a hash
    beyond `limit` characters (file names are capped at 255 bytes and long override lists exceed it). Path
    separators and `..` in values are replaced: a job dir is always one folder inside the sweep dir."""
    left_out = set(exclude_keys) | set(json.loads(os.environ.get(CONSTANT_KEYS_ENV, "[]")))
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    shown = ",".join(sorted(o.input_line for o in parsed if o.key_or_group not in left_out))
    if shown:  # a value like `a/../../x` must not place the job dir outside the sweep dir
        shown = safe_name(shown)
    name = f"{number}_{shown}" if shown else str(number)
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(shown.encode()).hexdigest()[:8]
    return f"{name[: limit - 10]}..{digest}"
