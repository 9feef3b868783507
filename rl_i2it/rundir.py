"""Run directories that survive anything: one writer at a time, no leftovers, logs read tolerantly, one-line errors.

==============================================  =================================================================
``RunDirLock(run_dir)``                         exclusive lock on ``run_dir/.lock`` (``fcntl.flock``), held until
                                                ``release()`` or the process ends; re-entrant within a process
``remove_leftover_temp_files(run_dir, names)``  delete ``.<name>.*.tmp`` left by atomic writes a kill cut off
``read_metrics_jsonl(path)``                    the rows of ``metrics.jsonl``; a torn last line is dropped with a
                                                warning, a corrupt line before it is a ``DataError``
``os_error_to_user_error(error, path, doing)``  an ``OSError`` (or torch's ``RuntimeError`` wrapping one) as a
                                                one-line ``UserError`` naming the path and the fix
==============================================  =================================================================

The lock is an OS lock: the kernel drops it when the holding process dies (SIGKILL included), so a crashed run
never blocks its own resume. It is POSIX-only (``fcntl``); where ``fcntl`` is missing (Windows) runs proceed
unlocked after a warning. The lock file stays in the directory (deleting it while another process waits on it
would let two writers in); it holds the holder's PID and host, which the refusal names.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
import warnings
from pathlib import Path

from .errors import DataError, UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_FILE", "RunDirLock", "RunDirBusy", "remove_leftover_temp_files", "read_metrics_jsonl",
           "os_error_to_user_error", "find_os_error", "TornLogWarning"]

LOCK_FILE = ".lock"

# errno -> (what happened, what to do); the fallback is the OS's own words and "choose another location"
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space on that disk or use a directory on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or use a directory on another disk"),
    errno.EACCES: ("permission denied", "use a directory you can write to"),
    errno.EPERM: ("operation not permitted", "use a directory you can write to"),
    errno.EROFS: ("read-only file system", "use a directory on a writable disk"),
    errno.ENOTDIR: ("a part of the path is a file, not a directory", "use another path"),
    errno.ENOENT: ("no such file or directory (its parent cannot hold new directories)", "use another path"),
    errno.EEXIST: ("a file is in the way", "move the file or use another path"),
    errno.EISDIR: ("it is a directory", "use another path"),
    errno.ENAMETOOLONG: ("the name is too long", "use a shorter path"),
}


class RunDirBusy(UserError):
    """Another live process holds the run directory's lock."""


class TornLogWarning(UserWarning):
    """``metrics.jsonl`` ended in a cut-off line (a kill mid-write, a full disk); the line was dropped."""


# ---------------------------------------------------------------------------------------------- errors
def find_os_error(error: BaseException) -> OSError | None:
    """The ``OSError`` in ``error``'s chain (torch reports a full disk as a ``RuntimeError`` whose context is one)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def os_error_to_user_error(error: BaseException, path: str | Path, doing: str,
                           fix: str | None = None) -> UserError | None:
    """A one-line ``UserError`` for an OS failure while ``doing`` (e.g. ``"write"``) ``path``; None if none is in
    ``error``'s chain. ``fix`` replaces the generic advice (e.g. ``"pass another --run-dir"``).

    >>> print(os_error_to_user_error(OSError(errno.EACCES, "Permission denied"), "/srv/run/checkpoint.pt", "write"))
    cannot write /srv/run/checkpoint.pt: permission denied; use a directory you can write to
    """
    found = find_os_error(error)
    if found is None:
        return None
    what, advice = _OS_ERRORS.get(found.errno, (found.strerror or str(found), "use another path"))
    if fix is not None and found.errno not in (errno.ENOSPC, errno.EDQUOT):
        advice = fix
    elif fix is not None:
        advice = f"{advice} ({fix})"
    return UserError(f"cannot {doing} {path}: {what}; {advice}")


# ---------------------------------------------------------------------------------------------- the lock
_HELD: dict[str, list] = {}  # real path of a lock file -> [fd, holders, pid]: this process's locks


def _holder(path: Path) -> str:
    """What the lock file says about its holder (``"process 1234 on host"``), read a few times while it is written."""
    for _ in range(5):
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text:
            fields = text.split()
            return f"process {fields[0]}" + (f" on {fields[1]}" if len(fields) > 1 else "")
        time.sleep(0.05)
    return "another process (its PID is not written yet)"


class RunDirLock:
    """An exclusive lock on a directory, for one writer at a time.

    ``RunDirLock(run_dir)`` creates ``run_dir/.lock`` if needed, locks it with ``flock(LOCK_EX | LOCK_NB)`` and
    writes ``"<pid> <host>"`` into it; a second process gets ``RunDirBusy`` at once, naming the holder's PID.
    Within one process the lock is re-entrant (a notebook that trains, then reopens its run, does not block
    itself); it is released when every holder called ``release()`` (also a context manager), or when the
    process ends. The directory must exist.
    """

    def __init__(self, run_dir: str | Path, name: str = LOCK_FILE):
        self.path = Path(run_dir) / name
        self._key = os.path.realpath(self.path)
        self._released = False
        held = _HELD.get(self._key)
        if held is not None and held[2] == os.getpid():
            held[1] += 1
            return
        _HELD.pop(self._key, None)  # inherited through fork(): the child must lock for itself
        if fcntl is None:  # pragma: no cover - Windows
            warnings.warn(f"no fcntl on this system: {self.path.parent} is not locked against a second writer")
            _HELD[self._key] = [None, 1, os.getpid()]
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as error:
            raise os_error_to_user_error(error, self.path.parent, "lock the run directory",
                                         "pass a --run-dir you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunDirBusy(f"run directory {self.path.parent} is in use by {_holder(self.path)}; wait for "
                                 f"it to finish (or stop it), or pass another --run-dir") from None
            raise os_error_to_user_error(error, self.path.parent, "lock the run directory",
                                         "pass a --run-dir on a local disk") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except OSError:
            pass  # a full disk: the lock holds all the same, the refusal just cannot name the PID
        _HELD[self._key] = [fd, 1, os.getpid()]

    def release(self) -> None:
        """Give this holder's share back; the OS lock goes when the last holder in this process releases."""
        if self._released:
            return
        self._released = True
        held = _HELD.get(self._key)
        if held is None or held[2] != os.getpid():
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self._key]
            if held[0] is not None:
                os.close(held[0])  # closing the descriptor drops the flock

    def __enter__(self) -> "RunDirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------- leftovers
def remove_leftover_temp_files(run_dir: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete ``.<name>.*.tmp`` (what ``checkpoint.atomic_write`` leaves when killed mid-write) for each name.

    Call it only while holding the directory's lock: another writer's live temp file would go too.
    Returns the paths removed.
    """
    removed = []
    for name in names:
        for path in Path(run_dir).glob(f".{name}.*.tmp"):
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
    return removed


# ---------------------------------------------------------------------------------------------- the log
def read_metrics_jsonl(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` (a run directory or the file itself); ``[]`` when there is none.

    A last line that is not JSON (the write was cut off by a kill or a full disk) is dropped with a
    ``TornLogWarning``; a bad line before the last one is a ``DataError`` naming the file and the line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise os_error_to_user_error(error, path, "read") from None
    lines = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    rows = []
    for k, (number, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and "env_steps" in row:
            rows.append(row)
            continue
        if k == len(lines) - 1:
            warnings.warn(f"{path}: dropped its last line {number}, cut off mid-write ({line[:40]!r}...)",
                          TornLogWarning, stacklevel=2)
            break
        raise DataError(f"{path}: line {number} is not a log row ({line[:60]!r}); delete that line (or the run "
                        f"with --if-exists overwrite)")
    return rows
