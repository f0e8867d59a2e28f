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

__all__ = ["digest", "settings_digest", "read_record", "write_record", "check_memory", "available_memory_bytes"]


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
    """One sentence, before the work, when ``what`` would need more memory than this process can
    have (``n_bytes``: an estimate of its peak; ``available_memory_bytes``)."""
    available, where = available_memory_bytes()
    if available is not None and n_bytes > available:
        raise InputError(
            f"{what} would need about {n_bytes / 2**30:.1f} GiB of memory, and {where} has "
            f"{available / 2**30:.1f} GiB available; choose smaller sizes, or run it where there is more memory."
        )


_UNLIMITED = 2**60


def available_memory_bytes() -> tuple[float | None, str]:
    """The memory this process can still use, and where the bound comes from: the machine's
    available memory (MemAvailable: free memory plus the page cache the kernel can drop; free
    memory alone would refuse work on a machine whose cache holds yesterday's micrographs), and
    the limit of the process's control group when it is lower (a SLURM job's --mem, a container),
    less what the group uses beyond its droppable cache. (None, "") where neither can be read."""
    machine = _meminfo_available()
    group = _cgroup_available()
    if group is not None and (machine is None or group < machine):
        return group, "this job's memory limit (its control group: a SLURM --mem, a container)"
    if machine is not None:
        return machine, "this machine"
    return None, ""


def _meminfo_available() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # another POSIX system: free pages
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _read_number(path: Path) -> float | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return float(_UNLIMITED)
    try:
        return float(text)
    except ValueError:
        return None


def _stat_value(path: Path, keys: tuple[str, ...]) -> float:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name in keys:
                return float(value)
    except (OSError, ValueError):
        pass
    return 0.0


def _cgroup_available(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> float | None:
    """limit - usage + droppable file cache of this process's memory control group (v2 or v1),
    None when it has no limit or none can be read."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":  # cgroup v2
            folders, files = [root / rel, root], ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            folders = [root / "memory" / rel, root / "memory"]
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for folder in folders:
            limit = _read_number(folder / files[0])
            usage = _read_number(folder / files[1])
            if limit is None or usage is None:
                continue
            if limit >= _UNLIMITED:
                break
            return max(0.0, limit - usage + _stat_value(folder / "memory.stat", (files[2],)))
    return None
