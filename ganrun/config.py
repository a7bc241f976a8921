"""Turning config nodes into objects (the values were checked before, by ganrun.validate)."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from ganrun.errors import ConfigError


def build(node, **kwargs):
    """hydra.utils.instantiate; a ConfigError raised inside a target surfaces as itself, not wrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        raise ConfigError(str(cause) if isinstance(cause, ConfigError) else str(exc)) from exc


def build_optimizer(node, params, key: str):
    """An optimizer from a `_partial_` config; torch's own checks (of optimizers ganrun has no schema for) become
    ConfigErrors."""
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

