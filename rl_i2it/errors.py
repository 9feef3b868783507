"""Errors a user can cause and fix. The CLI prints them as one line (no traceback) and exits with 2."""

__all__ = ["UserError", "DataError"]


class UserError(Exception):
    """Bad input: the message names the value and what to do next."""


class DataError(UserError):
    """A dataset file is missing or corrupt: the message names the file, the expected checksum and the fetch command."""
