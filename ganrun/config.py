"""Turning config nodes into objects, and checks on config values that Hydra's types cannot express."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from ganrun.errors import ConfigError


POSITIVE_TRAINER_KEYS = ("steps", "batch_size", "n_critic", "log_every", "sample_every", "ckpt_every",
                         "keep_ckpts", "num_samples")


def build(node, **kwargs):
    """hydra.utils.instantiate; a ConfigError raised inside a target surfaces as itself, not wrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        raise ConfigError(str(cause) if isinstance(cause, ConfigError) else str(exc)) from exc


def build_optimizer(node, params, key: str):
    """An optimizer from a `_partial_` config; torch's own checks (negative lr, betas) become ConfigErrors."""
    lr = node.get("lr")
    if isinstance(lr, (int, float)) and lr <= 0:
        raise ConfigError(f"{key}.lr={lr} must be positive.")
    try:
        return build(node, _convert_="all")(params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def reuse_fakes(trainer) -> bool:
    """trainer.reuse_fakes where the method allows it (`fakes_reusable`)."""
    return bool(trainer.reuse_fakes) and fakes_reusable(trainer.n_critic, trainer.g_batch_size, trainer.batch_size)


def fakes_reusable(n_critic, g_batch_size, batch_size) -> bool:
    """Whether G's step can reuse the D step's fakes: one D step per G step, on as many fakes as G's step
    (elsewhere trainer.reuse_fakes has no effect: G's step draws fresh fakes whatever its value)."""
    return n_critic == 1 and g_batch_size in (None, batch_size)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def check_trainer(trainer: DictConfig) -> None:
    if trainer.get("compile_mode") not in COMPILE_MODES:
        raise ConfigError(f"trainer.compile_mode={trainer.get('compile_mode')!r} is not one of torch.compile's modes: "
                          f"{', '.join(COMPILE_MODES)} (reduce-overhead replays CUDA graphs).")
    for key in POSITIVE_TRAINER_KEYS + (("g_batch_size",) if trainer.get("g_batch_size") is not None else ()):
        value = trainer[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"trainer.{key}={value!r} must be a positive integer.")
