"""HParams: options shown as typed, final-value cards sorted after the training curves (read back from events)."""

import signal

import pytest
from helpers import events, train_in_process
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from tensorboard.plugins.hparams import plugin_data_pb2

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun.errors import TrainingInterrupted
from ganrun.reporter import Reporter
from ganrun.sweep.hparams import METRIC_PREFIX, group_choices


def test_choices_come_from_hydra_including_presets():
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=["experiment=wgan"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        choices = group_choices([])
    finally:
        HydraConfig.instance().cfg = None
    # the preset's own defaults list picked these; the config only holds class names (Wasserstein, RMSprop)
    assert choices["loss"] == "wgan" and choices["optimizer"] == "rmsprop" and choices["experiment"] == "wgan"
    assert choices["dataset"] == "fashion_mnist" and "hydra/help" not in choices


def test_hparams_show_typed_options_and_sort_after_losses(tmp_path, data_root):
    train_in_process(tmp_path, data_root, "loss=hinge", "optimizer=rmsprop", steps=2)
    acc = events(tmp_path / "run")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["loss"].string_value == "hinge" and hparams["optimizer"].string_value == "rmsprop"
    assert hparams["model"].string_value == "dcgan"

    tags = acc.Tags()["scalars"]
    final = [t for t in tags if t.startswith(METRIC_PREFIX + "/")]
    curves = [t for t in tags if not t.startswith(METRIC_PREFIX + "/")]
    assert f"{METRIC_PREFIX}/loss/D" in final and "loss/D" in curves and not any(t.startswith("hparams/") for t in tags)
    # TensorBoard groups cards by the part before the first "/"; the final values' group comes last,
    # whether sorted by code point or case-insensitively
    for key in (str, str.casefold):
        groups = sorted({t.split("/")[0] for t in tags}, key=key)
        assert groups[-1] == METRIC_PREFIX and groups.index("loss") < groups.index(METRIC_PREFIX)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    assert f"{METRIC_PREFIX}/loss/D" in {m.name.tag for m in experiment.metric_infos}


def session_hparams(run_dir) -> dict:
    """The hyperparameters TensorBoard's HParams dashboard lists for a run (its session start info)."""
    try:
        content = events(run_dir).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    except KeyError:  # no hparams written
        return {}
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.string_value or v.number_value for k, v in start.hparams.items()}


def test_an_interrupted_run_is_in_the_hparams_dashboard(tmp_path, data_root, monkeypatch):
    report = Reporter.report

    def ctrl_c_after_the_first_step(self):
        signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, handled by the run's own signal handler
        return report(self)

    monkeypatch.setattr(Reporter, "report", ctrl_c_after_the_first_step)
    with pytest.raises(TrainingInterrupted):
        train_in_process(tmp_path, data_root, "loss=hinge", steps=5)
    hparams = session_hparams(tmp_path / "run")
    assert hparams.get("loss") == "hinge" and hparams.get("trainer.steps") == 5, hparams
    assert "loss/D" in events(tmp_path / "run").Tags()["scalars"]  # with the curves it logged
