from __future__ import annotations

import os
import sys

import pytest

from hmlearn import fileio
from hmlearn.fileio import atomic_write


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_an_exception(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_write(target, "w") as handle:
        handle.write("first")
    for error in (ValueError, KeyboardInterrupt):
        with pytest.raises(error), atomic_write(target, "w") as handle:
            handle.write("half of the second")
            raise error
    assert target.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE is Linux only")
def test_a_file_being_written_has_no_name_until_it_is_complete(tmp_path):
    """What a SIGKILL mid-write would leave: nothing in the folder."""
    with atomic_write(tmp_path / "out.bin") as handle:
        handle.write(b"x" * 100_000)
        assert list(tmp_path.iterdir()) == []
    assert (tmp_path / "out.bin").stat().st_size == 100_000


def test_a_file_system_that_refuses_the_link_gets_a_copy(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    with atomic_write(tmp_path / "out.bin") as handle:
        handle.write(b"abc" * 1_000_000)
    assert (tmp_path / "out.bin").read_bytes() == b"abc" * 1_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    monkeypatch.setattr(fileio, "_unnamed_file", lambda folder: (None, None))  # the portable path
    with atomic_write(tmp_path / "out.bin") as handle:
        handle.write(b"portable")
    assert (tmp_path / "out.bin").read_bytes() == b"portable" and len(list(tmp_path.iterdir())) == 1
