"""Bad input is refused before training by ganrun.validate.validate, naming the key; what ganrun ships passes."""

import copy
import errno

import pytest
import torch
from helpers import TINY, every_shipped_config, run_ganrun, train_in_process
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun import checkpoint
from ganrun.errors import ConfigError, StorageError
from ganrun.validate import validate


def composed(*overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("overrides,message", [
    (["+trainer.stepz=3"], "unknown key trainer.stepz"),
    (["+seedz=1"], "unknown key seedz"),
    (["+metrics.evry=5"], "unknown key metrics.evry"),
    (["+ema.decy=0.9"], "unknown key ema.decy"),
    (["metrics.real_split=trian"], "metrics.real_split='trian' is not one of train, test"),
    (["scheduler=linear", "scheduler.final_factor=-1"], "scheduler.final_factor=-1 must be a number >= 0"),
    (["scheduler=cosine", "scheduler.warmup_steps=-3"], "scheduler.warmup_steps=-3 must be an integer >= 0"),
    (["metrics.kid_subsets=0"], "metrics.kid_subsets=0 must be an integer >= 1"),
    (["trainer.compile_mode=cudagraphs"], "trainer.compile_mode='cudagraphs' is not one of torch.compile's modes"),
    (["metrics.kid_subset_size=1"], "metrics.kid_subset_size=1 must be an integer >= 2"),
    (["model.z_dim=0"], "model.z_dim=0 must be an integer >= 1"),
    (["model.z_dim=abc"], "model.z_dim='abc' must be an integer >= 1"),
    (["model.generator.width=0"], "model.generator.width=0 must be an integer >= 1"),
    (["model.discriminator.width=-8"], "model.discriminator.width=-8 must be an integer >= 1"),
    (["model=mlp", "model.generator.hidden=[0]"], "model.generator.hidden=[0] must be a non-empty list"),
    (["dataset.channels=2"], "dataset.channels=2: only 1 (grayscale) and 3 (RGB)"),
    (["trainer.device=tpu"], "trainer.device='tpu' is not a device"),
    (["metrics.pr_k=0"], "metrics.pr_k=0 must be an integer >= 1"),
    (["metrics.pr_k=20000"], "metrics.pr_k=20000 must be below metrics.pr_samples=10000"),
    (["metrics.batch_size=0"], "metrics.batch_size=0 must be an integer >= 1"),
    (["metrics.num_real=0"], "metrics.num_real=0 must be an integer >= 2"),
    (["metrics.num_samples=1"], "metrics.num_samples=1 must be an integer >= 2"),
    (["metrics.final_num_samples=1"], "metrics.final_num_samples=1 must be 0"),
    (["metrics.extractor=incepton"], "metrics.extractor='incepton' is not one of"),
    (["trainer.steps=0"], "trainer.steps=0 must be a positive integer"),
    (["ema.enabled=true", "ema.decay=1.5"], "ema.decay=1.5 must be in [0, 1)"),
])
def test_bad_values_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as refused:
        validate(composed(*overrides))
    assert message in str(refused.value)


def test_metrics_settings_are_not_checked_when_metrics_are_off():
    validate(composed("metrics.every=0", "metrics.final_num_samples=0", "metrics.num_samples=1", "metrics.pr_k=0"))


def test_every_config_ganrun_ships_is_valid():
    for _, cfg in every_shipped_config():
        validate(copy.deepcopy(cfg))  # the configs are shared with other tests: they stay as composed
    validate(composed("dataset=ring8", "model=mlp", "trainer.device=cuda:1", "ema.enabled=true"))


def test_disk_full_while_writing_a_checkpoint_names_the_file_and_keeps_the_older_ones(tmp_path, monkeypatch):
    older = checkpoint.checkpoint_path(tmp_path, 1)
    checkpoint.save_atomic({"step": 1}, older)
    real_save = torch.save

    def fill_the_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # part of the bytes reach the temporary file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", fill_the_disk)
    target = checkpoint.checkpoint_path(tmp_path, 2)
    with pytest.raises(StorageError) as refused:
        checkpoint.save_atomic({"step": 2}, target)
    assert f"cannot write {target}: No space left on device" in str(refused.value)
    assert not target.exists() and list(target.parent.iterdir()) == [older]
    assert torch.load(older, weights_only=True) == {"step": 1}


def test_disk_full_during_training_is_a_message_not_a_traceback(tmp_path, data_root, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ConfigError, match=r"cannot write .*step_00000002.pt: No space left on device"):
        train_in_process(tmp_path, data_root)


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["metrics.every=1", "metrics.num_samples=1"], "metrics.num_samples=1 must be an integer >= 2"),
    (["+trainer.stepz=3"], "unknown key trainer.stepz"),
    (["trainer.device=tpu"], "trainer.device='tpu' is not a device"),
])
def test_the_cli_refuses_before_training_without_a_traceback(tmp_path, data_root, args, message):
    run_dir = tmp_path / "run"
    proc = run_ganrun([*TINY, *args, f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and message in output and "Traceback" not in output
    assert not (run_dir / "checkpoints").exists()
