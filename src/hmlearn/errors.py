"""The one exception type users see: it carries a message that names the file, line or node."""

from __future__ import annotations


class HMLError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


class HierarchyError(HMLError, ValueError):
    """A malformed hierarchy (cycle, duplicate node) or a label outside it."""


class DataFormatError(HMLError, ValueError):
    """A data file that cannot be read as it claims to be (malformed ARFF line, bad value)."""


class DatasetNotFoundError(HMLError, FileNotFoundError):
    """A dataset that is neither on disk nor downloadable."""


class ChecksumError(HMLError):
    """A downloaded or cached file whose SHA-256 does not match the expected one."""


class TrainingDiverged(HMLError):
    """The training loss became NaN or infinite before the step that would spread it into the weights.

    ``epoch`` and ``batch`` (1-based) say where; with a state file, ``saved_epoch`` epochs are kept in
    ``state_path`` (0: none), untouched by the diverged epoch, to resume from with a lower learning rate.
    """

    def __init__(self, message: str, epoch: int, batch: int, state_path=None, saved_epoch: int = 0):
        super().__init__(message)
        self.epoch, self.batch, self.state_path, self.saved_epoch = epoch, batch, state_path, saved_epoch


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training with a state file: ``saved_epoch`` completed epochs are in ``state_path``.

    ``epoch`` is the epoch that was running (1-based). Still a KeyboardInterrupt, so code that
    handles Ctrl-C keeps working.
    """

    def __init__(self, message: str, epoch: int, state_path=None, saved_epoch: int = 0):
        super().__init__(message)
        self.epoch, self.state_path, self.saved_epoch = epoch, state_path, saved_epoch
