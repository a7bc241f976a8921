"""One check of a config before anything is built: `validate(cfg)`, on the composed config (ganrun) or on the config
saved in a checkpoint (the companion commands).

It types the whole config by ganrun.schema (unknown keys, wrong types), checks every field's rules there (ranges,
choices, finite floats), then the rules that join several fields (below). Each bad value is refused with one
ConfigError line naming the key, instead of a silent wrong run, a NaN, a traceback or a crash mid-run.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from ganrun import tasks
from ganrun.errors import ConfigError
from ganrun.resume import ABSENT, select
from ganrun.schema import GROUPS, TARGET_SCHEMAS, ExperimentSchema, choice_values


def validate(cfg: DictConfig | dict) -> None:
    """Refuse a bad config before training, naming the key. Call it on the composed config first thing."""
    if isinstance(cfg, DictConfig):
        try:
            plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{exc.full_key or 'the config'}: {str(exc).splitlines()[0]}") from exc
    else:
        plain = cfg
    plain = {k: v for k, v in plain.items() if k != "hydra"}  # present with compose(return_hydra_config=True)
    check_node(plain, ExperimentSchema, "")
    metrics = plain.get("metrics") or {}  # a checkpoint's saved config may predate a key: its rules then skip
    if all(k in metrics for k in ("every", "final_num_samples", "num_samples", "pr_samples", "num_real_kept",
                                  "num_real", "pr_k")):
        _final_samples(metrics)
        _precision_recall_neighbours(metrics)
    _warmup_within_the_run(plain.get("scheduler"))
    _toy_layout((plain.get("dataset") or {}).get("source"))
    _pairs_have_partners(plain.get("loss"), plain.get("trainer") or {})
    _schedule_keys(plain)
    _inpaint_sizes((plain.get("task") or {}).get("degradation"))
    tasks.refuse_options(plain)


# ---- every field by its schema
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
               dict: "a mapping"}


def check_node(node, schema, key: str) -> None:
    """Type `node` (a plain dict) by the dataclass `schema`, check every field's rules, then the nested nodes."""
    if not isinstance(node, dict):
        raise ConfigError(f"{key or 'the config'}={node!r} must be a mapping with the keys of {schema.__name__}.")
    hints = typing.get_type_hints(schema)
    shallow = {k: v for k, v in node.items()  # nested: checked below
               if not dataclasses.is_dataclass(hints.get(k)) and _entry_schema(hints.get(k)) is None}
    try:
        OmegaConf.merge(OmegaConf.structured(schema), shallow)
    except ConfigKeyError as exc:
        unknown = f"{key}.{exc.full_key}" if key else exc.full_key
        fields = ", ".join(f.name for f in dataclasses.fields(schema))
        raise ConfigError(f"unknown key {unknown}: {key or 'the top level'} has {fields}.") from exc
    except OmegaConfBaseException as exc:
        raise ConfigError(_type_error(exc, node, schema, key)) from exc
    # the top level's own keys first: a group value interpolating one of them (${trainer.steps}) names it
    for f in sorted(dataclasses.fields(schema), key=lambda f: not key and f.name in GROUPS):
        if f.name not in node or node[f.name] is None or node[f.name] == "???":
            continue
        name, value = f"{key}.{f.name}" if key else f.name, node[f.name]
        check_value(name, value, f.metadata)
        if dataclasses.is_dataclass(hints[f.name]):
            check_node(value, hints[f.name], name)
        elif isinstance(value, dict) and "_target_" in value:
            _check_target(value, name)
        elif isinstance(value, dict) and _entry_schema(hints[f.name]) is not None:  # schedules
            for entry, sub in value.items():
                check_node(sub, _entry_schema(hints[f.name]), f"{name}.{entry}")
        elif isinstance(value, dict) and _is_named_mapping(hints[f.name]):  # regularizers, augmentations
            for option, sub in value.items():
                if not (isinstance(sub, dict) and "_target_" in sub):
                    raise ConfigError(f"{name}.{option}={sub!r} is not an option of {name} (a node with a _target_).")
                _check_target(sub, f"{name}.{option}")


def _entry_schema(hint):
    """The dataclass of a `Dict[str, Dataclass]` field's entries (the schedules), else None."""
    args = typing.get_args(hint) if typing.get_origin(hint) is dict else ()
    return args[1] if len(args) == 2 and dataclasses.is_dataclass(args[1]) else None


def _is_named_mapping(hint) -> bool:
    return any(typing.get_origin(a) is dict for a in (hint, *typing.get_args(hint)))


def _check_target(node: dict, key: str) -> None:
    schema = TARGET_SCHEMAS.get(node["_target_"])
    if schema is not None:
        check_node(node, schema, key)


def _type_error(exc: OmegaConfBaseException, node: dict, schema, key: str) -> str:
    path = str(exc.full_key or "")
    field_name = re.split(r"[.\[]", path)[0]
    value = node.get(field_name, "?")
    hint = typing.get_type_hints(schema).get(field_name)
    base = next((t for t in (bool, int, float, str, list, dict) if t in (hint, *typing.get_args(hint))
                 or typing.get_origin(hint) is t or any(typing.get_origin(a) is t for a in typing.get_args(hint))),
                None)
    wanted = f"must be {_TYPE_WORDS[base]}" if base else "has the wrong type"
    if base is list:
        item = next(iter(typing.get_args(next((a for a in (hint, *typing.get_args(hint))
                                                if typing.get_origin(a) is list), hint))), None)
        wanted += f" of {_TYPE_WORDS.get(item, 'values').split(' ', 1)[-1]}s" if item in _TYPE_WORDS else ""
    return f"{key + '.' if key else ''}{field_name}={value!r} {wanted}."


def check_value(name: str, value, rules: dict) -> None:
    """One value against its field's rules (ganrun.schema.spec); floats are always checked to be finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={value} must be a finite number.")
    if isinstance(value, list):
        low, high = rules.get("length", (None, None))
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            size = f"{low}" if low == high else f"at least {low}" if high is None else f"{low} to {high}"
            raise ConfigError(f"{name}={value!r} must have {size} element{'s' if low != 1 or high else ''}.")
        for i, item in enumerate(value):
            check_value(f"{name}[{i}]", item, rules.get("each", {}))
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    for rule, holds, words in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                               ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        if rule in rules and number and not holds(value, rules[rule]):
            raise ConfigError(f"{name}={value} must be {words} {rules[rule]}.")
    if "choices" in rules and value not in choice_values(rules["choices"]):
        raise ConfigError(f"{name}={value!r} is not one of {_listed(choice_values(rules['choices']))}.")
    if "items" in rules:
        allowed = choice_values(rules["items"])
        unknown = [item for item in (i.strip() for i in str(value).split(",")) if item and item not in allowed]
        if unknown:
            raise ConfigError(f"{name}={value!r}: unknown {', '.join(unknown)}; choose from {_listed(allowed)}.")
    if "pattern" in rules and not re.fullmatch(rules["pattern"], str(value)):
        raise ConfigError(f"{name}={value!r} does not match {rules['pattern']}.")
    if rules.get("nonempty") and isinstance(value, str) and not value.strip():
        raise ConfigError(f"{name} is empty: give a value (an empty string is not the current directory).")


def _listed(values) -> str:
    return " | ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)


# ---- rules that join several fields
def _final_samples(metrics: dict) -> None:
    if metrics["final_num_samples"] == 1:
        raise ConfigError("metrics.final_num_samples=1 must be 0 (no final report) or >= 2.")


def _precision_recall_neighbours(metrics: dict) -> None:
    """precision/recall use min(pr_samples, num_real_kept, generated) points per side: k must stay below it."""
    if metrics["every"] == 0 and metrics["final_num_samples"] == 0:
        return
    sides = {f"metrics.{k}": metrics[k] for k in ("pr_samples", "num_real_kept", "num_real")}
    if metrics["every"] > 0:
        sides["metrics.num_samples"] = metrics["num_samples"]
    if metrics["final_num_samples"] > 0:
        sides["metrics.final_num_samples"] = metrics["final_num_samples"]
    smallest = min(sides, key=sides.get)
    if metrics["pr_k"] >= sides[smallest]:
        raise ConfigError(f"metrics.pr_k={metrics['pr_k']} must be below {smallest}={sides[smallest]} (the k-NN radius "
                          "of precision/recall needs k + 1 points).")


def _warmup_within_the_run(scheduler) -> None:
    if isinstance(scheduler, dict) and scheduler.get("warmup_steps") and "total_steps" in scheduler:
        if scheduler["warmup_steps"] >= scheduler["total_steps"]:
            raise ConfigError(f"scheduler.warmup_steps={scheduler['warmup_steps']} must be below "
                              f"trainer.steps={scheduler['total_steps']} (scheduler.total_steps).")


def _toy_layout(source) -> None:
    if isinstance(source, dict) and source.get("layout") == "grid" and isinstance(source.get("num_modes"), int) \
            and math.isqrt(source["num_modes"]) ** 2 != source["num_modes"]:
        raise ConfigError(f"dataset.source.num_modes={source['num_modes']} must be a square number with "
                          "dataset.source.layout=grid.")


PAIRING_LOSSES = {"ganrun.losses.RelativisticPairing": "rpgan"}  # each fake is compared with one real of its own


def _pairs_have_partners(loss, trainer: dict) -> None:
    if isinstance(loss, dict) and loss.get("_target_") in PAIRING_LOSSES \
            and trainer.get("g_batch_size") not in (None, trainer.get("batch_size")):
        raise ConfigError(f"trainer.g_batch_size={trainer['g_batch_size']} must equal trainer.batch_size="
                          f"{trainer.get('batch_size')} (or be null) with loss={PAIRING_LOSSES[loss['_target_']]}: "
                          "it pairs each of G's fakes with one real sample.")


def _schedule_keys(plain: dict) -> None:
    """Each schedule's key names a number (or an unset value) of this run's config, in a schedulable section,
    once; its warm-up ends within its length. Whether the built object has that scalar is checked when the run
    is built (ganrun.schedules.setter_for), before training too."""
    from ganrun.schedules import SECTIONS

    seen = {}
    for name, node in (plain.get("schedules") or {}).items():
        missing = [field for field in ("key", "kind", "start") if node.get(field) is None]
        if missing:
            raise ConfigError(f"schedules.{name}.{missing[0]} is missing: a schedule needs key, kind and start "
                              "(e.g. {key:regularizer.r1.weight,kind:cosine,start:10,end:1}).")
        where, key = f"schedules.{name}.key", node["key"]
        if key.split(".")[0] not in SECTIONS:
            raise ConfigError(f"{where}={key}: only the objective (loss.*, regularizer.*), the optimizers "
                              "(optimizer.g|d.*), the augmentation (augment.*) and the EMA (ema.*) can be scheduled.")
        value = select(plain, key)
        if value is ABSENT or isinstance(value, (bool, str, list, dict)):
            raise ConfigError(f"{where}={key} names " + ("no value of this run's config." if value is ABSENT else
                                                         f"{value!r}, not a number."))
        if key in seen:
            raise ConfigError(f"{where}={key} is scheduled twice (schedules.{seen[key]} too).")
        seen[key] = name
        if node.get("length") is not None and node.get("warmup", 0) >= node["length"]:
            raise ConfigError(f"schedules.{name}.warmup={node['warmup']} must be below schedules.{name}.length="
                              f"{node['length']}.")


def _inpaint_sizes(degradation) -> None:
    if isinstance(degradation, dict) and isinstance(degradation.get("min_size"), (int, float)) \
            and isinstance(degradation.get("max_size"), (int, float)) \
            and degradation["min_size"] > degradation["max_size"]:
        raise ConfigError(f"task.degradation.min_size={degradation['min_size']} must be <= "
                          f"task.degradation.max_size={degradation['max_size']}.")
