"""Hyperparameters of a run for TensorBoard's HParams dashboard, written into the run's own event file.

`SummaryWriter.add_hparams` would open a new sub-run (a timestamped folder) per call; writing the three
hparams summaries through the run's own writer keeps one run per job, so sweeps compare cleanly.

Group choices are shown as the user typed them (`loss=ns`, not the class `NonSaturating`): Hydra's
`runtime.choices` when Hydra composed the run, else the group overrides, else the config's own names.
The hyperparameters are written when the run starts (an interrupted run is listed too), the final metrics at its
end; the final metrics the dashboard needs as scalars go under METRIC_PREFIX, a group that sorts after the
training curves (loss/, metrics/, scores/, throughput/) in TensorBoard's scalar tabs.
"""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from torch.utils.tensorboard.summary import hparams as hparams_summaries

METRIC_PREFIX = "z_hparams"  # "hparams/" sorted above "loss/": the final values would be the first cards shown
GROUPS = ("dataset", "model", "loss", "regularizer", "optimizer", "scheduler", "augment", "experiment")


def _scalar(value):
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def group_choices(overrides=()) -> dict:
    """{group: option} as selected on the command line or by the defaults list (Hydra's runtime.choices)."""
    choices = {}
    if HydraConfig.initialized():
        choices = {k: v for k, v in HydraConfig.get().runtime.choices.items() if k in GROUPS and v is not None}
    for override in overrides:  # compose API (no HydraConfig): the groups given as overrides
        key, _, value = override.lstrip("+~").partition("=")
        if key in GROUPS:
            choices.setdefault(key, value)
    return choices


def run_hparams(cfg, overrides, choices: dict | None = None) -> dict:
    """Group choices, the usual knobs, and every key overridden on the command line (the swept ones)."""
    chosen = group_choices(overrides) if choices is None else choices
    hp = {
        "dataset": chosen.get("dataset", cfg.dataset.name),
        "model": chosen.get("model", cfg.model.name),
        "loss": chosen.get("loss", cfg.loss._target_.rsplit(".", 1)[-1]),
        "regularizer": ",".join(sorted(cfg.regularizer or {})) or "none",
        "optimizer": chosen.get("optimizer", cfg.optimizer.g._target_.rsplit(".", 1)[-1]),
        "seed": cfg.seed,
        "trainer.steps": cfg.trainer.steps,
        "trainer.batch_size": cfg.trainer.batch_size,
        "trainer.n_critic": cfg.trainer.n_critic,
    }
    for group in ("scheduler", "augment", "experiment"):
        if group in chosen:
            hp[group] = chosen[group]
    for net in ("g", "d"):
        for key in ("lr", "betas"):
            if key in cfg.optimizer[net]:
                hp[f"optimizer.{net}.{key}"] = _scalar(cfg.optimizer[net][key])
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if not key.startswith(("hydra.", "resume")):
            hp.setdefault(key, value)
    return {k: _scalar(v) for k, v in hp.items()}


def write_session_start(writer, hparams: dict) -> None:
    """The hyperparameters alone, written when the run starts: a run stopped before its end (Ctrl-C, preemption, a
    crash) is still a row of the HParams dashboard, with the curves it logged; `write_hparams` adds the rest."""
    _, session_start, _ = hparams_summaries(hparams, {})
    writer.file_writer.add_summary(session_start)


def write_hparams(writer, hparams: dict, metrics: dict, step: int) -> None:
    """The HParams summaries plus one `z_hparams/<metric>` scalar per final metric, in `writer`'s own run."""
    metric_values = {f"{METRIC_PREFIX}/{name}": value for name, value in metrics.items() if value is not None}
    for summary in hparams_summaries(hparams, metric_values):
        writer.file_writer.add_summary(summary)
    for tag, value in metric_values.items():
        writer.add_scalar(tag, value, step)
