"""Exact resume across feature combinations: a run stopped at a checkpoint and resumed ends where the same run
done in one go ends (weights, EMA, optimizer state, logged scalars)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import TINY, run_ganrun, scalars, straight_and_split, train_in_process, write_png

from ganrun import checkpoint


def final_state(run_dir):
    return checkpoint.load(checkpoint.step_checkpoints(run_dir)[0])


def assert_same_state(a, b):
    assert a["step"] == b["step"]
    for part in ("generator", "discriminator"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    if a["ema"] is not None:
        for key in a["ema"]:
            assert torch.equal(a["ema"][key], b["ema"][key]), ("ema", key)
    for name in ("opt_g", "opt_d"):
        for index, saved in a[name]["state"].items():
            for key, value in saved.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b[name]["state"][index][key])), (name, key)
        assert a[name]["param_groups"][0]["lr"] == b[name]["param_groups"][0]["lr"], name


def image_folder(tmp_path):
    for label in ("a", "b"):
        for i in range(10):
            write_png(tmp_path / "images" / label / f"{i}.png", size=(28, 28), seed=10 * len(label) + i + (label == "b") * 50)
    return tmp_path / "images"


COMBOS = {
    "mnist": ["dataset=mnist"],
    "ring8": ["dataset=ring8", "model=mlp"],
    "warmup_cosine": ["scheduler=cosine", "scheduler.warmup_steps=2", "scheduler.total_steps=6"],
    "warmup_linear": ["scheduler=linear", "scheduler.warmup_steps=4", "scheduler.final_factor=0.1", "scheduler.total_steps=6"],
    "ema_rampup": ["ema.rampup=true", "ema.start_step=1", "ema.decay=0.9"],
    "ema_averaged_bn": ["ema.bn=averaged"],
    "projection": ["model.conditioning=projection"],
    "acgan": ["model.conditioning=acgan"],
    "concat": ["model.conditioning=concat"],
    "diffaugment": ["augment=diffaugment"],
    "r1_lazy": ["regularizer=r1", "regularizer.r1.every=2"],
    "wgan_gp": ["loss=wgan_gp"],
    "g_batch_size": ["trainer.g_batch_size=24"],
    "hinge_sgd_momentum": ["loss=hinge", "optimizer=sgd", "optimizer.g.momentum=0.9", "optimizer.d.momentum=0.9"],
    "instance_noise": ["augment=instance_noise", "augment.instance_noise.anneal_steps=6"],
}


@pytest.mark.slow  # ~20 s of in-process runs: the full suite (CI) runs the matrix, the fast tier does not
@pytest.mark.parametrize("name", COMBOS)
def test_a_split_run_ends_where_a_straight_run_ends(tmp_path, data_root, name):
    straight, split = straight_and_split(tmp_path, data_root, *COMBOS[name])
    assert_same_state(final_state(straight), final_state(split))
    for tag in ("loss/D", "loss/G"):
        assert scalars(straight, tag) == scalars(split, tag) and len(scalars(split, tag)) == 6


@pytest.mark.slow  # three in-process runs; the fast tier checks the state round trip (test_objective.py)
def test_lecam_averages_and_rpgans_fresh_batches_resume_exactly(tmp_path, data_root):
    """LeCam's moving averages live in the checkpoint (the objective's state) and RpGAN's G step draws from the
    data stream: a run stopped and resumed ends where an uninterrupted one ends."""
    straight, split = straight_and_split(tmp_path, data_root, "loss=rpgan", "regularizer=[r1r2,lecam]",
                                         "augment=diffaugment", steps=4, split_at=2)
    a, b = final_state(straight), final_state(split)
    assert_same_state(a, b)
    for key in ("averages", "debias"):
        assert torch.allclose(a["objective"]["terms"]["lecam"][key], b["objective"]["terms"]["lecam"][key],
                              rtol=1e-6, atol=0)
    assert a["objective"]["terms"]["lecam"]["debias"].item() == pytest.approx(1 - 0.99 ** 4)  # 4 D steps
    assert scalars(straight, "penalty/lecam") == pytest.approx(scalars(split, "penalty/lecam"), rel=1e-6)


@pytest.mark.slow
def test_a_folder_run_resumes_exactly(tmp_path, data_root):
    folder = image_folder(tmp_path)
    straight, split = straight_and_split(tmp_path, data_root, "dataset=folder", f"dataset.path={folder}",
                                         "model.conditioning=projection")
    assert_same_state(final_state(straight), final_state(split))


def test_extending_a_decayed_run_trains_its_first_resumed_step_on_the_stretched_schedule(tmp_path, data_root,
                                                                                     monkeypatch):
    """A 3-step cosine run ends at lr 0; resumed with trainer.steps=6 the schedule is stretched over 6 steps, so
    step 4 trains at lr * (1 + cos(pi * 3/6)) / 2 = lr / 2 (Loshchilov & Hutter 2017), not at the old lr 0."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "scheduler=cosine", steps=3, run_dir=run_dir)
    used = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: used.append(self.param_groups[0]["lr"])
                        or step(self, *a, **k))
    train_in_process(tmp_path, data_root, "scheduler=cosine", f"resume={run_dir}", steps=6, run_dir=run_dir)
    expected = [2e-4 * (1 + math.cos(math.pi * s / 6)) / 2 for s in (3, 4, 5)]
    assert used == pytest.approx([lr for lr in expected for _ in ("D", "G")], rel=1e-6)


def test_a_relative_data_path_is_saved_absolute(tmp_path, data_root, monkeypatch):
    image_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    train_in_process(tmp_path, data_root, "dataset=folder", "dataset.path=images", "dataset.source.skip_unreadable=true",
                     run_dir=tmp_path / "run")
    state = final_state(tmp_path / "run")
    assert state["config"]["dataset"]["path"] == state["config"]["dataset"]["source"]["path"] == str(tmp_path / "images")


@pytest.mark.slow
def test_a_folder_run_started_with_a_relative_path_resumes_from_another_directory(tmp_path, data_root):
    image_folder(tmp_path)
    run_ganrun([*TINY, "dataset=folder", "dataset.path=images", "trainer.steps=2", "hydra.run.dir=run"], data_root,
               cwd=tmp_path)
    (tmp_path / "elsewhere").mkdir()
    proc = run_ganrun([f"resume={tmp_path / 'run'}", "trainer.steps=3"], data_root, cwd=tmp_path / "elsewhere",
                      check=False)
    assert proc.returncode == 0, proc.stderr  # was: dataset.path='images' is not a folder
    assert checkpoint.step_checkpoints(tmp_path / "run")[0].name == "step_00000003.pt"
