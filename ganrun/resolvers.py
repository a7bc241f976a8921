"""Every OmegaConf resolver ganrun's config uses, registered in one place (imported by the CLI and the tests).

- `ganrun_run_dir`: the run dir of `hydra.run.dir`: the resumed run's own dir, or a new one made unique (also when
  resuming from an older checkpoint would otherwise prune newer work; `rundir.run_dir_for_resume`);
- `ganrun_job_dir`: a sweep job's dir name from its number and the overrides that differ between jobs
  (`sweep.job_names.job_dir_name`);
- `ganrun_final_num_samples`: the default size of the final evaluation (`final_num_samples` below).
"""

from __future__ import annotations

from omegaconf import OmegaConf

from ganrun.rundir import run_dir_for_resume
from ganrun.sweep.job_names import job_dir_name

FULL_FINAL_EVAL = 50000  # generated samples of the standard FID protocol (Heusel et al. 2017)
FULL_FINAL_EVAL_MIN_STEPS = 2000  # shorter runs (quick tries, sweep jobs) end with metrics.num_samples instead


def final_num_samples(steps: int, num_samples: int) -> int:
    """Default of metrics.final_num_samples (resolver `ganrun_final_num_samples`): the 50k-sample evaluation only
    for runs of at least FULL_FINAL_EVAL_MIN_STEPS steps; a 200-step sweep job would spend longer on it than on
    training, so short runs end with an evaluation like the ones during training (metrics.num_samples)."""
    return FULL_FINAL_EVAL if int(steps) >= FULL_FINAL_EVAL_MIN_STEPS else int(num_samples)


OmegaConf.register_new_resolver("ganrun_run_dir", run_dir_for_resume, replace=True)
OmegaConf.register_new_resolver("ganrun_job_dir", job_dir_name, replace=True)
OmegaConf.register_new_resolver("ganrun_final_num_samples", final_num_samples, replace=True)
