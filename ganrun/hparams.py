"""Hyperparameters of a run for TensorBoard's HParams dashboard, written into the run's own event file.

`SummaryWriter.add_hparams` would open a new sub-run (a timestamped folder) per call; writing the three
hparams summaries through the run's own writer keeps one run per job, so sweeps compare cleanly.
"""

from __future__ import annotations

from torch.utils.tensorboard.summary import hparams as hparams_summaries


def _scalar(value):
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def run_hparams(cfg, overrides) -> dict:
    """Group choices, the usual knobs, and every key overridden on the command line (the swept ones)."""
    hp = {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "loss": cfg.loss._target_.rsplit(".", 1)[-1],
        "regularizer": ",".join(sorted(cfg.regularizer or {})) or "none",
        "optimizer": cfg.optimizer.g._target_.rsplit(".", 1)[-1],
        "seed": cfg.seed,
        "trainer.steps": cfg.trainer.steps,
        "trainer.batch_size": cfg.trainer.batch_size,
        "trainer.n_critic": cfg.trainer.n_critic,
    }
    for net in ("g", "d"):
        for key in ("lr", "betas"):
            if key in cfg.optimizer[net]:
                hp[f"optimizer.{net}.{key}"] = _scalar(cfg.optimizer[net][key])
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if not key.startswith(("hydra.", "resume")):
            hp.setdefault(key, value)
    return {k: _scalar(v) for k, v in hp.items()}


def write_hparams(writer, hparams: dict, metrics: dict, step: int) -> None:
    """The HParams summaries plus one `hparams/<metric>` scalar per final metric, in `writer`'s own run."""
    metric_values = {f"hparams/{name}": value for name, value in metrics.items() if value is not None}
    for summary in hparams_summaries(hparams, metric_values):
        writer.file_writer.add_summary(summary)
    for tag, value in metric_values.items():
        writer.add_scalar(tag, value, step)
