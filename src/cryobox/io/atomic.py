"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Iterator

from cryobox.errors import InputError
from cryobox.io.ledger import check_replaceable, current_umask, record_pending, record_written

#: errors that writing an output meets: a full disk or quota, a file-size limit, a read-only file system
_WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str | None = None, state: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched, so an
    interrupted job never leaves a half-written output. ``target`` may be replaced only when
    cryobox wrote it and it is as cryobox left it (``io.ledger``), and never when it is an input of
    the running job: anything else is refused before the temporary file is made. The written file is
    added to its folder's ledger. ``state``: cryobox's own record of a folder (``.cryobox-run.json``),
    a hidden name that is always cryobox's and is kept out of the ledger (its temporary file is
    listed as pending, as every other, so a killed run's is removed by the next). ``suffix`` defaults to the target's
    own suffix, for writers that choose a format by extension.

    The file gets the mode a plain ``open()`` would give it (0666 less the user's umask, so
    0644 under umask 022): ``mkstemp`` creates it 0600, which would hide every output from
    lab-mates on a shared file system.
    """
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give a file name for this output.")
    if not state:
        check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # every temporary is listed as pending before it exists, the folder record's too: a run
        # killed while writing it leaves a file the next run knows to be cryobox's
        tmp_path = _new_temporary(target, target.suffix if suffix is None else suffix)
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        if not state:
            check_replaceable(target)  # nothing else put there meanwhile
        os.replace(tmp_path, target)
        if not state:
            record_written(target)
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


def _new_temporary(target: Path, suffix: str) -> Path:
    """An empty file ``.<name>.<random><suffix>.part`` beside ``target``, named in the folder's
    ledger *before* it exists, so that a run killed at any moment leaves no temporary file the
    next run cannot recognise as cryobox's."""
    # the temporary name adds ~20 characters: a long (legal) target name is shortened in it, so the
    # file system's 255-character limit is the target's own, never the temporary file's
    stem = target.name if len(target.name) + len(suffix) + 16 <= 255 else target.name[: 255 - len(suffix) - 16]
    for _ in range(100):
        tmp = target.parent / f".{stem}.{secrets.token_hex(4)}{suffix}.part"
        record_pending(tmp)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


def _cannot_write(target: Path, exc: OSError) -> InputError:
    return InputError(
        f"{target}: cannot be written ({exc.strerror or exc}); check the free space, quota, file-size limit "
        f"(ulimit -f) and permissions of {target.parent}."
    )
