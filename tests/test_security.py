"""A checkpoint or run folder is data, never code: crafted files must not run anything (a marker file that the
payload would create stays absent), and the refusal names the key, override or file at fault."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from helpers import TINY, every_shipped_config, run_ganrun
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun import checkpoint, eval_cli, sample_cli
from ganrun.errors import ConfigError
from ganrun.outputs import load_generator
from ganrun.sweep.job_names import job_dir_name
from ganrun.metrics import extractors
from ganrun.metrics.evaluator import Evaluator
from ganrun.trust import check_saved_config, safe_name, shipped_targets


class _TouchOnUnpickle:
    """Unpickling this creates `marker`: stands in for any code a pickle can run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def evil_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_TouchOnUnpickle(marker), path)
    return path


def crafted_checkpoint(run_dir: Path, config: dict, overrides=()) -> Path:
    """A checkpoint file with a crafted config/overrides (loadable with weights_only=True, as real ones are)."""
    path = checkpoint.checkpoint_path(run_dir, 1)
    checkpoint.save_atomic({"step": 1, "config": config, "overrides": list(overrides), "generator": {},
                            "format": checkpoint.CHECKPOINT_FORMAT, "run_id": "sender"}, path)
    return path


def test_the_payloads_run_code_when_trusted(tmp_path):
    """The payloads below are real: torch.load(weights_only=False) on the pickle creates the marker."""
    marker = tmp_path / "pwned"
    torch.load(evil_pickle(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("key,target", [
    ("model.generator", "torch.load"),
    ("dataset.source", "os.system"),
    ("loss.inner", "builtins.exec"),
])
def test_a_checkpoint_config_with_a_foreign_target_is_refused_by_eval_and_sample(tmp_path, capsys, key, target):
    marker = tmp_path / "pwned"
    evil = evil_pickle(tmp_path / "run" / "checkpoints" / "evil.pt", marker)
    payload = {"torch.load": {"f": str(evil), "weights_only": False}, "os.system": {"command": f"touch {marker}"},
               "builtins.exec": {"_args_": [f"open({str(marker)!r}, 'w')"]}}[target]
    config: dict = {"model": {"generator": {"_target_": "ganrun.models.dcgan.Generator"}}}
    node = config
    for part in key.split("."):
        node = node.setdefault(part, {})
    node.update({"_target_": target, **payload})
    crafted_checkpoint(tmp_path / "run", config)

    with pytest.raises(ConfigError) as refused:
        load_generator(str(tmp_path / "run"))
    assert f"{key}._target_='{target}'" in str(refused.value) and "step_00000001.pt" in str(refused.value)
    for tool, args in ((eval_cli.main, ["--no-download"]), (sample_cli.main, ["--num", "2", "--out", str(tmp_path / "s")])):
        with pytest.raises(SystemExit) as exit_info:
            tool([str(tmp_path / "run"), *args])
        assert exit_info.value.code == 1
        assert f"{key}._target_='{target}'" in capsys.readouterr().err
    assert not marker.exists()


def test_targets_nested_in_lists_are_found():
    with pytest.raises(ConfigError, match=r"augment\.ops\[1\]\._target_='subprocess.call'"):
        check_saved_config({"augment": {"ops": [{"_target_": "ganrun.augment.DiffAugment"},
                                                {"_target_": "subprocess.call"}]}}, "x.pt")


def test_every_config_ganrun_ships_passes_the_allowlist():
    """The allowlist is not too narrow: every option of every group, resolved as a checkpoint saves it, passes."""
    from omegaconf import OmegaConf

    for choice, cfg in every_shipped_config():
        check_saved_config(OmegaConf.to_container(cfg, resolve=True), choice)
    assert "torch.optim.Adam" in shipped_targets()["optimizer"]
    assert "ganrun.models.dcgan.Generator" in shipped_targets()["model"]
    for foreign in ("torch.optim.Optimizer.load_state_dict", "torch.hub.load", "ganrun.checkpoint.prune",
                    "ganrun.metrics.extractors.download", "torch.optim.AdamW"):
        with pytest.raises(ConfigError):
            check_saved_config({"optimizer": {"g": {"_target_": foreign}}}, "x")


def test_a_user_can_trust_their_own_classes_explicitly(monkeypatch):
    with pytest.raises(ConfigError, match="GANRUN_TRUSTED_TARGETS"):
        check_saved_config({"model": {"generator": {"_target_": "mylab.models.G"}}}, "x")
    monkeypatch.setenv("GANRUN_TRUSTED_TARGETS", "other.Thing, mylab.models.G")
    check_saved_config({"model": {"generator": {"_target_": "mylab.models.G"}}}, "x")


def test_inception_weights_with_the_wrong_hash_are_never_unpickled(tmp_path, data_root, monkeypatch):
    marker = tmp_path / "pwned"
    weights = evil_pickle(tmp_path / extractors.INCEPTION_FILE, marker)
    with pytest.raises(ConfigError) as refused:
        extractors.InceptionExtractor(weights, "cpu")
    message = str(refused.value)
    assert extractors.INCEPTION_SHA256 in message and str(weights) in message
    assert extractors.file_sha256(weights) in message

    # The same file in the torch hub cache, or named by a (checkpoint's) metrics.inception_weights: refused.
    monkeypatch.setenv("GANRUN_DATA", str(data_root))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    hub_file = evil_pickle(extractors.hub_inception_path(), marker)
    for extra in ([], [f"metrics.inception_weights={weights}"]):
        with initialize_config_module("ganrun.conf", version_base="1.3"):
            cfg = compose("config", overrides=[f"metrics.cache_dir={tmp_path / 'cache'}", "metrics.extractor=inception",
                                                "metrics.download=false", *extra])
        with pytest.raises(ConfigError, match=extractors.INCEPTION_SHA256):
            Evaluator(cfg.metrics, cfg.dataset, "cpu")
    assert hub_file.exists() and not marker.exists()


def test_a_bad_download_is_refused_and_removed_from_the_cache(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(extractors, "download", lambda url, destination, timeout=15.0: evil_pickle(destination, marker))
    with pytest.raises(ConfigError, match=extractors.INCEPTION_SHA256):
        extractors.find_inception_weights(None, allow_download=True)
    assert not extractors.hub_inception_path().exists() and not marker.exists()


def test_verified_weights_are_still_read_as_tensors_only(tmp_path):
    marker = tmp_path / "pwned"
    evil = evil_pickle(tmp_path / "evil.pt", marker)
    with extractors.weights_only_loads(), pytest.raises(pickle.UnpicklingError):
        torch.load(evil, weights_only=False)  # what torch-fidelity asks for
    assert not marker.exists()
    torch.load(evil_pickle(tmp_path / "evil2.pt", marker), weights_only=False)  # restored afterwards
    assert marker.exists()


@pytest.mark.parametrize("value", ["a/../../x", "../../../etc", "..", "/abs/path", "'a/../b'", ".hidden"])
def test_sweep_values_cannot_place_job_dirs_outside_the_sweep_dir(tmp_path, value):
    sweep = tmp_path / "sweep"
    name = job_dir_name(3, ["loss=hinge", f"+tag={value}"])
    job = (sweep / name).resolve()
    assert job.parent == sweep.resolve() and "/" not in name and ".." not in name
    assert name.startswith("3_+tag=") and name.endswith(",loss=hinge")
    assert job_dir_name(0, ["loss=hinge", "trainer.steps=10"]) == "0_loss=hinge,trainer.steps=10"  # safe: unchanged


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/abs", "a/b"])
def test_dataset_names_cannot_write_cache_files_outside_the_cache_dir(tmp_path, data_root, monkeypatch, name):
    monkeypatch.setenv("GANRUN_DATA", str(data_root))
    cache = tmp_path / "deep" / "cache"
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"metrics.cache_dir={cache}", "metrics.classifier_epochs=1",
                                            "metrics.num_real=50", "metrics.download=false", f"dataset.name='{name}'"])
    Evaluator(cfg.metrics, cfg.dataset, "cpu")
    written = [p for p in tmp_path.rglob("*.pt")]
    assert len(written) == 2 and all(p.resolve().parent.parent == cache.resolve() for p in written)
    assert safe_name("a/../../b") == "a_____b" and safe_name("..") == "_"
