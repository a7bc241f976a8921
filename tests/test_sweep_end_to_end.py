"""Sweeps end to end: one job of a sweep resumed by its dir as listed (job dirs are named by their overrides,
`0_loss=ns`, `3_loss=wgan_gp,seed=1`: characters Hydra's override grammar cannot read bare), and a failed job
that neither stops the other jobs nor loses the summary."""

from __future__ import annotations

import pytest
import csv

from helpers import TINY, run_ganrun
from hydra.core.override_parser.overrides_parser import OverridesParser

from ganrun import checkpoint
from ganrun.cli import quote_resume_path
from ganrun.rundir import hydra_quote


@pytest.mark.parametrize("name", ["0_loss=ns", "3_loss=wgan_gp,seed=1", "1_model.generator.hidden=[32,32]",
                                  "a run ü"])
def test_the_path_of_a_job_dir_is_read_back_as_that_path(tmp_path, name):
    job = tmp_path / "sweep" / name
    (job / "checkpoints").mkdir(parents=True)
    for path in (job, job / "checkpoints"):
        [arg] = quote_resume_path([f"resume={path}"])
        assert OverridesParser.create().parse_override(arg).value() == str(path)


def test_paths_hydra_reads_bare_or_that_do_not_exist_are_left_as_typed(tmp_path):
    (tmp_path / "plain").mkdir()
    argv = [f"resume={tmp_path / 'plain'}", f"resume='{tmp_path / 'plain'}'", f"resume={tmp_path / 'x=y'}",
            "loss=ns,hinge", "-m"]
    assert quote_resume_path(argv) == argv


@pytest.mark.slow
def test_one_job_of_a_sweep_resumes_from_its_dir_as_listed(tmp_path, data_root):
    sweep = tmp_path / "sweep"
    run_ganrun(["-m", *TINY, "loss=ns,hinge", "trainer.steps=2", f"hydra.sweep.dir={sweep}"], data_root, cwd=tmp_path)
    job = sweep / "1_loss=hinge"
    proc = run_ganrun([f"resume={job}", "trainer.steps=3"], data_root, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    state = checkpoint.load(checkpoint.checkpoint_path(job, 3))  # continued in place, as the hinge run it was
    assert state["step"] == 3 and state["config"]["loss"]["_target_"].endswith("Hinge")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_failed_job_is_marked_in_the_summary_and_the_other_jobs_run(tmp_path, data_root):
    """ring8 has no labels, so its acgan job is refused: it used to end the sweep there (the jobs after it never
    ran) with no summary of the job before it."""
    sweep = tmp_path / "sweep"
    proc = run_ganrun(["-m", *[a for a in TINY if ".width=" not in a], "dataset=ring8", "model=mlp", "trainer.steps=2",
                       "model.conditioning=none,acgan,concat", "seed=1,2", f"hydra.sweep.dir={sweep}"],
                      data_root, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "ganrun: error: 4 sweep job(s) failed: 2_model.conditioning=acgan,seed=1, 3_model.conditioning=acgan,seed=2, "
        "4_model.conditioning=concat,seed=1, 5_model.conditioning=concat,seed=2 (the error is in each job's "
        "failed.txt and ganrun.log).")
    with open(sweep / "summary.csv") as f:
        status = {row["dir"]: row["status"] for row in csv.DictReader(f)}
    assert status["0_model.conditioning=none,seed=1"] == status["1_model.conditioning=none,seed=2"] == "done"
    assert status["5_model.conditioning=concat,seed=2"].startswith(
        "failed: model.conditioning=concat needs a labelled dataset with at least 2 classes")
    # Resumed after a fix (here: forced onto no conditioning), the job is no longer marked failed.
    job = sweep / "4_model.conditioning=concat,seed=1"
    run_ganrun([f"hydra.run.dir={hydra_quote(str(job))}", *[a for a in TINY if ".width=" not in a], "dataset=ring8", "model=mlp",
                "trainer.steps=2", "seed=1"], data_root, cwd=tmp_path)
    assert not (job / "failed.txt").exists()
