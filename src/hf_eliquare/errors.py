"""Errors for mistakes a user can fix. Scripts print their message (no traceback) and exit non-zero."""


class EliquareError(Exception):
    """Base class: a user-fixable problem. The message names the problem and the fix."""


class ConfigurationError(EliquareError, ValueError):
    """Arguments that cannot work together (bad layers, thresholds, architectures, …)."""


class DataError(EliquareError, ValueError):
    """Input data that cannot be used (missing, empty, undecodable, truncated, malformed)."""


class OfflineError(EliquareError, OSError):
    """Something on the Hugging Face Hub is needed but the Hub cannot be reached."""


class OutputDirError(EliquareError, FileExistsError):
    """The output directory already holds a finished model."""


class TrainingDivergedError(EliquareError, RuntimeError):
    """The loss became NaN or infinite."""
