"""More probes of a received checkpoint or run folder (issue 18), each with a tiny crafted file made here."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import train_in_process

from ganrun import checkpoint
from ganrun.errors import ConfigError
from ganrun.rundir import refuse_links


def test_an_overlapping_view_cannot_make_a_small_file_allocate_much(tmp_path):
    """An expanded (stride-0) tensor is stored as its one-element storage: a file of a few hundred bytes would hand
    out a tensor of 2**30 elements, which the first `.to(dtype)` or `.clone()` (optimizer state) allocates."""
    path = tmp_path / "step_00000001.pt"
    state = {"format": checkpoint.CHECKPOINT_FORMAT, "run_id": "sender", "config": {},
             "opt_g": {"state": {0: {"exp_avg": torch.zeros(1, dtype=torch.float64).expand(2 ** 30)}}}}
    torch.save(state, path)
    assert path.stat().st_size < 10_000
    with pytest.raises(ConfigError, match="more"):
        checkpoint.load(path)


def test_a_hard_linked_file_in_a_run_dir_is_refused_naming_it(tmp_path):
    """config.yaml, run_id, the lock file and ganrun.log are written in place: through a hard link to a file
    outside the run (or to a `cp -al` snapshot) a resume would overwrite that file too."""
    outside = tmp_path / "bashrc"
    outside.write_text("mine\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.link(outside, run_dir / "config.yaml")
    with pytest.raises(ConfigError, match="config.yaml"):
        refuse_links(run_dir)


def test_a_forced_lr_change_on_resume_is_the_lr_trained_with(tmp_path, data_root):
    """resume_force=true optimizer.g.lr=X records the change; the optimizer and scheduler states of the checkpoint
    must not put the old lr back (nor may a crafted optimizer state set an lr the saved config does not say)."""
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "optimizer.g.lr=0.001", steps=1, run_dir=run_dir)
    train_in_process(tmp_path, data_root, f"resume={run_dir}", "resume_force=true", "optimizer.g.lr=0.0005",
                     steps=2, run_dir=run_dir)
    state = checkpoint.load(checkpoint.checkpoint_path(run_dir, 2))
    assert state["config"]["optimizer"]["g"]["lr"] == pytest.approx(0.0005)
    assert [g["lr"] for g in state["opt_g"]["param_groups"]] == [pytest.approx(0.0005)]
    assert "schedulers" not in state  # scheduled values come from the step and the config, never from the file


def test_a_companion_command_never_copies_a_dataset_into_a_root_the_checkpoint_names(tmp_path, monkeypatch):
    """download=false is not enough: Fashion-MNIST found in Debian's package is copied (55 MB) into the root, and
    the root of a received checkpoint is the sender's choice."""
    from helpers import write_mnist_like

    from ganrun.data import sources
    from ganrun.data.stream import load_dataset
    from ganrun.outputs import load_generator

    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(write_mnist_like(tmp_path / "debian", gz=True)))
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "cache"))
    victim = tmp_path / "victim"
    config = {"model": {"generator": {"_target_": "ganrun.models.dcgan.Generator", "z_dim": 8, "resolution": 32,
                                      "channels": 1, "width": 8}},
              "dataset": {"name": "fashion_mnist", "resolution": 32, "resize": "pad", "channels": 1, "num_classes": 10,
                          "in_memory": "auto", "source": {"_target_": "ganrun.data.sources.fashion_mnist",
                                                              "root": str(victim), "train": True, "download": True}}}
    checkpoint.save_atomic({"format": checkpoint.CHECKPOINT_FORMAT, "run_id": "sender", "step": 1, "config": config,
                            "generator": {}}, checkpoint.checkpoint_path(tmp_path / "run", 1))
    monkeypatch.setattr("ganrun.validate.validate", lambda cfg: None)
    monkeypatch.setattr("ganrun.config.build", lambda node: torch.nn.Module())
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, state: None)
    _, cfg, _, _ = load_generator(str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="not found"):
        load_dataset(cfg.dataset)  # what ganrun-eval's evaluator does for the real statistics
    assert not victim.exists()


@pytest.mark.parametrize("edit", [{"step": "1"}, {"step": 1.5}, {"step": -1}, {"overrides": "seed=1"},
                                  {"overrides": [3]}])
def test_a_checkpoint_with_an_odd_step_or_overrides_is_refused_by_name(tmp_path, edit):
    """ganrun-eval names its result file `eval_step_{step:08d}.json` and resume prepends the saved overrides to the
    command line's: a string or float step, or overrides that are not a list of strings, were tracebacks."""
    path = checkpoint.checkpoint_path(tmp_path, 1)
    checkpoint.save_atomic({"format": checkpoint.CHECKPOINT_FORMAT, "run_id": "sender", "step": 1, "config": {},
                            "overrides": [], **edit}, path)
    with pytest.raises(ConfigError, match=str(path)):
        checkpoint.load(path)


@pytest.mark.slow
def test_rerunning_a_sweep_with_more_steps_continues_its_finished_jobs(tmp_path, data_root):
    """trainer.steps is the same for every job, so it is not part of the job dir names: a finished job of a shorter
    sweep was skipped as done, and the summary showed 2-step results for a 3-step sweep."""
    from helpers import TINY, run_ganrun

    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    run_ganrun([*args, "trainer.steps=2"], data_root, cwd=tmp_path)
    proc = run_ganrun([*args, "trainer.steps=3"], data_root, cwd=tmp_path)
    assert "skipped" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in sweep.glob("*/checkpoints/step_00000003.pt")) == ["step_00000003.pt"] * 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["multirun.yaml", "0_seed=0/.hydra/config.yaml"])
def test_a_sweep_dir_holding_a_link_is_refused_before_hydra_writes_through_it(tmp_path, data_root, name):
    """Rerunning a (received) crashed sweep needs its hydra.sweep.dir: Hydra writes multirun.yaml and each job's
    .hydra/ files there before ganrun sees the job, so a link in it overwrote a file outside the sweep."""
    from helpers import TINY, run_ganrun

    outside = tmp_path / "bashrc"
    outside.write_text("mine\n")
    sweep = tmp_path / "sweep"
    (sweep / name).parent.mkdir(parents=True, exist_ok=True)
    (sweep / name).symlink_to(outside)
    proc = run_ganrun(["-m", *TINY, "trainer.steps=1", "seed=0,1", f"hydra.sweep.dir={sweep}"], data_root,
                      cwd=tmp_path, check=False)
    assert outside.read_text() == "mine\n"
    assert proc.returncode == 1 and "is a symbolic link" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", [".ganrun.lock", "metrics.json"])
def test_a_fifo_in_a_run_dir_is_refused_instead_of_hanging(tmp_path, name):
    """A received folder may hold a named pipe: opening `.ganrun.lock` (or reading a job's metrics.json on a sweep
    rerun) blocked for ever, waiting for a writer."""
    import threading

    from ganrun.rundir import refuse_if_in_use

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkfifo(run_dir / name)
    outcome = []

    def check():
        try:
            refuse_links(run_dir)
            refuse_if_in_use(run_dir)
            outcome.append("accepted")
        except ConfigError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert outcome and str(run_dir / name) in outcome[0]


def test_diagnose_on_a_config_naming_a_shipped_non_loss_class_is_one_line(tmp_path, capsys):
    """ganrun.regularizers.GradientPenalty is allowed in the loss group (loss=wgan_gp places it there) but has no
    score_kind: a crafted config.yaml made ganrun-diagnose end in an AttributeError traceback."""
    from ganrun import diagnostics

    (tmp_path / "config.yaml").write_text("loss: {_target_: ganrun.regularizers.GradientPenalty}\n")
    diagnostics.main([str(tmp_path)])  # read as a critic's run (no fixed scale): nothing logged, nothing found
    assert "No failure detected" in capsys.readouterr().out


def _loose_checkpoint(folder, monkeypatch):
    """A checkpoint file as people send one: alone in a folder of other things (no run dir around it)."""
    monkeypatch.setenv("GANRUN_CACHE", str(folder.parent / "cache"))
    monkeypatch.setattr("ganrun.validate.validate", lambda cfg: None)
    monkeypatch.setattr("ganrun.config.build", lambda node: torch.nn.Module())
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, state: None)
    config = {"model": {"generator": {"_target_": "ganrun.models.dcgan.Generator", "z_dim": 8}}, "dataset": {}}
    path = folder / "sent.pt"
    checkpoint.save_atomic({"format": checkpoint.CHECKPOINT_FORMAT, "run_id": "sender", "step": 1, "config": config,
                            "generator": {}}, path)
    return path


def test_a_loose_checkpoint_file_is_not_refused_for_links_elsewhere_in_its_folder(tmp_path, monkeypatch):
    """`ganrun-eval ~/Downloads/best.pt` walked the whole of ~/Downloads (or ~) and refused it for any link in
    any subfolder, which has nothing to do with the run."""
    from ganrun.outputs import load_generator

    downloads = tmp_path / "downloads"
    (downloads / "other project").mkdir(parents=True)
    (downloads / "other project" / "data").symlink_to(tmp_path)
    path = _loose_checkpoint(downloads, monkeypatch)
    assert load_generator(str(path))[3] == path


def test_a_result_file_is_never_written_through_a_link(tmp_path):
    """The result file of a loose checkpoint goes beside it: a link shipped there under that name (or --out naming
    a link) would make the result overwrite another file."""
    from ganrun.outputs import output_file

    outside = tmp_path / "bashrc"
    outside.write_text("mine\n")
    (tmp_path / "eval_step_00000001.json").symlink_to(outside)
    with pytest.raises(ConfigError, match="link"):
        output_file(tmp_path / "eval_step_00000001.json", "the result file")


@pytest.mark.parametrize("edit", [{"dataset": "x"}, {"dataset": None}, {"metrics": [1]},
                                  {"dataset": {"name": "mnist", "source": "x"}}])
def test_a_saved_section_that_is_not_a_mapping_is_one_line_naming_it(edit):
    """`ganrun resume=` on a checkpoint whose saved dataset (or metrics) is a string, a list or null ended in an
    AttributeError traceback (`merged["dataset"].get`, `setdefault`) before the schema check."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import ganrun.resolvers  # noqa: F401
    from ganrun.resume import resumed_config

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=["resume=/nowhere"])
    saved = {**OmegaConf.to_container(cfg, resolve=True), **edit}
    with pytest.raises(ConfigError, match="ck.pt.*(dataset|metrics)"):
        resumed_config(saved, cfg, ["resume=/nowhere"], "ck.pt")
