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
