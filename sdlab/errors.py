"""The errors a user can fix: each message names the file, key or path and what to do.

`sdlab.cli` prints any `UserError` as one line and exits with status 2 (set SDLAB_TRACEBACK=1 for
the traceback); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An ordinary mistake in the input (a config, a data file, a path, a run folder)."""


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, malformed or out of range; the message names the key."""


class DataError(UserError, ValueError):
    """A data or responses file cannot be read; the message names the file and line."""
