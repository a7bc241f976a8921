"""Errors that mean "the user's input is wrong": shown as a one-line message, never a traceback."""


class ConfigError(ValueError):
    """A config value, a combination of options or an input file that ganrun refuses before training."""


class DataNotFoundError(ConfigError):
    """The dataset could not be found or fetched; the message lists what was tried."""


class StorageError(ConfigError):
    """A file ganrun must write could not be written (disk full, no permission); the message names it."""


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; the last checkpoint written before it is intact."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written at the end of the current step."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
