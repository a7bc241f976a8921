"""Sweeps through Hydra's plugins (the `sweep` extra): Optuna search, joblib parallel jobs, submitit local."""

import importlib.util

import pytest
import yaml
from helpers import TINY, run_ganrun

pytestmark = pytest.mark.slow  # subprocess runs of the real commands

TINY_METRICS = ["metrics.final_num_samples=100", "metrics.num_real=100", "metrics.classifier_epochs=1",
                "metrics.kid_subset_size=50", "metrics.kid_subsets=5", "metrics.download=false"]
BASE = [a for a in TINY if not a.startswith("metrics.final")] + TINY_METRICS


def needs(plugin):
    return pytest.mark.skipif(importlib.util.find_spec(f"hydra_plugins.{plugin}") is None,
                              reason=f"{plugin} is not installed: pip install 'ganrun[sweep]'")


@needs("hydra_optuna_sweeper")
def test_optuna_search_minimises_the_returned_fid(tmp_path, data_root):
    sweep = tmp_path / "search"
    run_ganrun(["-m", "hparams_search=fashion_mnist_optuna", *BASE, "trainer.steps=2", "hydra.sweeper.n_trials=2",
                f"hydra.sweep.dir={sweep}"], data_root, cwd=tmp_path)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"optimizer.g.lr", "optimizer.d.lr", "search.beta1", "trainer.n_critic",
                                           "loss"}
    fids = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        fids.append(yaml.safe_load((job / "metrics.json").read_text())["final"]["metrics"]["FID"])
    assert len(fids) == 2 and results["best_value"] == pytest.approx(min(fids))


@needs("hydra_joblib_launcher")
def test_joblib_runs_jobs_in_parallel_processes(tmp_path, data_root):
    sweep = tmp_path / "sweep"
    proc = run_ganrun(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, "loss=ns,hinge",
                       "trainer.steps=2", f"hydra.sweep.dir={sweep}"], data_root, cwd=tmp_path)
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all((job / "checkpoints" / "step_00000002.pt").exists() for job in jobs)
    assert "1 torch thread(s) each" in (jobs[0] / "ganrun.log").read_text()
    assert (sweep / "summary.csv").exists()


@needs("hydra_submitit_launcher")
def test_submitit_local_launcher(tmp_path, data_root):
    sweep = tmp_path / "sweep"
    run_ganrun(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *TINY, "seed=0,1",
                "trainer.steps=2", f"hydra.sweep.dir={sweep}"], data_root, cwd=tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[:1].isdigit())
    assert len(jobs) == 2 and all((job / "checkpoints" / "step_00000002.pt").exists() for job in jobs)
