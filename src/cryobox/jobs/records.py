"""Resumable outputs: a stack counts as finished when a small JSON record written after it
(atomically) names the same settings. A stack without its record, or with other settings, is
redone."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from cryobox.errors import InputError
from cryobox.io.jsonio import write_json

__all__ = ["digest", "settings_digest", "read_record", "write_record", "check_memory"]


def digest(obj) -> str:
    """A short hash of JSON-like data (same data, same digest; other values by their str)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_digest(options) -> str:
    """A short hash of a settings dataclass (same settings, same digest)."""
    return digest(asdict(options))


def read_record(record: str | Path, output: str | Path, *, expect: dict) -> dict | None:
    """The record beside ``output`` when both exist and the record holds ``expect``, else None."""
    record, output = Path(record), Path(output)
    if not record.exists() or not output.exists():
        return None
    try:
        info = json.loads(record.read_text())
    except (ValueError, OSError):
        return None
    if not isinstance(info, dict):  # valid JSON but not a record: as if there were none
        return None
    return info if all(info.get(k) == v for k, v in expect.items()) else None


def write_record(record: str | Path, info: dict) -> None:
    write_json(record, info)


def check_memory(n_bytes: float, *, what: str) -> None:
    """One sentence, before the work, when ``what`` would need more memory than the machine has
    (``n_bytes``: an estimate of its peak)."""
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no estimate
        return
    if n_bytes > available:
        raise InputError(
            f"{what} would need about {n_bytes / 2**30:.1f} GiB of memory, and this machine has "
            f"{available / 2**30:.1f} GiB free; choose smaller sizes."
        )
