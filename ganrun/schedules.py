"""Scheduled hyperparameters: one mechanism for every scalar a run may change over training.

A `Schedule` is a pure function of progress (generator steps, or kimg: thousands of real images shown to D over
all ranks): an optional linear warm-up from `warmup_start` to `start`, then constant, linear or cosine from
`start` to `end` at `length` (R3GAN's `cosine_decay_with_warmup`; SGDR's cosine, Loshchilov & Hutter 2017), and
`end` past it. A `Scheduled` joins a schedule to the scalar it drives: a setter on the object the config key
built (`setter_for`), so the value reaches the regularizer's `weight`, an optimizer's `lr` or `betas`, an
augmentation's `p` or `std`, the EMA's `half_life_kimg`. The run state applies every schedule at the progress of
the step about to run (host floats: no device sync); since values depend on progress alone, a resumed run is
exactly where an uninterrupted one is, with nothing of them in the checkpoint.

The `scheduler=` group (the learning rate of both players) is the same thing: `warmup_then_decay` is a
`Scheduled` on `optimizer.X.lr` whose schedule runs from 1 to `final_factor` in generator steps, times the
configured lr.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import OmegaConf

from ganrun.errors import ConfigError
from ganrun.schema import ScheduleSchema

SECTIONS = ("loss", "regularizer", "optimizer", "augment", "ema")  # where schedulable scalars live


def value_at(progress: float, kind: str, start: float, end: float, length: float, warmup: float = 0.0,
             warmup_start: float = 0.0) -> float:
    """The schedule's value after `progress` (steps or kimg): `warmup_start` -> `start` linearly over `warmup`,
    then `kind` from `start` (at `warmup`) to `end` (at `length`), `end` from there on (constant: `start`)."""
    if progress < warmup:
        return warmup_start + (start - warmup_start) * progress / warmup
    if kind == "constant":
        return start
    span = length - warmup  # >= 1 in steps (validated), any positive amount of kimg
    fraction = min(1.0, (progress - warmup) / span) if span > 0 else 1.0
    if kind == "linear":  # linear decay as in SNGAN's and BigGAN's code
        return start + (end - start) * fraction
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))  # SGDR's cosine


def lr_factor(step: int, decay: str, warmup_steps: int, total_steps: int, final_factor: float,
              warmup_start_factor: float) -> float:
    """Multiplier of the base lr after `step` generator steps (the scheduler group's schedule)."""
    return value_at(step, decay, 1.0, final_factor, total_steps, warmup_steps, warmup_start_factor)


@dataclass(frozen=True)
class Schedule:
    kind: str
    start: float
    end: float
    length: float  # in `unit`, warm-up included
    warmup: float = 0.0
    warmup_start: float = 0.0
    unit: str = "steps"

    def at(self, step: int, kimg: float) -> float:
        return value_at(step if self.unit == "steps" else kimg, self.kind, self.start, self.end, self.length,
                        self.warmup, self.warmup_start)


class Scheduled:
    """A schedule driving one scalar: `apply(step, kimg)` sets `scale * schedule.at(step, kimg)` and returns it."""

    def __init__(self, key: str, schedule: Schedule, setter: Callable[[float], None], scale: float = 1.0):
        self.key, self.schedule, self.setter, self.scale = key, schedule, setter, scale
        self.value = None  # the value last set

    def apply(self, step: int, kimg: float = 0.0) -> float:
        self.value = self.scale * self.schedule.at(step, kimg)
        self.setter(self.value)
        return self.value


def warmup_then_decay(optimizer, decay: str = "constant", warmup_steps: int = 0, total_steps: int = 1,
                      final_factor: float = 0.0, warmup_start_factor: float = 0.01) -> Scheduled:
    """The `scheduler=` group: lr ramps linearly from `warmup_start_factor * lr` to lr over `warmup_steps`, then
    stays (constant) or decays to `final_factor * lr` at `total_steps` (linear, or cosine as in Loshchilov &
    Hutter 2017), lr being the optimizer's configured one. Like torch's LambdaLR, the optimizer starts at the
    schedule's first value. The values were checked by ganrun.validate (choices and ranges in ganrun.schema)."""
    schedule = Schedule(decay, 1.0, final_factor, total_steps, warmup_steps, warmup_start_factor, "steps")
    scheduled = Scheduled("lr", schedule, param_group_setter(optimizer, "lr"), optimizer.param_groups[0]["lr"])
    scheduled.apply(0)
    return scheduled


def is_identity(scheduled: Scheduled) -> bool:
    """A scheduler-group schedule that never changes the lr (constant, no warm-up)."""
    return scheduled.schedule.kind == "constant" and not scheduled.schedule.warmup


# ---- config keys -> the objects' scalars
def param_group_setter(optimizer, name: str, index: int | None = None) -> Callable[[float], None]:
    def set_value(value: float) -> None:
        for group in optimizer.param_groups:
            if index is None:
                group[name] = value
            else:
                group[name] = tuple(value if i == index else v for i, v in enumerate(group[name]))
    return set_value


def attribute_setter(obj, name: str, key: str, where: str) -> Callable[[float], None]:
    """setattr(obj, name, value) for a float (or unset, None) attribute: the one the config value built. A
    floating 0-d tensor attribute (a probability kept on the device) is filled in place: no host sync. An object
    may refuse a schedule of one of its scalars (`refuse_schedule(name)` returns why: ADA's adaptive p)."""
    refusal = getattr(obj, "refuse_schedule", lambda _: None)(name)
    if refusal:
        raise ConfigError(f"{where}={key}: {refusal}.")
    current = getattr(obj, name, ConfigError)
    if isinstance(current, torch.Tensor) and current.dim() == 0 and current.is_floating_point():
        return lambda value: getattr(obj, name).fill_(value)
    if current is ConfigError or isinstance(current, bool) or not (current is None or isinstance(current, float)):
        kind = "has no such attribute" if current is ConfigError else f"holds {current!r}, not a real number"
        raise ConfigError(f"{where}={key}: {type(obj).__name__} {kind} ({name}); only real-valued scalars can "
                          "be scheduled.")
    return lambda value: setattr(obj, name, value)


def setter_for(key: str, objects: dict, where: str) -> Callable[[float], None]:
    """The setter of the scalar `key` names in this run's objects: `optimizer.g|d.NAME` (`betas.0|1`) in every
    param group; `regularizer.NAME.ATTR` and `loss.regularizers.NAME.ATTR` on the run's regularizer NAME;
    `loss.ATTR` on the loss; `augment.NAME.ATTR` on the transform NAME; `ema.ATTR` on the EMA. `objects` holds
    optimizer.g, optimizer.d, loss, regularizers, augment (name -> transform) and ema (None when off)."""
    parts = key.split(".")
    section = parts[0]
    if section == "optimizer" and len(parts) in (3, 4) and parts[1] in ("g", "d"):
        optimizer = objects[f"optimizer.{parts[1]}"]
        name, index = parts[2], int(parts[3]) if len(parts) == 4 and parts[3].isdigit() else None
        value = optimizer.param_groups[0].get(name, ConfigError)
        if index is not None:  # betas.1: a number of a pair; lr.0 names nothing
            value = value[index] if isinstance(value, (tuple, list)) and index < len(value) else ConfigError
        if len(parts) == 4 and index is None or isinstance(value, bool) or not isinstance(value, float):
            raise ConfigError(f"{where}={key}: {type(optimizer).__name__} has no real-valued hyperparameter there "
                              "(e.g. optimizer.g.lr, optimizer.g.betas.1).")
        return param_group_setter(optimizer, name, index)
    if section in ("regularizer", "loss") and len(parts) == (3 if section == "regularizer" else 4) \
            and (section == "regularizer" or parts[1] == "regularizers"):
        name = parts[-2]
        if name not in objects["regularizers"]:
            raise ConfigError(f"{where}={key}: the run has no regularizer {name} (a regularizer=... of the same "
                              "kind replaced it?).")
        return attribute_setter(objects["regularizers"][name], parts[-1], key, where)
    if section == "loss" and len(parts) == 2:
        return attribute_setter(objects["loss"], parts[1], key, where)
    if section == "augment" and len(parts) == 3 and parts[1] in objects["augment"]:
        return attribute_setter(objects["augment"][parts[1]], parts[2], key, where)
    if section == "ema" and len(parts) == 2:
        if objects["ema"] is None:
            raise ConfigError(f"{where}={key}: the EMA is off (ema.enabled=false).")
        return attribute_setter(objects["ema"], parts[1], key, where)
    raise ConfigError(f"{where}={key} is not a schedulable scalar of this run: schedules act on the objective "
                      "(loss.*, regularizer.NAME.*), the optimizers (optimizer.g|d.*), the augmentation "
                      "(augment.NAME.*) and the EMA (ema.*).")


class Schedules:
    """A run's scheduled scalars: the `scheduler=` group's lr schedules and the `schedules:` mapping's entries.
    `apply(step, kimg)` sets each for the step about to run; `logged()` are the named ones' current values."""

    def __init__(self, lr: list[Scheduled], named: dict[str, Scheduled]):
        self.lr, self.named = list(lr), dict(named)

    def apply(self, step: int, kimg: float) -> None:
        for scheduled in (*self.lr, *self.named.values()):
            scheduled.apply(step, kimg)

    def logged(self) -> dict[str, float]:
        return {f"schedule/{name}": scheduled.value for name, scheduled in self.named.items()}


def build_schedules(cfg, objects: dict, lr: list[Scheduled], budget_steps: int, budget_kimg: float) -> Schedules:
    """The run's schedules from `cfg.schedules` (entries checked by ganrun.validate: kinds, units, ranges, keys
    naming numbers of the config), each bound to its object here. A key the `scheduler=` group already schedules
    is refused unless that group leaves the lr alone (constant, no warm-up: the entry then replaces it). A
    `length` of null is the whole run in the schedule's unit (it follows a budget raised on resume)."""
    named, groups = {}, list(lr)  # the scheduler group's (G, D) schedules, by position even once one is replaced
    for name, given in (cfg.get("schedules") or {}).items():
        node = OmegaConf.merge(OmegaConf.structured(ScheduleSchema), given)  # the optional fields' defaults
        where = f"schedules.{name}.key"
        key = str(node.key)  # a key scheduled twice was refused by ganrun.validate
        if key in ("optimizer.g.lr", "optimizer.d.lr"):
            group = groups[0 if key == "optimizer.g.lr" else 1]
            if not is_identity(group):
                raise ConfigError(f"{where}={key} is scheduled twice: the scheduler group (scheduler.decay="
                                  f"{group.schedule.kind}) schedules it too; use scheduler=constant with it.")
            lr = [s for s in lr if s is not group]
        length = node.length if node.length is not None else (budget_steps if node.unit == "steps" else budget_kimg)
        if node.warmup and node.warmup >= length:
            raise ConfigError(f"schedules.{name}.warmup={node.warmup} must be below the schedule's length "
                              f"({length} {node.unit}).")
        end = node.start if node.end is None else node.end
        schedule = Schedule(node.kind, float(node.start), float(end), float(length), float(node.warmup),
                            float(node.warmup_start), node.unit)
        named[name] = Scheduled(key, schedule, setter_for(key, objects, where))
    return Schedules(lr, named)


# ---- budgets in images
def budget_steps(trainer, world: int) -> int:
    """Generator steps of the run: `trainer.steps`, or with `trainer.kimg` the fewest steps that show D that many
    thousand real images over all ranks (batch_size * n_critic * world per step)."""
    kimg = trainer.get("kimg")
    if kimg is None:
        return trainer["steps"]
    per_step = trainer["batch_size"] * trainer["n_critic"] * world
    return max(1, math.ceil(kimg * 1000 / per_step - 1e-9))  # the tolerance: 0.064 * 1000 is 64.00000000000001


def apply_kimg_budget(cfg, given: list[str], world: int) -> None:
    """With `trainer.kimg` set, `trainer.steps` is derived from it (so every length that follows trainer.steps
    follows the budget in images); both given on the command line is refused, naming them."""
    if cfg.trainer.get("kimg") is None:
        return
    if "trainer.steps" in given:
        raise ConfigError(f"trainer.steps={cfg.trainer.steps} and trainer.kimg={cfg.trainer.kimg}: give one budget "
                          "(trainer.kimg=null to count in steps).")
    cfg.trainer.steps = budget_steps(cfg.trainer, world)
