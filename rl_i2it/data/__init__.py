"""Offline data layer (DESIGN §7).

Fetched datasets live under ``cache_dir()`` (filled by ``data_scripts/``, checked by sha256); every loader
also has an embedded default that needs no network, and says which source it used.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where ``data_scripts/`` put fetched datasets: ``$RL_I2IT_DATA``, else ``~/.cache/rl_i2it``.

    Read on every call (not at import) so a notebook or test can point it elsewhere at any time.
    """
    return Path(os.environ.get("RL_I2IT_DATA") or "~/.cache/rl_i2it").expanduser()


# Imported after cache_dir is defined: the loaders import it from here.
from .checksums import sha256_of, verify_file  # noqa: E402
from .mnist import MnistSplit, load_mnist  # noqa: E402

__all__ = ["cache_dir", "sha256_of", "verify_file", "load_mnist", "MnistSplit"]
