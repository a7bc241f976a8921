"""Resume: the checkpoint's saved config is the experiment, read as plain data.

`ganrun resume=RUN [key=value ...]` continues the experiment the checkpoint saved, fully resolved, whatever today's
defaults are: nothing is replayed, nothing in the file is resolved or instantiated beyond ganrun's own classes
(`ganrun.trust`). The command line may change the keys that do not change the experiment (`schema.RESUMABLE_KEYS`:
how long, how often, where, how it is measured); any other key it changes is refused in one message naming the
keys, or taken with resume_force=true and recorded in the run. Keys the typed sections gained since the checkpoint
was written take today's defaults, with a warning naming them.
"""

from __future__ import annotations

import copy
import logging

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganrun import distributed
from ganrun.errors import ConfigError
from ganrun.metrics import sizing
from ganrun.schedules import budget_steps
from ganrun.schema import RESUMABLE_KEYS, GanrunSchema
from ganrun.trust import check_saved_config

log = logging.getLogger(__name__)

ABSENT = "<absent>"
TYPED_SECTIONS = ("seed", "trainer", "metrics", "ema")  # their keys are the schema's: a missing one is a new key

# Values the shipped YAML derives from resumable keys (`total_steps: ${trainer.steps}`): a saved value equal to
# its derivation follows a change of what it derives from; one set by hand stays. trainer.steps comes first: with
# trainer.kimg it derives from the budget in images, and the others derive from it.
DERIVED = {
    "trainer.steps": lambda c: budget_steps(c["trainer"], distributed.world_size()),
    "scheduler.total_steps": lambda c: c["trainer"]["steps"],
    "augment.instance_noise.anneal_steps": lambda c: c["trainer"]["steps"],
    # in this order: each evaluation size follows the ones above it (`ganrun.metrics.sizing`)
    "metrics.num_samples": lambda c: sizing.num_samples(c["trainer"]["steps"]),
    "metrics.final_num_samples": lambda c: sizing.final_num_samples(c["trainer"]["steps"], c["metrics"]["num_samples"]),
    "metrics.num_real": lambda c: sizing.num_real(c["metrics"]["every"], c["metrics"]["num_samples"],
                                                  c["metrics"]["final_num_samples"]),
    "dataset.source.path": lambda c: c["dataset"]["path"],
}


def resumable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def flatten(tree, prefix: str = "") -> dict:
    """{'a.b.c': leaf} of a nested plain dict (an empty dict is a leaf of its own)."""
    if isinstance(tree, dict) and tree:
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def select(tree: dict, key: str):
    """The value at a dotted key (list items by index: optimizer.g.betas.1), or ABSENT."""
    for part in key.split("."):
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return ABSENT
    return tree


def assign(tree: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    if value is ABSENT:
        tree.pop(last, None)
    else:
        tree[last] = copy.deepcopy(value)


def given_keys(overrides) -> list[str]:
    """The config keys the command line sets (`a.b=1`, `+a.b=1`, `~a.b`, `group=option`), in Hydra's own reading."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.package is not None:
            raise ConfigError(f"{override.input_line}: a group@package override cannot change a resumed run.")
        keys.append(override.key_or_group.replace("/", "."))
    return keys


def resumed_config(saved: dict, cfg: DictConfig, overrides, source: str) -> tuple[DictConfig, list[str]]:
    """The config a resumed run trains with: the checkpoint's `saved` config (from `source`), checked as data, with
    the command line's changes (`cfg` composed from `overrides`) where allowed; and the forced changes made."""
    check_saved_config(saved, source)
    current = OmegaConf.to_container(cfg, resolve=True)
    merged = copy.deepcopy(saved)
    new_keys = [key for key in flatten({k: current[k] for k in TYPED_SECTIONS}) if select(merged, key) is ABSENT]
    for key in new_keys:
        assign(merged, key, select(current, key))
    if new_keys:
        log.warning("The checkpoint's config predates the keys %s: they take today's defaults.", ", ".join(new_keys))
    changes, explicit = [], set()
    for key in given_keys(overrides):
        if key in ("resume", "resume_force") or key == "hydra" or key.startswith("hydra."):
            continue
        if key.split(".")[0] not in current:
            raise ConfigError(f"resume={cfg.resume}: {key}=... cannot change a resumed run (a preset sets many "
                              "values of a new experiment): start a new run, or give the keys themselves.")
        explicit.add(key)
        changes += _changed_leaves(key, select(saved, key), select(current, key))
    if changes and not cfg.resume_force:
        raise ConfigError(
            f"resume={cfg.resume}: a resumed run continues the checkpoint's experiment; these overrides change it:\n  "
            + "\n  ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
            + "\nOn resume the command line may change only how long, how often, where and how the run is measured "
            f"(resumable keys: {', '.join(RESUMABLE_KEYS[2:])}). Leave these out, start a new run, or add "
            "resume_force=true (the change is recorded in the run).")
    for key, _, new in changes:
        assign(merged, key, new)
    for key in explicit:
        if resumable(key):
            assign(merged, key, select(current, key))
    for key, derive in DERIVED.items():
        if key not in explicit and select(saved, key) is not ABSENT and _derives(derive, saved, select(saved, key)):
            assign(merged, key, derive(merged))
    merged.update(resume=current["resume"], resume_force=current["resume_force"])
    merged["metrics"]["cache_dir"] = current["metrics"]["cache_dir"]  # this machine's cache, never the file's
    if "dataset.source.download" not in explicit and "download" in merged["dataset"].get("source", {}):
        merged["dataset"]["source"]["download"] = False  # a file never makes ganrun write where it says
    forced = [f"{k}: {old!r} -> {new!r}" for k, old, new in changes]
    if forced:
        log.warning("Resuming with a changed experiment (resume_force=true):\n  %s", "\n  ".join(forced))
    return typed(merged, source), forced


def _changed_leaves(key: str, old, new) -> list[tuple]:
    """(leaf, old, new) where the command line's `key` changes the experiment. Under a group choice (`dataset=x`)
    resumable leaves, DERIVED ones (they follow what they derive from) and the nulls an option leaves for ganrun to
    fill at start (folder sizes, class counts) are not changes; a key given itself is compared as given."""
    old_leaves, new_leaves = flatten(old, key), flatten(new, key)
    found = []
    for leaf in sorted(set(old_leaves) | set(new_leaves)):
        before, after = old_leaves.get(leaf, ABSENT), new_leaves.get(leaf, ABSENT)
        if before == after or resumable(leaf):
            continue
        if leaf != key and (after is None or leaf in DERIVED):
            continue
        found.append((leaf, before, after))
    return found


def _derives(derive, saved: dict, value) -> bool:
    try:
        return derive(saved) == value
    except (KeyError, TypeError):
        return False


def typed(config: dict, source: str) -> DictConfig:
    """`config` as a DictConfig checked against the schema's types (wrong types and unknown keys refused)."""
    try:
        return OmegaConf.merge(OmegaConf.structured(GanrunSchema), config)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or "?"
        raise ConfigError(f"{source}: the saved config does not fit ganrun's schema at {key}: "
                          f"{str(exc).splitlines()[0]}") from None


def refuse_changed_data(saved: str | None, current: str, resume: str, force: bool) -> None:
    """The same data must come back on resume: another content (files edited, added, removed), or a checkpoint
    that cannot show its data (no fingerprint), is refused unless forced."""
    if saved == current:
        return
    message = (f"resume={resume}: the training data changed since the checkpoint (content fingerprint {saved} -> "
               f"{current})." if saved else f"resume={resume}: the checkpoint holds no fingerprint of its training "
               "data, so nothing shows the data is the same.")
    if not force:
        raise ConfigError(message + " Restore the data, or add resume_force=true to continue on the new data.")
    log.warning("%s Continuing on the new data (resume_force=true).", message)
