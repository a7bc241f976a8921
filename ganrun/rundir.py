"""One run at a time per run dir, and resume commands that survive copy-paste.

`RunDirLock` holds an exclusive `flock` on `RUN_DIR/.ganrun.lock` while a run writes the dir; the file names the
owner (pid, host, start time) for the message a second run gets. The kernel drops the lock when its process
dies however it dies, so a lock file left by a killed run is taken over (with a warning naming the old owner)
instead of blocking the dir forever.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shlex
import socket
import time
from pathlib import Path

from ganrun.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = ".ganrun.lock"


class RunDirLocked(ConfigError):
    """Another live process is writing the run dir."""


class RunDirLock:
    """`with RunDirLock(run_dir): train(...)`: a second run (or resume) of the same dir is refused."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _describe(_read_owner(fd))
                os.close(fd)
                raise _in_use(self.run_dir, owner) from None
            # The file may have been unlinked by its previous holder between our open and flock: retry on the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_owner(fd)
        if previous:
            log.warning("Taking over the lock of %s: left by %s, which is no longer running.", self.run_dir,
                        _describe(previous))
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding the lock: nobody can be between open and flock
        finally:
            os.close(self._fd)
            self._fd = None


def refuse_if_in_use(run_dir: Path) -> None:
    """Refuse before Hydra starts when a live run holds `run_dir`: Hydra would otherwise write this command's
    .hydra/ files (config, overrides) over the running one's before `RunDirLock` refuses it."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return  # no lock file (or none readable): nobody holds the dir, RunDirLock decides later
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe: released at once below
    except BlockingIOError:
        raise _in_use(run_dir, _describe(_read_owner(fd))) from None
    finally:
        os.close(fd)


def _in_use(run_dir: Path, owner: str) -> RunDirLocked:
    return RunDirLocked(f"the run dir {run_dir} is in use by {owner}: two runs writing one dir would mix their "
                        "checkpoints. Wait for it to finish (or stop it), or start this run in another dir.")


def _read_owner(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return {"unreadable": True}


def _describe(owner: dict | None) -> str:
    if not owner or owner.get("unreadable"):
        return "another process"
    return f"pid {owner.get('pid')} on {owner.get('host')} (started {owner.get('started')})"


def refuse_to_prune_newer_work(resume, run_dir) -> None:
    """`resume=OLDER_CHECKPOINT hydra.run.dir=ITS_OWN_RUN_DIR` would continue in place and prune the newer
    checkpoints: refused. (Without hydra.run.dir, an older checkpoint branches into a new dir by itself.)"""
    from ganrun.checkpoint import CHECKPOINT_DIR, step_checkpoints

    if resume in (None, "", "None", "null"):
        return
    path = Path(str(resume)).expanduser().resolve()
    if not path.is_file() or path.parent.name != CHECKPOINT_DIR:
        return
    if path.parent.parent != Path(run_dir).expanduser().resolve():
        return
    newest = step_checkpoints(path.parent.parent)
    if newest and newest[0] != path:
        raise ConfigError(
            f"resume={resume} is older than {newest[0].name} in the same run dir {run_dir}: continuing there would "
            "delete the newer checkpoints. Leave out hydra.run.dir (the run branches into a new dir) or name another."
        )


def hydra_quote(value: str) -> str:
    """`value` as a quoted Hydra override value that parses back to itself (spaces, non-ASCII, quotes). Hydra's
    grammar: inside quotes, a quote is escaped with a backslash, and backslashes only count before a quote."""
    value = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", str(value))
    value = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value)
    return f"'{value}'"


def hydra_value(value: str) -> str:
    """`value` written for a Hydra override so that Hydra reads back this very string: bare when it is a plain
    ASCII name or path that Hydra reads as itself (not as 1, 1e-3, true, null or inf), else quoted."""
    value = str(value)
    plain = value.isascii() and value != "" and all(c.isalnum() or c in "/._-:+" for c in value)
    return value if plain and _reads_bare(value) == value else hydra_quote(value)


def _reads_bare(value: str):
    """What Hydra's parser reads from `value` unquoted (None where that is a syntax error)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(f"key={value}").value()
    except Exception:  # Hydra's grammar errors have no common base class
        return None


def resume_command(run_dir) -> str:
    """The shell command that resumes `run_dir`, quoted for Hydra and for the shell: paste it as is."""
    return "ganrun " + shlex.quote(f"resume={hydra_value(run_dir)}")
