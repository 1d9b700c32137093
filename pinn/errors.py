"""The exceptions pinn raises for problems a user can fix.

Every message names the offending field or file, what was found, and what to do. The CLI
prints such an error as one line and exits with status 2.
"""

from __future__ import annotations


class PinnError(Exception):
    """Base class of every error pinn reports to users."""


class DataError(PinnError, ValueError):
    """Input data (an NPZ scan, arrays passed to the API) is missing, malformed or inconsistent."""


class ConfigError(PinnError, ValueError):
    """A configuration value or option is invalid."""


class ArchiveError(PinnError):
    """A model archive or training checkpoint is unreadable, corrupt, or incompatible."""


class TrainingError(PinnError, RuntimeError):
    """Training cannot continue (for example, too many non-finite losses in a row)."""
