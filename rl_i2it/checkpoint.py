"""Checkpoints: one file per run, written atomically, loaded with ``weights_only=True``.

A checkpoint holds everything a bit-exact resume needs (DESIGN §3): the config (YAML text), every
network, every optimiser, log α, RNG states (the policy-noise, env pair-sampler and replay-sampler generators),
the env's episodes, the trainer's current observation, step counters, running statistics, library
versions, and the replay buffer (``save_buffer=False`` drops it; resume is then not bit-exact).
"""
from __future__ import annotations

import os
import pickle
import platform
import tempfile
import zipfile
from pathlib import Path

import torch

from .errors import UserError
from .rundir import os_error_to_user_error

__all__ = ["save_checkpoint", "load_checkpoint", "library_versions", "atomic_write_text", "atomic_write"]

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import numpy

    from . import __version__

    return {"rl_i2it": __version__, "torch": str(torch.__version__), "numpy": str(numpy.__version__),
            "python": platform.python_version()}


def _atomic(path: Path, write) -> None:
    """Write through a temporary file, fsync, rename; an OS failure (a full disk, no permission) becomes a one-line
    ``UserError`` naming ``path``, the temporary file is removed and the previous ``path`` stays intact."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a run's files are as readable as any other file
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half of one
    except BaseException as error:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        user_error = None if isinstance(error, UserError) else os_error_to_user_error(error, path, "write")
        if user_error is not None:  # torch wraps a full disk in a RuntimeError: the OSError is in its context
            previous = "; the previous version is intact" if path.exists() else ""
            raise UserError(f"{user_error}{previous}") from None
        raise


def atomic_write(path: Path, write) -> None:
    """Write a file through ``write(binary handle)`` into a temporary file, fsync, then rename it into place."""
    _atomic(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda handle: handle.write(text.encode()))


def save_checkpoint(path: Path, state: dict) -> None:
    state = {"format_version": FORMAT_VERSION, "versions": library_versions(), **state}
    _atomic(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; train first (python -m rl_i2it train --run-dir "
                        f"{path.parent}) or point --run-dir at a finished run")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as error:  # unreadable (permissions), or an I/O error
        raise os_error_to_user_error(error, path, "read") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupt ({first_line}); retrain with "
                        f"--if-exists overwrite, or restore the file") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} is not an rl_i2it checkpoint of format {FORMAT_VERSION}")
    return state
