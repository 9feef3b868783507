"""SHA-256 checks for fetched data files: a missing or corrupt file fails with the command that fixes it."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import DataError

__all__ = ["sha256_of", "verify_file"]

_CHUNK_BYTES = 1 << 20  # hash in 1 MiB chunks so large archives never have to fit in memory


def sha256_of(path: str | Path) -> str:
    """Hex sha256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, expected_sha256: str, fetch_command: str) -> Path:
    """Check that ``path`` exists and has the expected sha256.

    Parameters
    ----------
    path : str or Path
        The data file.
    expected_sha256 : str
        Hex digest from the manifest in code.
    fetch_command : str
        The shell command that (re)fetches the file, quoted in the error.

    Returns
    -------
    Path
        ``path``, so calls can be chained.

    Raises
    ------
    DataError
        One line naming the file, the expected (and, if corrupt, the actual) checksum and ``fetch_command``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing (expected sha256 {expected_sha256}); fetch it with: {fetch_command}")
    actual = sha256_of(path)
    if actual != expected_sha256.lower():
        raise DataError(f"{path} is corrupt: sha256 {actual}, expected {expected_sha256}; "
                        f"delete it and fetch it again with: {fetch_command}")
    return path
