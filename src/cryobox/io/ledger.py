"""What cryobox wrote: the record that decides what cryobox may replace or remove.

cryobox replaces or removes a file only when the ledger of its folder lists it as written by
cryobox *and* the file still has the size and modification time cryobox recorded (so a file the
user edited, or put there later under the same name, is never touched). Anything else in the way
is a refusal naming the file, never a deletion.

The ledger of a folder is ``.cryobox-written.jsonl`` in that folder: one JSON object a line,
appended under an exclusive ``flock`` (worker processes write stacks side by side), the last line
about a name winning:

- ``{"name": "particles.star", "size": 1234, "mtime_ns": ..., "ino": ...}`` — a file written;
- ``{"name": ".particles.star.ab12.star.part", "pending": true}`` — a temporary file being written
  (``io.atomic``); a killed run's leftovers are removed only when listed so;
- ``{"name": "run_box280_r1", "folder": true, "ino": ...}`` — a folder cryobox made for a program it
  runs (a refinement engine): cryobox may remove it whole, as long as it is the same folder;
- ``{"name": ..., "gone": true}`` — removed by cryobox.

Inputs are protected besides: ``protecting(paths)`` names the files a job reads, and any later
attempt to write over one of them (by the same path, a link, ``..`` or a hard link) is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from cryobox.errors import InputError

__all__ = [
    "LEDGER",
    "STATE_NAMES",
    "written_by_cryobox",
    "check_replaceable",
    "record_written",
    "record_pending",
    "record_folder",
    "remove_written",
    "remove_written_folder",
    "remove_leftovers",
    "compact",
    "protecting",
    "protected",
    "same_file",
]

LEDGER = ".cryobox-written.jsonl"
#: the hidden state of an output folder (``jobs.outputs``): its lock, its run record and its ledger,
#: always cryobox's by name
STATE_NAMES = (".cryobox.lock", ".cryobox-run.json", LEDGER)

# the inputs of the jobs running in this process, as (device, inode) and resolved paths
_PROTECTED: dict[tuple[int, int] | str, Path] = {}


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so no thread sees it changed)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _ledger(folder: Path) -> Path:
    return folder / LEDGER


def _read(folder: Path) -> dict[str, dict]:
    """The ledger of ``folder``: name -> last entry (empty when there is none, or it is damaged)."""
    entries: dict[str, dict] = {}
    try:
        text = _ledger(folder).read_text()
    except (OSError, UnicodeDecodeError):
        return entries
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: ignored (at worst a file is not recognised, never wrongly claimed)
        if isinstance(e, dict) and isinstance(e.get("name"), str):
            entries[e["name"]] = e
    return entries


def _append(folder: Path, entries: list[dict]) -> None:
    if not entries:
        return
    data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    fd = os.open(_ledger(folder), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def _stat_entry(path: Path) -> dict:
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def written_by_cryobox(path: str | os.PathLike) -> bool:
    """True when ``path`` is a plain file that its folder's ledger lists with its current size,
    modification time and inode (a link, a folder or an edited file is never cryobox's)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    e = _read(path.parent).get(path.name)
    if not e or e.get("pending") or e.get("gone") or e.get("folder"):
        return False
    st = path.stat()
    return e.get("size") == st.st_size and e.get("mtime_ns") == st.st_mtime_ns and e.get("ino") == st.st_ino


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when two paths name one file: the same path after resolving links and ``..``, or the
    same inode (a hard link)."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):
        return False


@contextlib.contextmanager
def protecting(paths: Iterable[str | os.PathLike | None]) -> Iterator[None]:
    """While the block runs, no output may be written over these inputs (by any path to them)."""
    added: dict = {}
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        with contextlib.suppress(OSError, RuntimeError):
            added.setdefault(str(p.resolve()), p)
            st = p.stat()
            added.setdefault((st.st_dev, st.st_ino), p)
    new = {k: v for k, v in added.items() if k not in _PROTECTED}
    _PROTECTED.update(new)
    try:
        yield
    finally:
        for k in new:
            _PROTECTED.pop(k, None)


def protected(path: str | os.PathLike) -> Path | None:
    """The protected input that ``path`` would overwrite, or None."""
    path = Path(path)
    with contextlib.suppress(OSError, RuntimeError):
        hit = _PROTECTED.get(str(path.resolve()))
        if hit is not None:
            return hit
        if path.exists():
            st = path.stat()
            return _PROTECTED.get((st.st_dev, st.st_ino))
    return None


def check_replaceable(path: str | os.PathLike, *, name: str | None = None) -> None:
    """Refuse, in one sentence, to write ``path`` when that would replace an input of the running
    job or a file (or link, or folder) that cryobox did not write. ``name``: the parameter or flag
    that chose the path, for the message."""
    path = Path(path)
    how = f"choose another `{name}` path" if name else "choose another output name or folder"
    hit = protected(path)
    if hit is not None:
        raise InputError(f"{path}: is an input of this job ({hit}) and would be overwritten; {how}.")
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        raise InputError(f"{path}: is a folder; {how} (a file name).")
    if not written_by_cryobox(path):
        raise InputError(
            f"{path}: exists and cryobox did not write it (no cryobox record lists it as it is now); cryobox never "
            f"replaces a file it did not write: move it away or {how}."
        )


def record_written(path: str | os.PathLike) -> None:
    """Add a file cryobox has just written to its folder's ledger."""
    path = Path(path)
    _append(path.parent, [_stat_entry(path)])


def record_pending(path: str | os.PathLike) -> None:
    """Name a temporary file cryobox is about to fill (so a killed run's leftover can be removed)."""
    path = Path(path)
    _append(path.parent, [{"name": path.name, "pending": True}])


def record_folder(path: str | os.PathLike) -> None:
    """Name a folder cryobox has just made for a program it runs (the program's files inside it
    are that run's)."""
    path = Path(path)
    _append(path.parent, [{"name": path.name, "folder": True, "ino": path.stat().st_ino}])


def _mark_gone(path: Path) -> None:
    _append(path.parent, [{"name": path.name, "gone": True}])


def remove_written(path: str | os.PathLike) -> None:
    """Remove a file that cryobox wrote; refuse (one sentence) anything else. Absent: nothing."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not written_by_cryobox(path):
        raise InputError(
            f"{path}: is in the way of this run's outputs and cryobox did not write it (no cryobox record lists it "
            "as it is now); cryobox never removes a file it did not write: move it away or choose another output "
            "folder."
        )
    path.unlink()
    _mark_gone(path)


def _made_folder(path: Path) -> bool:
    e = _read(path.parent).get(path.name)
    return bool(
        e and e.get("folder") and not path.is_symlink() and path.is_dir() and e.get("ino") == path.stat().st_ino
    )


def remove_written_folder(path: str | os.PathLike) -> None:
    """Remove a folder cryobox made for a program it ran (``record_folder``), with what that
    program wrote in it; refuse any other folder."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not _made_folder(path):
        raise InputError(
            f"{path}: is in the way of this run's outputs and cryobox did not make this folder; cryobox never "
            "removes what it did not write: move it away or choose another output folder."
        )
    shutil.rmtree(path)
    _mark_gone(path)


def unwritten_files(folder: str | os.PathLike) -> list[Path]:
    """The files under ``folder`` (not in a folder cryobox made for a program) that cryobox did
    not write, the ledgers themselves aside."""
    folder = Path(folder)
    found: list[Path] = []
    if folder.is_symlink() or not folder.is_dir():
        return [folder] if os.path.lexists(folder) and not written_by_cryobox(folder) else []
    for p in sorted(folder.iterdir()):
        if p.name in STATE_NAMES:
            continue
        if p.is_dir() and not p.is_symlink():
            if not _made_folder(p):
                found += unwritten_files(p)
        elif not written_by_cryobox(p) and not _is_pending(p):
            found.append(p)
    return found


def _is_pending(path: Path) -> bool:
    e = _read(path.parent).get(path.name)
    return bool(e and e.get("pending"))


def remove_tree_written(folder: str | os.PathLike) -> list[Path]:
    """Remove what cryobox wrote under ``folder`` (files, and folders it made for a program), and
    the folders left empty; files cryobox did not write stay where they are. Returns those kept."""
    folder = Path(folder)
    kept: list[Path] = []
    if folder.is_symlink() or not folder.is_dir():
        return kept
    for p in sorted(folder.iterdir()):
        if p.name in STATE_NAMES:
            continue
        if p.is_dir() and not p.is_symlink():
            if _made_folder(p):
                remove_written_folder(p)
            else:
                kept += remove_tree_written(p)
        elif written_by_cryobox(p):
            remove_written(p)
        elif not _is_pending(p):
            kept.append(p)
    remove_leftovers(folder, recursive=False)
    if not kept:  # nothing of hers: the folder and its state go too
        for name in STATE_NAMES:
            with contextlib.suppress(OSError):
                (folder / name).unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
    return kept


def remove_leftovers(folder: str | os.PathLike, *, recursive: bool = True) -> None:
    """Remove the temporary files of a killed run that the ledgers under ``folder`` list as pending."""
    folder = Path(folder)
    ledgers = folder.rglob(LEDGER) if recursive else [_ledger(folder)]
    for ledger in ledgers:
        if not ledger.is_file():
            continue
        gone = []
        for name, e in _read(ledger.parent).items():
            p = ledger.parent / name
            if e.get("pending") and p.is_file() and not p.is_symlink():
                p.unlink()
                gone.append({"name": name, "gone": True})
        _append(ledger.parent, gone)


def compact(folder: str | os.PathLike) -> None:
    """Rewrite a folder's ledger with only the entries that still describe what is there."""
    folder = Path(folder)
    if not _ledger(folder).is_file():
        return
    keep = []
    for name, e in _read(folder).items():
        p = folder / name
        if e.get("gone") or e.get("pending"):
            continue
        if (e.get("folder") and _made_folder(p)) or (not e.get("folder") and written_by_cryobox(p)):
            keep.append(e)

    fd, tmp = tempfile.mkstemp(prefix=LEDGER + ".", suffix=".new", dir=folder)  # a name no one else has
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in keep))
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, _ledger(folder))
