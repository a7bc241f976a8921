"""Resuming one job of a sweep by its dir as listed: job dirs are named by their overrides (`0_loss=ns`,
`3_loss=wgan_gp,seed=1`), characters Hydra's override grammar cannot read bare."""

from __future__ import annotations

import pytest
from helpers import TINY, run_ganrun
from hydra.core.override_parser.overrides_parser import OverridesParser

from ganrun import checkpoint
from ganrun.cli import quote_resume_path


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
