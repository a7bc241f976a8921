"""Checkpoints that survive crashes: atomic writes, newest-loadable lookup, and a config check on resume.

A checkpoint is a plain dict (tensors, numbers, strings, the config as a plain dict) loadable with
`torch.load(weights_only=True)`. It holds everything a run needs to continue exactly: model and optimizer
states, the step, the data stream position, RNG states and the fixed sampling noise.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from pathlib import Path

from ganrun.errors import ConfigError, StorageError
from ganrun.rundir import hydra_value
from ganrun.trust import check_targets

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
BEST_FILE = "best.pt"  # the checkpoint with the lowest FID so far (never pruned)
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")

# Config keys a resumed run may change: how long to train, how to log, where data and compute live.
RESUMABLE_KEYS = (
    "resume", "resume_force", "metrics",
    "trainer.steps", "trainer.log_every", "trainer.sample_every", "trainer.ckpt_every", "trainer.keep_ckpts",
    "trainer.num_samples", "trainer.device", "trainer.num_workers", "trainer.sync_bn", "trainer.amp", "trainer.deterministic",
    # memory layout and compilation: the same maths and parameter names
    "trainer.channels_last", "trainer.compile", "trainer.compile_mode",
    "dataset.in_memory", "dataset.path", "dataset.source.root", "dataset.source.path", "dataset.source.download",
    # lengths that follow trainer.steps by default: extending a run stretches them
    "scheduler.total_steps", "augment.instance_noise.anneal_steps",
)

# Keys added to the config after checkpoints were first written, each with the value that behaves as ganrun did
# before the key existed: an older checkpoint without the key counts as having that value.
VALUE_BEFORE_KEY_EXISTED = {"trainer.reuse_fakes": False, "dataset.resize": "resize"}


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_atomic(state: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename over the target.

    A crash at any moment leaves either the old file or the complete new one, never a partial file.
    """
    import torch  # here, not at the top: the CLI's resolvers import this module for `ganrun --help`

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # disk full (ENOSPC), quota, permissions: name the file, keep the older ones
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}. The files written before it are intact; free space (or "
            "fix the permissions) and resume."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def step_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, newest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def prune(run_dir: Path, keep: int) -> None:
    """Keep the newest `keep` step checkpoints; drop temporaries left by a process killed mid-write."""
    for old in step_checkpoints(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    for stale in (Path(run_dir) / CHECKPOINT_DIR).glob(".*.tmp-*"):
        if not stale.name.endswith(f".tmp-{os.getpid()}"):
            stale.unlink(missing_ok=True)


def last_good_note(run_dir: Path) -> str:
    """Where a stopped run's last good state is, for error messages: the newest checkpoint, or that none exists."""
    found = step_checkpoints(run_dir)
    if found:
        return f"the last good checkpoint is {found[0]}."
    return f"no checkpoint was written before that (the first one is due at trainer.ckpt_every) in {run_dir}."


def load(path: Path, map_location="cpu") -> dict:
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def load_for_resume(resume: str, named: str = "resume=") -> tuple[dict, Path]:
    """Load `resume` (a checkpoint file, or a run dir whose newest loadable checkpoint is taken); errors name it
    as `named` gave it (`resume=` on ganrun's command line, `checkpoint ` for the companion commands)."""
    target = Path(resume).expanduser().resolve()
    if target.is_file():
        candidates = [target]
    elif target.is_dir():
        candidates = step_checkpoints(target)
        if not candidates:
            raise ConfigError(f"{named}{resume}: no checkpoints in {target / CHECKPOINT_DIR}.")
    else:
        raise ConfigError(f"{named}{resume}: no such checkpoint file or run dir.")
    for path in candidates:
        try:
            state = load(path)
        except Exception as exc:  # truncated or corrupt file: say so and try the next older one
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            log.warning("Skipping checkpoint %s: it cannot be loaded (%s: %s)", path, type(exc).__name__, reason)
            continue
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):  # torch.save(G.state_dict())
            log.warning("Skipping checkpoint %s: it is not a ganrun checkpoint (it holds no saved config)", path)
            continue
        state["config"] = moved_targets(state["config"])
        return state, path
    raise ConfigError(f"{named}{resume}: none of the checkpoints could be loaded ({len(candidates)} tried).")


# Modules that moved inside ganrun: a checkpoint written before the move names the old path of the same class.
MOVED_MODULES = {"ganrun.datasets.": "ganrun.data.sources.", "ganrun.toy.": "ganrun.data.toy."}


def moved_targets(config):
    """The saved config with `_target_`s of moved ganrun modules renamed (same classes, new module paths)."""
    if isinstance(config, dict):
        return {k: (_renamed(v) if k == "_target_" else moved_targets(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [moved_targets(v) for v in config]
    return config


def _renamed(target):
    for old, new in MOVED_MODULES.items():
        if isinstance(target, str) and target.startswith(old):
            return new + target[len(old):]
    return target


RUN_ID_FILE = "run_id"


def claim_run_dir(run_dir: Path, run_id: str) -> None:
    """Mark `run_dir` as run `run_id`'s (a checkpoint's id must match it to be resumed there)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / RUN_ID_FILE).write_text(run_id + "\n")


def refuse_foreign_checkpoint(state: dict, found: Path, run_dir: Path) -> None:
    """A checkpoint of another run (copied into this run dir) is never adopted over the dir's own config,
    metrics and checkpoints."""
    mark = Path(run_dir) / RUN_ID_FILE
    owner = mark.read_text().strip() if mark.is_file() else None
    if owner and state.get("run_id") and state["run_id"] != owner:
        raise ConfigError(
            f"{found} belongs to another run (run id {state['run_id']}) than the run dir {run_dir} "
            f"(run id {owner}, in {mark}): it is not adopted. Resume it from its own run dir, or copy it into "
            "an empty dir and resume from there."
        )


def refuse_changed_data(saved: str | None, current: str, resume: str, force: bool) -> None:
    """The same data must come back on resume: another content (files edited, added, removed) is refused unless
    forced. Checkpoints written before fingerprints existed pass."""
    if not saved or not current or saved == current:
        return
    message = (f"resume={resume}: the training data changed since the checkpoint (content fingerprint {saved} -> "
               f"{current}).")
    if not force:
        raise ConfigError(message + " Restore the data, or add resume_force=true to continue on the new data.")
    log.warning("%s Continuing on the new data (resume_force=true).", message)


def run_dir_for_resume(resume: str | None, default: str) -> str:
    """The run dir a resumed run continues in (Hydra resolver for hydra.run.dir).

    A run dir, or its newest step checkpoint, continues in place. Any other checkpoint file of a run dir (an
    older step, best.pt behind the newest step) branches into `default`, a new run dir: continuing in place
    would prune the newer checkpoints, and `resume=RUN_DIR` would later pick up the abandoned branch.
    """
    if resume in (None, "", "None", "null"):
        return default
    in_place, newest = resumed_in_place(resume)
    if in_place is None:
        _note_branch(Path(str(resume)).expanduser().resolve(), newest, default)
        return default
    return str(in_place)


def resumed_in_place(resume: str) -> tuple[Path | None, Path | None]:
    """(the run dir `resume=` continues in place, None) or (None, the newer checkpoint that makes it branch)."""
    path = Path(str(resume)).expanduser().resolve()
    if path.suffix == ".pt" or path.is_file():
        in_run_dir = path.parent.name == CHECKPOINT_DIR
        run_dir = path.parent.parent if in_run_dir else path.parent
        newest = step_checkpoints(run_dir) if in_run_dir else []
        if newest and newest[0] != path:
            return None, newest[0]
        path = run_dir
    return path, None


_branches_noted: set = set()


def _note_branch(resumed: Path, newest: Path, new_dir: str) -> None:
    if (resumed, new_dir) not in _branches_noted:  # Hydra resolves the run dir more than once
        _branches_noted.add((resumed, new_dir))
        log.warning("Resuming from %s, older than the newest checkpoint %s: the run branches into the new run dir "
                    "%s and leaves the original run untouched.", resumed, newest.name, new_dir)


def refuse_changed_experiment(saved: dict, current: dict, resume: str, force: bool) -> None:
    """Resuming into a different experiment is refused with the diff, unless forced (then it is logged)."""
    changes = config_changes(saved, current)
    if changes and not force:
        restore = " ".join(restoring_overrides(saved, current))
        by_hand = groups_to_choose_by_hand(saved, current)
        choose = (f"\nChoose the option of {', '.join(by_hand)} the checkpoint was trained with (its classes are in "
                  "the run dir's config.yaml); then resume again to see what else differs." if by_hand else "")
        raise ConfigError(
            f"resume={resume}: the config differs from the checkpoint's in ways that change the experiment:\n  "
            + "\n  ".join(changes) + "\nThese come from your overrides or from defaults changed since the checkpoint "
            f"was written. To continue as it was trained, add: {restore}{choose}\nTo accept the changes, add "
            "resume_force=true."
        )
    if changes:
        log.warning("Resuming with a changed experiment (resume_force=true):\n  %s", "\n  ".join(changes))


def _flatten(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): tree}


def _changed(saved: dict, current: dict) -> list[tuple[str, object, object]]:
    old, new = _flatten(saved), _flatten(current)
    # only where the current config has the key: datasets without a `resize` option never had one
    old = {**{k: v for k, v in VALUE_BEFORE_KEY_EXISTED.items() if k not in old and k in new}, **old}
    inert = [] if _reuse_fakes_acts(old) or _reuse_fakes_acts(new) else ["trainer.reuse_fakes"]
    return [change for change in _differences(old, new)
            if not any(change[0] == k or change[0].startswith(k + ".") for k in (*RESUMABLE_KEYS, *inert))]


def _reuse_fakes_acts(flat: dict) -> bool:
    """Whether trainer.reuse_fakes=true would change this config's training (n_critic=1, g_batch_size=batch_size).
    Where it acts in neither the checkpoint's config nor the current one (an n_critic=5 WGAN-GP run) its value
    trains alike, so a changed value (the default, on since it exists) is no change of the experiment."""
    from ganrun.config import fakes_reusable

    return fakes_reusable(*(flat.get(f"trainer.{k}") for k in ("n_critic", "g_batch_size", "batch_size")))


def config_changes(saved: dict, current: dict) -> list[str]:
    """Differences between two plain configs that change the experiment, as 'key: old -> new' lines (a key an
    older checkpoint lacks counts as VALUE_BEFORE_KEY_EXISTED's value)."""
    return [f"{key}: {old!r} -> {new!r}" for key, old, new in _changed(saved, current)]


def _hydra_value(value) -> str:
    """`value` in Hydra's override grammar: bare words, "quoted" strings, numbers, true/false/null, [lists] and
    {dicts} without spaces, so that Hydra reads back the very value."""
    if isinstance(value, str):
        return hydra_value(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_hydra_value(str(k))}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    return repr(value)  # int, float (inf, nan and 1e-05 as Hydra writes them)


def restoring_overrides(saved: dict, current: dict) -> list[str]:
    """Overrides that put the checkpoint's values back (`~key` for keys it did not have), each quoted for the
    shell: pasted after the command they give the checkpoint's values to Hydra as they were. Where a config
    group's classes differ (a `_target_`), the group's option is chosen instead (`augment=none`): overrides
    naming classes are refused when a run replays its saved overrides (ganrun.trust), so they would work once
    and then block every later resume."""
    changes = _changed(saved, current)
    groups = sorted({key.split(".")[0] for key, _, _ in changes if key.endswith("_target_")})
    words = []
    for group in groups:
        option = group_option(group, saved.get(group))
        if option is not None:  # the option, then the checkpoint's values where they differ from the option's
            words.append(f"{group}={option}")
            words += _words(_differences(_flatten(saved.get(group) or {}, group + "."),
                                         _flatten(_option_node(group, option), group + ".")))
    words += _words([change for change in changes if change[0].split(".")[0] not in groups])
    return [shlex.quote(word) for word in words]


def _words(changes) -> list[str]:
    return [f"~{key}" if old == "<absent>" else f"{'+' if new == '<absent>' else ''}{key}={_hydra_value(old)}"
            for key, old, new in changes]


def _differences(old: dict, new: dict) -> list[tuple[str, object, object]]:
    return [(key, old.get(key, "<absent>"), new.get(key, "<absent>")) for key in sorted(set(old) | set(new))
            if old.get(key, "<absent>") != new.get(key, "<absent>")]


def groups_to_choose_by_hand(saved: dict, current: dict) -> list[str]:
    """Config groups whose classes differ from the checkpoint's and match no single option ganrun ships."""
    groups = {key.split(".")[0] for key, _, _ in _changed(saved, current) if key.endswith("_target_")}
    return sorted(group for group in groups if not group_option(group, saved.get(group)))


def group_option(group: str, saved_node) -> str | None:
    """The option of config group `group` (conf/GROUP/OPTION.yaml) whose classes are those of `saved_node`:
    the same `_target_` at the same places."""
    from importlib import resources

    folder = resources.files("ganrun.conf").joinpath(group)
    if not folder.is_dir():
        return None
    wanted = _targets(saved_node)
    for name in sorted(f.name for f in folder.iterdir() if f.name.endswith(".yaml")):
        option = name.removesuffix(".yaml")
        if _targets(_option_node(group, option)) == wanted:
            return option
    return None


def _option_node(group: str, option: str) -> dict:
    from importlib import resources

    import yaml

    node = yaml.safe_load(resources.files("ganrun.conf").joinpath(group, option + ".yaml").read_text())
    return node if isinstance(node, dict) else {}


def _targets(node) -> dict:
    return {key: value for key, value in _flatten(node if isinstance(node, dict) else {}).items()
            if key.endswith("_target_")}


def load_generator(path: str, device="cpu", ema: bool = False):
    """The generator of a checkpoint (file or run dir), rebuilt from the config saved with it, in eval mode;
    with `ema`, its exponential moving average (BatchNorm handled as the run's `ema.bn` says).

    The saved config is data: every `_target_` in it is checked against the allowlist before anything is built
    (ganrun.trust), since callers go on to build its dataset and metrics sections too."""
    from omegaconf import OmegaConf

    from ganrun.config import build
    from ganrun.ema import GeneratorEMA

    state, found = load_for_resume(path, "checkpoint ")  # only states with a saved config
    check_targets(state["config"], str(found))
    cfg = OmegaConf.create(state["config"])
    G = build(cfg.model.generator)
    G.load_state_dict(state["generator"])
    G = G.to(device).eval()
    if ema:
        if state.get("ema") is None:
            raise ConfigError(f"{found} holds no EMA generator (the run had ema.enabled=false).")
        averaged = GeneratorEMA.from_config(G, cfg)
        averaged.load_state_dict(state["ema"])
        G = averaged.generator()
    return G, cfg, state, found
