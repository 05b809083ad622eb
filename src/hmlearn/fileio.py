"""Files written so that a crash never leaves a half-written one: temp file + fsync + rename;
users' text files read with one clear error when they cannot be.

On Linux the temporary file has no name until it is complete (``O_TMPFILE``), so not even a
SIGKILL mid-write leaves a file behind (only a kill between the last two system calls, link and
rename, could leave a complete hidden ``.NAME.*.part`` file); elsewhere it is such a hidden file
from the start, deleted on any exception (Ctrl-C included) but not after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def read_text(path: str | Path, what: str, error: type[Exception]) -> str:
    """A user's ``what`` file as UTF-8 text (a byte-order mark allowed), or one ``error`` naming it and why not."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text (byte {problem.start}); save it as UTF-8") from None
    except OSError as problem:
        raise error(f"{path}: cannot read the {what} ({problem.strerror or problem})") from None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", overwrite: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``, else delete it.

    ``overwrite=False``: the file is given its name only if ``path`` does not exist at that moment
    (a hard link, atomic), so of two writers racing for one name exactly one succeeds; the other
    gets FileExistsError and leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _unnamed_file(path.parent)
    if fd is None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if tmp is None:  # complete: give it a name only now, then rename that over the target
                tmp = _link_unnamed(handle.fileno(), path)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError if another writer got there first
            os.unlink(tmp)
            tmp = None
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(error, OSError) and not isinstance(error, FileExistsError) and not error.filename:
            raise OSError(error.errno, error.strerror or str(error), str(path)) from None
        raise


def _unnamed_file(folder: Path) -> tuple[int | None, None]:
    """An O_TMPFILE descriptor in ``folder`` (Linux), or (None, None) where that is not supported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None, None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666), None  # the umask applies, as for open()
    except OSError:  # file system without O_TMPFILE support
        return None, None


def _link_unnamed(fd: int, path: Path) -> str:
    """Give the unnamed file ``fd`` a hidden temporary name beside ``path``; returns that name."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(100):
            name = f".{path.name}.{os.urandom(4).hex()}.part"
            try:  # a dir_fd makes this linkat(AT_SYMLINK_FOLLOW), which links the file, not the /proc link
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder, follow_symlinks=True)
                return str(path.parent / name)
            except FileExistsError:
                continue
            except OSError:  # linking refused (unusual file system): copy the complete file instead
                return _copy_unnamed(fd, path)
        raise FileExistsError(f"{path}: no free temporary name beside it")
    finally:
        os.close(folder)


def _copy_unnamed(fd: int, path: Path) -> str:
    target, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(target, "wb") as out:
            os.lseek(fd, 0, os.SEEK_SET)
            while chunk := os.read(fd, 1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
