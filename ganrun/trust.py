"""A checkpoint or run folder is data, never code.

Hydra's `instantiate` imports and calls whatever dotted name a config's `_target_` holds, and Hydra runs the
callbacks its `hydra.*` settings name. A config or override list read back from a file someone else wrote (a
shared checkpoint, a downloaded run folder) could therefore run anything: `{_target_: os.system, ...}`. So:

- `check_targets` walks a saved config and refuses every `_target_` outside an allowlist: the targets ganrun's own
  conf/ YAML uses, torch.optim optimizers and torch.optim.lr_scheduler schedulers (plus exact names or `prefix.`es
  a user lists in GANRUN_TRUSTED_TARGETS for their own classes);
- `check_saved_overrides` refuses replayed overrides that touch `hydra.*` (callbacks, launchers, search paths) or
  carry `_target_`-style keys in their key or value;
- `safe_name` keeps names that become file names (sweep job dirs, cache files) inside their folder.
"""

from __future__ import annotations

import functools
import importlib.resources
import inspect
import os
import re

from ganrun.errors import ConfigError

TRUSTED_TARGETS_ENV = "GANRUN_TRUSTED_TARGETS"
# Hydra's instantiation keys: a replayed override may not add or change any of them.
INSTANTIATION_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
_TARGET_LINE = re.compile(r"^\s*_target_:\s*['\"]?([\w.]+)['\"]?\s*(#.*)?$")


@functools.lru_cache(maxsize=1)
def conf_targets() -> frozenset[str]:
    """Every `_target_` in ganrun's packaged conf/ YAML (the set grows with the menu, with no list to maintain)."""
    found: set[str] = set()

    def walk(folder):
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry)
            elif entry.name.endswith(".yaml"):
                for line in entry.read_text().splitlines():
                    if match := _TARGET_LINE.match(line):
                        found.add(match.group(1))

    walk(importlib.resources.files("ganrun.conf"))
    return frozenset(found)


def _is_torch_optimizer_or_scheduler(target: str) -> bool:
    import torch.optim
    import torch.optim.lr_scheduler as schedulers

    module_name, _, name = target.rpartition(".")
    if module_name == "torch.optim":
        obj = vars(torch.optim).get(name)
        return inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
    if module_name == "torch.optim.lr_scheduler":
        obj = vars(schedulers).get(name)
        bases = tuple(b for b in (getattr(schedulers, "LRScheduler", None), schedulers.ReduceLROnPlateau) if b)
        return inspect.isclass(obj) and issubclass(obj, bases)
    return False


def _user_trusted(target: str) -> bool:
    for entry in filter(None, (e.strip() for e in os.environ.get(TRUSTED_TARGETS_ENV, "").split(","))):
        if target == entry or (entry.endswith(".") and target.startswith(entry)):
            return True
    return False


def allowed_target(target) -> bool:
    return isinstance(target, str) and (
        target in conf_targets() or _is_torch_optimizer_or_scheduler(target) or _user_trusted(target))


def check_targets(config, source: str) -> None:
    """Raise ConfigError naming the key path and the target when `config` (dict/list/DictConfig, as saved in
    `source`) holds a `_target_` that is not on the allowlist."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(config, (DictConfig, ListConfig)):
        config = OmegaConf.to_container(config, resolve=False)

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            if "_target_" in node and not allowed_target(node["_target_"]):
                key = f"{path}._target_" if path else "_target_"
                raise ConfigError(
                    f"{source}: refusing to build {key}={node['_target_']!r}: a saved config may only name ganrun's "
                    f"own classes and torch.optim optimizers/schedulers (a checkpoint is data, never code). If you "
                    f"wrote this class and trust the file, add it to {TRUSTED_TARGETS_ENV}."
                )
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(config, "")


def check_saved_overrides(overrides, source: str) -> list[str]:
    """The overrides saved with a run, refused (naming the override) when replaying them could run code:
    `hydra.*` settings and group choices (callbacks, launchers, search paths), Hydra's `_target_`-style keys
    in a key or a value, and command-line flags."""
    if not isinstance(overrides, (list, tuple)) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{source}: the saved overrides are not a list of strings ({type(overrides).__name__}).")
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~").strip()
        why = None
        if override.startswith("-") or "=" not in override:
            why = "it is not a key=value override"
        elif key == "hydra" or key.startswith(("hydra.", "hydra/")):
            why = "a saved run may not change Hydra's own settings (callbacks, launchers, search paths)"
        elif any(k in override for k in INSTANTIATION_KEYS):
            why = "a saved run may not choose what Hydra instantiates"
        if why:
            raise ConfigError(f"{source}: refusing the saved override {override!r}: {why}. "
                              "A run folder is data, never code; pass trusted overrides on the command line yourself.")
    return list(overrides)


_UNSAFE_CHARS = re.compile(r"[^\w.,=+@%:\-\[\]{}()' ]")


def safe_name(name: str) -> str:
    """`name` usable as one path component: separators and control characters become `_`, and the components
    `.`/`..` (or a leading dot) cannot walk out of the folder."""
    name = _UNSAFE_CHARS.sub("_", str(name))
    name = re.sub(r"\.{2,}", "_", name)
    if not name or name.startswith("."):
        name = "_" + name
    return name
