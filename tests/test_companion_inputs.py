"""The companion commands on odd inputs: every failure is one clear line naming the thing at fault (no
traceback) with a non-zero exit, found before the work starts; outputs land beside the run they belong to."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import train_in_process

from ganrun import checkpoint, classify_cli, diagnostics, eval_cli, sample_cli


@pytest.fixture
def run_dir(tmp_path, data_root):
    train_in_process(tmp_path, data_root, steps=2)
    return tmp_path / "run"


def refused(main, argv, capsys, code=1):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == code
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Traceback" not in error
    return error


def test_diagnose_names_a_missing_path_and_a_folder_that_is_no_run(tmp_path, capsys):
    assert refused(diagnostics.main, [str(tmp_path / "nope")], capsys) == (
        f"ganrun-diagnose: error: {tmp_path / 'nope'}: no such run dir. Give the run dir of a ganrun run (it holds "
        "config.yaml and the TensorBoard events).")
    (tmp_path / "empty").mkdir()
    assert f"{tmp_path / 'empty'} holds no config.yaml: it is no ganrun run dir" in refused(
        diagnostics.main, [str(tmp_path / "empty")], capsys)


def test_diagnose_reads_the_run_of_a_checkpoint_file(run_dir, capsys):
    diagnostics.main([str(checkpoint.checkpoint_path(run_dir, 2))])
    assert capsys.readouterr().out == "No failure detected in 2 log steps.\n"


@pytest.mark.parametrize("argv, error", [
    (["--num", "2", "--batch-size", "0"], "--batch-size 0 must be at least 1"),  # looped forever
    (["--interpolate", "2", "--steps", "0"], "--steps 0 must be at least 1"),  # ZeroDivisionError in make_grid
    (["--num", "-1", "--interpolate", "2"], "--num -1 must be >= 0"),
])
def test_sample_refuses_sizes_it_cannot_use(run_dir, capsys, argv, error):
    assert refused(sample_cli.main, [str(run_dir), "--out", str(run_dir / "s"), *argv], capsys, code=2) == \
        f"ganrun-sample: error: {error}"


def test_sample_names_an_output_path_that_is_a_file(run_dir, tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    assert refused(sample_cli.main, [str(run_dir), "--num", "2", "--out", str(tmp_path / "taken")], capsys) == \
        f"ganrun-sample: error: --out {tmp_path / 'taken'} exists and is not a folder."
    assert (tmp_path / "taken").read_text() == "mine"


def test_sample_says_an_unconditional_model_takes_no_label(run_dir, capsys):
    assert "the model is unconditional (model.conditioning=none)" in refused(
        sample_cli.main, [str(run_dir), "--num", "2", "--label", "3", "--out", str(run_dir / "s")], capsys)


@pytest.fixture
def stub_evaluation(monkeypatch):
    """The evaluation replaced by a stub that records whether it ran (the real one trains a classifier)."""
    from ganrun.metrics import report

    calls = []
    monkeypatch.setattr(report, "make_evaluator", lambda *a, **k: calls.append("evaluator") or object())
    monkeypatch.setattr(report, "evaluate_generator", lambda *a, **k: calls.append("evaluation") or {"metrics": {}})
    return calls


def test_eval_of_a_loose_checkpoint_file_writes_beside_it(run_dir, tmp_path, stub_evaluation):
    loose = tmp_path / "downloads" / "model.pt"
    loose.parent.mkdir()
    shutil.copy(checkpoint.checkpoint_path(run_dir, 2), loose)
    eval_cli.main([str(loose), "--no-download"])
    assert json.loads((loose.parent / "eval_step_00000002.json").read_text())["checkpoint"] == str(loose)
    assert not (tmp_path / "eval_step_00000002.json").exists()  # not in the folder above the file's
    eval_cli.main([str(run_dir), "--no-download"])
    assert (run_dir / "eval_step_00000002.json").is_file()


def test_eval_makes_the_folder_of_its_output_file(run_dir, tmp_path, stub_evaluation):
    eval_cli.main([str(run_dir), "--no-download", "--out", str(tmp_path / "new" / "folder" / "e.json")])
    assert json.loads((tmp_path / "new" / "folder" / "e.json").read_text())["step"] == 2


@pytest.mark.parametrize("tool, name", [(eval_cli, "ganrun-eval"), (classify_cli, "ganrun-classify")])
def test_an_unusable_output_path_is_refused_before_the_work(run_dir, tmp_path, capsys, stub_evaluation, monkeypatch,
                                                            tool, name):
    monkeypatch.setattr(classify_cli, "evaluate_downstream", lambda *a, **k: stub_evaluation.append("downstream"))
    (tmp_path / "taken").write_text("mine")
    extra = ["--label-by-classifier"] if tool is classify_cli else ["--no-download"]
    for out, error in ((tmp_path / "taken" / "x.json", f"cannot create the folder {tmp_path / 'taken'}"),
                       (tmp_path, f"--out {tmp_path} is a folder: give a file name.")):
        assert error in refused(tool.main, [str(run_dir), *extra, "--out", str(out)], capsys)
    assert stub_evaluation == [] and (tmp_path / "taken").read_text() == "mine"


def test_sample_refuses_an_interpolation_grid_of_toy_points(tmp_path, data_root, capsys):
    """It wrote an interpolation.png of the (N, 2) points drawn as one grey image."""
    train_in_process(tmp_path, data_root, "dataset=ring8", "model=mlp", run_dir=tmp_path / "toy")
    error = refused(sample_cli.main, [str(tmp_path / "toy"), "--interpolate", "2", "--out", str(tmp_path / "s")],
                    capsys)
    assert error.startswith("ganrun-sample: error: --interpolate draws image grids;") and "(ring8)" in error
    assert not (tmp_path / "s" / "interpolation.png").exists()
    sample_cli.main([str(tmp_path / "toy"), "--num", "5", "--out", str(tmp_path / "s")])
    assert len((tmp_path / "s" / "points.csv").read_text().splitlines()) == 6  # header and 5 points


@pytest.mark.parametrize("tool, name", [(eval_cli, "ganrun-eval"), (sample_cli, "ganrun-sample"),
                                        (classify_cli, "ganrun-classify")])
def test_a_device_that_is_none_is_named_as_the_option_given(run_dir, capsys, tool, name):
    """`--device foo` was torch's RuntimeError (a traceback); the CUDA error named trainer.device."""
    argv = [str(run_dir), "--out", str(run_dir / "out"), *(["--num", "2"] if tool is sample_cli else [])]
    assert refused(tool.main, [*argv, "--device", "foo"], capsys) == \
        f"{name}: error: --device foo is not a device: auto | cpu | cuda | cuda:N | mps."


@pytest.mark.parametrize("tool, name", [(eval_cli, "ganrun-eval"), (sample_cli, "ganrun-sample"),
                                        (classify_cli, "ganrun-classify")])
def test_a_path_without_checkpoints_is_named_as_the_argument_given(tmp_path, capsys, tool, name):
    """The errors said `resume=PATH`, an option these commands do not have."""
    (tmp_path / "empty").mkdir()
    extra = ["--num", "2", "--out", str(tmp_path / "s")] if tool is sample_cli else []
    assert refused(tool.main, [str(tmp_path / "empty"), *extra], capsys) == \
        f"{name}: error: checkpoint {tmp_path / 'empty'}: no checkpoints in {tmp_path / 'empty' / 'checkpoints'}."
    assert refused(tool.main, [str(tmp_path / "nope"), *extra], capsys) == \
        f"{name}: error: checkpoint {tmp_path / 'nope'}: no such checkpoint file or run dir."
