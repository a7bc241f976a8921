"""The run dir: which dir a run writes, one writer at a time, nothing followed out of it, resume commands.

`RunDirLock` holds a POSIX record lock (`lockf`) on `RUN_DIR/.ganrun.lock` while a run writes the dir; the file
names the owner (pid, host, start time) for the message a second run gets. A record lock belongs to the process
that took it: DataLoader workers forked from it do not hold it, and the kernel drops it when the process dies
however it dies, so a lock file left by a killed run is taken over (with a warning naming the old owner).

A run dir may have come from someone else: it is refused when it holds a symbolic or hard link (ganrun would otherwise
write through `.ganrun.lock`, `config.yaml` or `.hydra/*` links to files outside it), and a new run is refused on
a dir that holds another run's checkpoints (it would prune them).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shlex
import socket
import stat
import time
from pathlib import Path

from ganrun.checkpoint import CHECKPOINT_DIR, step_checkpoints
from ganrun.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = ".ganrun.lock"
RUN_ID_FILE = "run_id"
_held: set[tuple[int, int]] = set()  # (device, inode) of the run dirs this process holds: lockf is per process


class RunDirLocked(ConfigError):
    """Another live process is writing the run dir."""


def _open_lock_file(path: Path, flags: int) -> int:
    """The lock file's descriptor, never through a link; odd lock files are one clear ConfigError."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)  # a FIFO never blocks
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR):
            raise ConfigError(f"cannot open the lock file {path}: {exc.strerror or exc}.") from None
        fd = None
    if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    what = ("a folder" if os.path.isdir(path) and not os.path.islink(path) else
            "a symbolic link" if os.path.islink(path) else "not a plain file")
    if fd is not None:
        os.close(fd)
    raise ConfigError(f"the lock file {path} is {what}, not a file ganrun wrote: remove it if no run is using the "
                      "dir, then start again.")


class RunDirLock:
    """`with RunDirLock(run_dir): train(...)`: a second run (or resume) of the same dir is refused."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None

    def __enter__(self) -> RunDirLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        refuse_links(self.run_dir)
        info = os.stat(self.run_dir)
        key = (info.st_dev, info.st_ino)
        if key in _held:  # opening the file again would drop this process's own lock on close
            raise _in_use(self.run_dir, f"this process (pid {os.getpid()})")
        fd = _open_lock_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _describe(_read_owner(fd))
            os.close(fd)
            raise _in_use(self.run_dir, owner) from None
        previous = _read_owner(fd)
        if previous:
            log.warning("Taking over the lock of %s: left by %s, which is no longer running.", self.run_dir,
                        _describe(previous))
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd, self._key = fd, key
        _held.add(key)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a lock file that names nobody: the next run takes it without a warning
        finally:
            os.close(self._fd)
            _held.discard(self._key)
            self._fd = self._key = None


def refuse_if_in_use(run_dir: Path) -> None:
    """Refuse before Hydra starts when a live run holds `run_dir`: Hydra would otherwise write this command's
    .hydra/ files (config, overrides) over the running one's before `RunDirLock` refuses it."""
    path = Path(run_dir) / LOCK_FILE
    if not os.path.lexists(path):
        return
    info = os.stat(run_dir)
    if (info.st_dev, info.st_ino) in _held:
        raise _in_use(Path(run_dir), f"this process (pid {os.getpid()})")
    fd = _open_lock_file(path, os.O_RDONLY)
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe: released when the descriptor closes below
    except OSError:
        raise _in_use(Path(run_dir), _describe(_read_owner(fd))) from None
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
    if not isinstance(owner, dict) or owner.get("unreadable"):
        return "another process"
    return f"pid {owner.get('pid')} on {owner.get('host')} (started {owner.get('started')})"


def refuse_links(run_dir: Path) -> None:
    """A run dir holding a symbolic or hard link (or a named pipe, a socket) anywhere is refused, naming it: ganrun
    reads and writes run dirs it may have received from someone else, and never follows a link out of one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        for name in (*dirs, *files):
            info = os.lstat(os.path.join(folder, name))
            if not stat.S_ISDIR(info.st_mode) and not (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
                what = ("a symbolic link" if stat.S_ISLNK(info.st_mode) else
                        "a hard link (another name of its file)" if stat.S_ISREG(info.st_mode) else
                        "not a plain file (a named pipe would block the reader)")
                raise ConfigError(f"{os.path.join(folder, name)} is {what}: a run dir is read and written "
                                  "as plain files only (a link could point ganrun at files outside the run). Replace "
                                  "it with a copy of the file, or remove it.")


def claim_run_dir(run_dir: Path, run_id: str) -> None:
    """Mark `run_dir` as run `run_id`'s (a checkpoint's id must match it to be resumed there)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / RUN_ID_FILE).write_text(run_id + "\n")


def owner_of(run_dir: Path) -> str | None:
    mark = Path(run_dir) / RUN_ID_FILE
    return mark.read_text().strip() or None if mark.is_file() else None


def holds_a_run(run_dir: Path) -> bool:
    return owner_of(run_dir) is not None or bool(step_checkpoints(run_dir))


def refuse_another_runs_dir(run_dir: Path) -> None:
    """A new run (not a resume) in a dir that holds another run's checkpoints would prune them: refused."""
    if holds_a_run(run_dir):
        raise ConfigError(f"{run_dir} holds another run (run id {owner_of(run_dir) or '?'}, checkpoints in "
                          f"{Path(run_dir) / CHECKPOINT_DIR}): a new run there would replace its work. Continue it "
                          f"with: {resume_command(run_dir)}, or start this run in another dir.")


def refuse_foreign_checkpoint(state: dict, found: Path, run_dir: Path) -> None:
    """A checkpoint of another run (copied into this run dir) is never adopted over the dir's own config,
    metrics and checkpoints."""
    owner = owner_of(run_dir)
    if owner and state["run_id"] != owner:
        raise ConfigError(
            f"{found} belongs to another run (run id {state['run_id']}) than the run dir {run_dir} "
            f"(run id {owner}, in {Path(run_dir) / RUN_ID_FILE}): it is not adopted. Resume it from its own run dir, "
            "or copy it into an empty dir and resume from there.")


def run_dir_for_resume(resume: str | None, default: str) -> str:
    """The run dir of a run (Hydra resolver `ganrun_run_dir` for hydra.run.dir).

    A new run gets `default` made unique (two runs started in the same second get `..._1`). A run dir, or its
    newest step checkpoint, continues in place. Any other checkpoint file of a run dir (an older step, best.pt
    behind the newest step) branches into a new dir: continuing in place would prune the newer checkpoints."""
    if resume in (None, "", "None", "null"):
        return new_run_dir(default)
    in_place, newest = resumed_in_place(resume)
    if in_place is None:
        new_dir = new_run_dir(default)
        _note_branch(Path(str(resume)).expanduser().resolve(), newest, new_dir)
        return new_dir
    return str(in_place)


_claimed: dict[str, str] = {}  # Hydra resolves hydra.run.dir several times: one answer per default per process


def new_run_dir(default: str) -> str:
    """`default`, or `default_N` when another run made it first (created here, atomically, so it is this run's)."""
    if default not in _claimed:
        Path(default).parent.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            candidate = default if n == 0 else f"{default}_{n}"
            try:
                os.mkdir(candidate)
            except FileExistsError:
                continue
            _claimed[default] = candidate
            break
        else:
            raise ConfigError(f"no free run dir next to {default}: give hydra.run.dir=...")
    return _claimed[default]


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


def refuse_to_prune_newer_work(resume, run_dir) -> None:
    """`resume=OLDER_CHECKPOINT hydra.run.dir=ITS_OWN_RUN_DIR` would continue in place and prune the newer
    checkpoints: refused. (Without hydra.run.dir, an older checkpoint branches into a new dir by itself.)"""
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
