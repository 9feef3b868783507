"""Offline data layer (DESIGN §7).

Fetched datasets live under ``cache_dir()`` (filled by ``data_scripts/``, checked by sha256); every loader
also has an embedded default that needs no network, and says which source it used.
"""
from __future__ import annotations

from .cache import cache_dir
from .checksums import sha256_of, verify_file
from .mnist import MnistSplit, load_mnist

__all__ = ["cache_dir", "sha256_of", "verify_file", "load_mnist", "MnistSplit"]
