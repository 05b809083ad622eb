from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from hmlearn import fileio
from hmlearn.fileio import atomic_write, read_text


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


def test_read_text_gives_one_error_naming_the_file(tmp_path: Path):
    class Refused(Exception):
        pass

    good = tmp_path / "spec.yaml"
    good.write_bytes("\ufeffa: 1\n".encode())
    assert read_text(good, "spec file", Refused) == "a: 1\n"  # the byte-order mark is dropped
    with pytest.raises(Refused, match=re.escape(f"{tmp_path / 'missing.yaml'}: no such spec file")):
        read_text(tmp_path / "missing.yaml", "spec file", Refused)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"01/05\nb\xe9ta\n")
    with pytest.raises(Refused, match=re.escape(f"{latin}: not UTF-8 text (byte 7); save it as UTF-8")):
        read_text(latin, "hierarchy file", Refused)
    with pytest.raises(Refused, match=re.escape(f"{tmp_path}: cannot read the hierarchy file (Is a directory)")):
        read_text(tmp_path, "hierarchy file", Refused)


def test_a_full_disk_while_writing_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    import errno

    from hmlearn import fileio

    target = tmp_path / "model.ckpt"
    target.write_bytes(b"the earlier checkpoint")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        with fileio.atomic_write(target) as handle:
            handle.write(b"new")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == b"the earlier checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]  # no .part left behind
