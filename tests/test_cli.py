"""`ganrun` end to end through Hydra, as a user runs it, on tiny data written by the tests."""

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import TINY, cpu_env, events, run_ganrun, scalars
from tensorboard.plugins.hparams import plugin_data_pb2

from ganrun import checkpoint

pytestmark = pytest.mark.slow  # subprocess runs of the real commands


def test_run_writes_checkpoints_tensorboard_samples_and_config(tmp_path, data_root):
    run_dir = tmp_path / "run"
    proc = run_ganrun([*TINY, "trainer.steps=6", "trainer.log_every=2", "trainer.sample_every=3",
                       "trainer.ckpt_every=3", f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    assert "Using cpu" in proc.stderr + proc.stdout

    assert [p.name for p in checkpoint.step_checkpoints(run_dir)] == ["step_00000006.pt", "step_00000003.pt"]
    state = checkpoint.load(run_dir / "checkpoints" / "step_00000006.pt")
    assert state["step"] == 6 and state["config"]["trainer"]["steps"] == 6

    acc = events(run_dir)
    tags = set(acc.Tags()["scalars"])
    for tag in ["loss/D", "loss/G", "loss/D_adversarial", "scores/D(x)", "scores/D(G(z))", "grad_norm/D",
                "grad_norm/G", "lr/G", "lr/D", "throughput/images_per_sec"]:
        assert tag in tags, tag
    assert [e.step for e in acc.Scalars("loss/D")] == [2, 4, 6]
    assert all(0.0 < e.value < 1.0 for e in acc.Scalars("scores/D(x)"))  # probabilities for the BCE loss
    assert "samples/fixed_noise" in acc.Tags()["images"]
    assert [e.step for e in acc.Images("samples/fixed_noise")] == [3, 6]
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [  # raw G and its EMA (the default)
        "step_00000003.png", "step_00000003_ema.png", "step_00000006.png", "step_00000006_ema.png"]
    assert "lr: 0.0002" in (run_dir / "config.yaml").read_text()  # resolved config saved in the run dir


def test_penalty_terms_are_logged(tmp_path, data_root):
    run_dir = tmp_path / "run"
    run_ganrun([*TINY, "loss=wgan_gp", "regularizer=r1", "trainer.n_critic=2", "trainer.steps=2",
                "trainer.log_every=1", f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    penalties = scalars(run_dir, "penalty/gp")
    assert set(penalties) == {1, 2} and all(v > 0 for v in penalties.values())
    assert set(scalars(run_dir, "penalty/r1")) == {1, 2}


MENU = ["model.conditioning=projection", "ema.enabled=true", "scheduler=linear", "scheduler.warmup_steps=2",
        "scheduler.total_steps=6", "augment=[diffaugment,instance_noise]", "augment.instance_noise.anneal_steps=6",
        "loss=ralsgan", "regularizer=r1"]


@pytest.mark.parametrize("options", [[], MENU], ids=["default", "conditional-ema-schedule-augment"])
def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, data_root, options):
    common = [*TINY, "trainer.log_every=1", "trainer.ckpt_every=3", "seed=7", *options]
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_ganrun([*common, "trainer.steps=6", f"hydra.run.dir={straight}"], data_root, cwd=tmp_path)
    run_ganrun([*common, "trainer.steps=3", f"hydra.run.dir={split}"], data_root, cwd=tmp_path)
    # The documented way: only resume= and the new length; the other overrides come from the checkpoint.
    run_ganrun([f"resume={split}", "trainer.steps=6"], data_root, cwd=tmp_path)

    a = checkpoint.load(straight / "checkpoints" / "step_00000006.pt")
    b = checkpoint.load(split / "checkpoints" / "step_00000006.pt")
    for part in ("generator", "discriminator") + (("ema",) if options else ()):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert a["opt_d"]["state"][0]["exp_avg"].equal(b["opt_d"]["state"][0]["exp_avg"])
    assert a["data"] == b["data"]
    for tag in ("loss/D", "loss/G", "lr/G"):
        assert scalars(straight, tag) == scalars(split, tag)  # steps 1..6, including the resumed 4..6


def test_conditional_ema_run_logs_class_rows_and_both_generators(tmp_path, data_root):
    run_dir = tmp_path / "run"
    run_ganrun([*TINY, "model.conditioning=acgan", "ema.enabled=true", "trainer.num_samples=20", "trainer.steps=2",
                "trainer.sample_every=2", "trainer.log_every=1", "metrics.final_num_samples=200", "metrics.num_real=128",
                "metrics.classifier_epochs=1", "metrics.pr_samples=100", "metrics.kid_subset_size=50",
                f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    acc = events(run_dir)
    assert {"samples/fixed_noise", "samples/fixed_noise_ema"} <= set(acc.Tags()["images"])
    grid = acc.Images("samples/fixed_noise")[-1]
    # 10 classes x 2 columns of 32 px (28 px padded) with make_grid's 2 px padding: one row per class
    assert (grid.height, grid.width) == (10 * 34 + 2, 2 * 34 + 2)
    tags = set(acc.Tags()["scalars"])
    assert {"metrics_final/FID_offline_classifier", "metrics_final/FID_offline_classifier_ema",
            "penalty/acgan_class"} <= tags
    assert {"config/resolved/text_summary", "config/overrides/text_summary"} <= set(acc.Tags()["tensors"])  # TEXT tab
    resolved = acc.Tensors("config/resolved/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "conditioning: acgan" in resolved
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["final"]["metrics"]["FID"] > 0 and summary["final_ema"]["metrics"]["FID"] > 0
    out = tmp_path / "samples"
    proc = subprocess.run([shutil.which("ganrun-sample"), str(run_dir), "--ema", "--label", "3", "--num", "4",
                       "--out", str(out)], capture_output=True, text=True, env=cpu_env())
    assert proc.returncode == 0, proc.stderr
    assert len(list(out.glob("*.png"))) == 4


def test_resume_refuses_a_changed_experiment_unless_forced(tmp_path, data_root):
    run_dir = tmp_path / "run"
    run_ganrun([*TINY, "trainer.steps=2", f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path)
    refused = run_ganrun([f"resume={run_dir}", "loss=hinge", "optimizer.d.lr=1e-3", "trainer.steps=3"], data_root,
                         cwd=tmp_path, check=False)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "loss._target_: 'ganrun.losses.NonSaturating' -> 'ganrun.losses.Hinge'" in output
    assert "optimizer.d.lr: 0.0002 -> 0.001" in output and "resume_force=true" in output
    assert not (run_dir / "checkpoints" / "step_00000003.pt").exists()

    run_ganrun([f"resume={run_dir / 'checkpoints' / 'step_00000002.pt'}", "loss=hinge", "resume_force=true",
                "trainer.steps=3"], data_root, cwd=tmp_path)
    assert checkpoint.load(run_dir / "checkpoints" / "step_00000003.pt")["config"]["loss"]["_target_"].endswith("Hinge")


def test_multirun_gives_each_job_its_own_dir_run_hparams_and_a_summary(tmp_path, data_root):
    sweep = tmp_path / "sweep"
    proc = run_ganrun(["-m", *[a for a in TINY if not a.startswith("metrics.final")], "loss=ns,hinge",
                       "trainer.steps=2", "trainer.log_every=1", "metrics.final_num_samples=100",
                       "metrics.num_real=100", "metrics.classifier_epochs=1", "metrics.kid_subset_size=50",
                       "metrics.download=false", f"hydra.sweep.dir={sweep}"], data_root, cwd=tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_loss=ns", "1_loss=hinge"]  # the overrides every job shares left out
    assert all(len(p.name) <= 150 for p in jobs)  # long override lists are shortened with a hash
    losses = [scalars(job, "loss/D")[2] for job in jobs]
    assert losses[0] != losses[1]
    assert all((job / "checkpoints" / "step_00000002.pt").exists() for job in jobs)

    # HParams live in each job's own event file: no stray timestamped sub-runs.
    for job, loss in zip(jobs, ["ns", "hinge"]):  # as typed, not the class names
        assert not [p for p in job.iterdir() if p.is_dir() and p.name[:1].isdigit()]
        acc = events(job)
        content = acc.PluginTagToContent("hparams")
        assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hparams = start.session_start_info.hparams
        assert hparams["loss"].string_value == loss and hparams["trainer.n_critic"].number_value == 1
        assert hparams["optimizer.d.lr"].number_value == pytest.approx(2e-4)
        assert "z_hparams/FID" in acc.Tags()["scalars"]

    # The sweep summary: both jobs with their metrics, sorted by final FID, at the sweep root.
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(o for r in rows for o in r["overrides"].split() if o.startswith("loss=")) == ["loss=hinge", "loss=ns"]
    fids = [float(r["FID"]) for r in rows]
    assert fids == sorted(fids) and all(r["status"] == "done" and r["extractor"] == "offline_classifier" for r in rows)
    assert "| job | overrides | FID@100 |" in (sweep / "summary.md").read_text()
    assert "Sweep summary" in proc.stdout


def test_missing_data_is_refused_before_training(tmp_path):
    proc = run_ganrun(["dataset=mnist", "dataset.source.download=false", f"hydra.run.dir={tmp_path / 'run'}"],
                      tmp_path / "empty", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "MNIST not found" in output and str(tmp_path / "empty") in output and "Traceback" not in output
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resolution_the_model_cannot_make_is_refused(tmp_path, data_root):
    proc = run_ganrun(["dataset.resolution=48", f"hydra.run.dir={tmp_path / 'run'}"], data_root, cwd=tmp_path,
                      check=False)
    assert proc.returncode == 1
    assert "model=dcgan supports resolutions 28, 32, 64, 128, 256, not dataset.resolution=48" in proc.stdout + proc.stderr


def test_unknown_option_lists_choices(tmp_path, data_root):
    proc = run_ganrun(["loss=wgangp"], data_root, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "Could not find 'loss/wgangp'" in proc.stderr and "wgan_gp" in proc.stderr
