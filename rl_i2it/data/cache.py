"""Where fetched datasets live: ``cache_dir()``."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Where ``data_scripts/`` put fetched datasets: ``$RL_I2IT_DATA``, else ``~/.cache/rl_i2it``.

    Read on every call (not at import) so a notebook or test can point it elsewhere at any time.
    """
    return Path(os.environ.get("RL_I2IT_DATA") or "~/.cache/rl_i2it").expanduser()
