"""A checkpoint or run folder is data, never code.

Hydra's `instantiate` imports and calls whatever dotted name a config's `_target_` holds, and OmegaConf resolves
`${...}` interpolations (`${oc.env:SECRET}`, `${oc.create:...}`, `${oc.decode:...}`) when a value is read. A
config read back from a file someone else wrote (a shared checkpoint, a downloaded run folder) could therefore run
anything or leak the environment. So `check_saved_config` refuses, naming the key:

- any string holding `${` (nothing from a file is ever resolved) and any value that is not plain data;
- a `_target_` of config group G that none of ganrun's shipped options of G uses (read from the packaged conf/
  YAML, so the set grows with the menu), except exact class names a user lists in GANRUN_TRUSTED_TARGETS.

`safe_name` keeps names that become file names (sweep job dirs, cache files) inside their folder.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re

from ganrun.errors import ConfigError

TRUSTED_TARGETS_ENV = "GANRUN_TRUSTED_TARGETS"
PLAIN_SCALARS = (str, int, float, bool, type(None))
MAPPINGS = ("dataset", "model", "optimizer", "trainer", "metrics", "ema")  # sections read before the schema check


@functools.lru_cache(maxsize=1)
def shipped_targets() -> dict[str, frozenset[str]]:
    """{group: every `_target_` that ganrun's shipped options place in that group}. A `# @package _global_` file
    (experiment presets, loss=wgan_gp) places its top-level keys' targets in the groups they name."""
    import yaml

    found: dict[str, set[str]] = {}
    conf = importlib.resources.files("ganrun.conf")
    for folder in (entry for entry in conf.iterdir() if entry.is_dir() and entry.name != "hydra"):
        for option in (f for f in folder.iterdir() if f.name.endswith(".yaml")):
            text = option.read_text()
            node = yaml.safe_load(text) or {}
            placed = node if "@package _global_" in text else {folder.name: node}
            for group, subtree in placed.items():
                if group != "hydra":  # Hydra's own settings are never part of a saved config
                    found.setdefault(group, set()).update(_targets_in(subtree))
    return {group: frozenset(targets) for group, targets in found.items()}


def _targets_in(node) -> set[str]:
    if isinstance(node, dict):
        own = {node["_target_"]} if isinstance(node.get("_target_"), str) else set()
        return own.union(*(_targets_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_targets_in(v) for v in node))
    return set()


def user_trusted() -> frozenset[str]:
    """Exact dotted class names the user trusts (GANRUN_TRUSTED_TARGETS=a.B,c.D): never prefixes, since a
    package prefix would also trust every module that package imports (`mymodels.torch.load`)."""
    return frozenset(e.strip() for e in os.environ.get(TRUSTED_TARGETS_ENV, "").split(",") if e.strip())


def allowed_target(group: str, target) -> bool:
    return isinstance(target, str) and (target in shipped_targets().get(group, ()) or target in user_trusted())


def check_saved_config(config, source: str) -> None:
    """Raise ConfigError naming the key when `config` (a plain dict read from `source`) is not plain data: an
    interpolation, a non-plain value, or a `_target_` outside the allowlist of its group."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the saved config is not a mapping ({type(config).__name__}).")

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if not isinstance(key, str) or "${" in key:
                    raise ConfigError(f"{source}: refusing the saved key {where!r}: keys are plain names.")
                if key == "_target_" and not allowed_target(where.split(".")[0], value):
                    raise ConfigError(
                        f"{source}: refusing to build {where}={value!r}: a saved config may only name the classes of "
                        f"ganrun's own {where.split('.')[0]} options (a checkpoint is data, never code). If you wrote "
                        f"this class and trust the file, add its exact name to {TRUSTED_TARGETS_ENV}.")
                walk(value, where)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif not isinstance(node, PLAIN_SCALARS):
            raise ConfigError(f"{source}: refusing the saved value of {path}: {type(node).__name__} is not plain data.")
        elif isinstance(node, str) and "${" in node:
            raise ConfigError(f"{source}: refusing the saved value {path}={node!r}: a saved config is resolved data; "
                              "interpolations (${...}) from a file are never resolved.")

    walk(config, "")
    sections = {name: config.get(name, {}) for name in MAPPINGS}
    sections["dataset.source"] = sections["dataset"].get("source", {}) if isinstance(sections["dataset"], dict) else {}
    for name, node in sections.items():
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: refusing the saved {name}: {type(node).__name__}, where ganrun saves a "
                              "mapping.")


_UNSAFE_CHARS = re.compile(r"[^\w.,=+@%:\-\[\]{}()' ]")


def safe_name(name: str) -> str:
    """`name` usable as one path component: separators and control characters become `_`, and the components
    `.`/`..` (or a leading dot) cannot walk out of the folder."""
    name = _UNSAFE_CHARS.sub("_", str(name))
    name = re.sub(r"\.{2,}", "_", name)
    if not name or name.startswith("."):
        name = "_" + name
    return name
