"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from cryobox.errors import InputError

#: errors that writing an output meets: a full disk or quota, a file-size limit, a read-only file system
_WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so no thread sees it changed)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched, so an
    interrupted job never leaves a half-written output. ``suffix`` defaults to the target's
    own suffix, for writers that choose a format by extension.

    The file gets the mode a plain ``open()`` would give it (0666 less the user's umask, so
    0644 under umask 022): ``mkstemp`` creates it 0600, which would hide every output from
    lab-mates on a shared file system.
    """
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give a file name for this output.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=(target.suffix if suffix is None else suffix) + ".part", dir=target.parent
        )
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        # a write that failed names the output, never the input being read at the time
        if exc.errno in _WRITE_ERRORS and exc.filename in (None, str(tmp_path), str(target)):
            raise _cannot_write(target, exc) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _cannot_write(target: Path, exc: OSError) -> InputError:
    return InputError(
        f"{target}: cannot be written ({exc.strerror or exc}); check the free space, quota, file-size limit "
        f"(ulimit -f) and permissions of {target.parent}."
    )
