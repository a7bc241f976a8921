"""Every OmegaConf resolver ganrun's config uses, registered in one place (imported by the CLI and the tests).

- `ganrun_run_dir`: the run dir of `hydra.run.dir`: the resumed run's own dir, or a new one made unique (also when
  resuming from an older checkpoint would otherwise prune newer work; `rundir.run_dir_for_resume`);
- `ganrun_job_dir`: a sweep job's dir name from its number and the overrides that differ between jobs
  (`sweep.job_names.job_dir_name`);
- `ganrun_num_samples`, `ganrun_final_num_samples`, `ganrun_num_real`: the default evaluation sizes, a closed form
  of the run's length (`ganrun.metrics.sizing`).
"""

from __future__ import annotations

from omegaconf import OmegaConf

from ganrun.metrics.sizing import final_num_samples, num_real, num_samples
from ganrun.rundir import run_dir_for_resume
from ganrun.sweep.job_names import job_dir_name

OmegaConf.register_new_resolver("ganrun_run_dir", run_dir_for_resume, replace=True)
OmegaConf.register_new_resolver("ganrun_job_dir", job_dir_name, replace=True)
OmegaConf.register_new_resolver("ganrun_num_samples", num_samples, replace=True)
OmegaConf.register_new_resolver("ganrun_final_num_samples", final_num_samples, replace=True)
OmegaConf.register_new_resolver("ganrun_num_real", num_real, replace=True)
