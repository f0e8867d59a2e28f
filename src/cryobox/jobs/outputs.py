"""The output folder a job writes into: one process at a time, outputs of one set of settings, and
never a file lost that cryobox did not write.

``OutputFolder(out, job=..., settings=..., inputs=[...], outputs=[...], owns=[...])`` is a context
manager. Before any work it checks, and it refuses in one sentence:

- **inputs**: an output (a path in ``outputs``, or anything under a path in ``owns``) that is one of
  the inputs, by the same path, a link, ``..`` or a hard link; the inputs are also protected while
  the job runs (``io.ledger.protecting``), so no later write can replace one;
- **files cryobox did not write**: a file in the way of this job's outputs (a path in ``outputs``
  or ``owns``, or a file inside an owned folder) that no cryobox ledger lists as written by
  cryobox with its current size and time (``io.ledger``): never deleted, never replaced;
- **lock**: an exclusive ``flock`` on ``out/.cryobox.lock`` (released when the process ends, even
  by SIGKILL); a second run into the same folder stops with one sentence naming the process that
  holds it;
- **one set of settings**: ``out/.cryobox-run.json`` records the job and a digest of its settings
  and inputs. When it names other settings (or is absent) the files cryobox wrote under ``owns``
  are removed before any work (``fresh=True``), so a STAR file never points at stacks written with
  other settings, even when this run is interrupted; ``cleared`` says what was removed;
- **leftovers**: temporary files of a killed run that the ledgers list (see ``io.atomic``) are
  removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cryobox.errors import InputError
from cryobox.io import ledger
from cryobox.io.jsonio import write_json
from cryobox.io.starnames import star_unsafe_char
from cryobox.jobs.records import digest

__all__ = [
    "OutputFolder",
    "refuse_overwriting_inputs",
    "refuse_star_unsafe_path",
    "check_outputs",
    "written_together",
]

LOCK, RECORD, _ = ledger.STATE_NAMES
_OWN_STATE = ledger.STATE_NAMES


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` (resolved) is ``folder`` or lies under it (resolved)."""
    try:
        p, f = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return False
    return p == f or f in p.parents


def check_outputs(outputs, inputs, *, owns=(), names=None) -> None:
    """Refuse, before any work, outputs that would replace an input or a file cryobox did not write.

    ``outputs``: output file paths (None entries are skipped); ``names``: the parameter (flag) that
    set each, for the messages; ``owns``: folders or files the job writes into as a whole; no input
    may lie under them. Two outputs that name one file are refused too.
    """
    outs = [(Path(o), (names[i] if names else "out")) for i, o in enumerate(outputs) if o is not None]
    ins = [Path(p) for p in inputs if p is not None]
    for i, (out, name) in enumerate(outs):
        for src in ins:
            if ledger.same_file(out, src):
                raise InputError(
                    f"{out}: is an input of this job and would be overwritten; choose another `{name}` path."
                )
        for other, other_name in outs[:i]:
            if ledger.same_file(out, other):
                raise InputError(
                    f"{out}: given for both `{other_name}` and `{name}`; one would overwrite the other: give each "
                    "its own path."
                )
        ledger.check_replaceable(out, name=name)
    for own in owns:
        own = Path(own)
        for src in ins:
            if _inside(src, own):
                real = src.resolve()
                named = f"{src}" if real == src.absolute() else f"{src} ({real})"
                raise InputError(
                    f"{named}: is an input of this job and lies in {own}, which this job writes; move the input or "
                    "choose another output folder."
                )
        foreign = ledger.unwritten_files(own)
        if foreign:
            raise InputError(
                f"{foreign[0]}: is in the way of this job's outputs ({own}) and cryobox did not write it (no cryobox "
                "record lists it as it is now); cryobox never replaces or removes a file it did not write: move it "
                "away or choose another output folder."
            )


@contextlib.contextmanager
def written_together():
    """Outputs of one run that stand or fall together: the block calls ``wrote(path)`` after each;
    when the block fails (a full disk, a file-size limit, an interruption), the ones it wrote are
    removed (they are in the ledger), so no output is left that looks like a finished run."""
    written: list[Path] = []
    try:
        yield lambda path: written.append(Path(path))
    except BaseException:
        for p in written:
            with contextlib.suppress(OSError, InputError):
                ledger.remove_written(p)
        raise


def refuse_overwriting_inputs(outputs, inputs, *, name: str = "out") -> None:
    """One sentence, before any work, when an output path is one of the inputs, an existing folder,
    or a file cryobox did not write (``name``: the parameter that set the outputs)."""
    check_outputs(list(outputs), inputs, names=[name] * len(list(outputs)))


def refuse_star_unsafe_path(path, *, what: str) -> None:
    """Before any work: a folder whose path, as a STAR file will name it (absolute, or relative to
    the working folder), holds a character RELION or cryobox would read back differently
    (``io.starnames.STAR_UNSAFE``: white space, #, quotes, @, :, ...), or begins with _ (a label)."""

    full = Path(path).resolve()
    rel = os.path.relpath(full, Path.cwd())
    for text in (str(full), rel):
        c = star_unsafe_char(text)
        if c is not None:
            shown = "a space" if c == " " else ("white space" if c.isspace() else repr(c))
            raise InputError(
                f"{path}: the {what} path holds {shown} ({text!r}); a STAR file cannot name it so that RELION and "
                "cryobox read it back alike: choose a folder name of letters, digits and . _ - + = , ~ only."
            )
    if not rel.startswith("..") and rel.startswith("_"):
        raise InputError(
            f"{path}: the {what} path begins with _ ({rel!r}), which a STAR file reads as a label, not a value; "
            "choose a name that begins with a letter or digit."
        )


class OutputFolder:
    """See the module docstring. ``owns`` lists what the job writes (files and folders, relative to
    ``out``); with ``fresh`` (the default) what cryobox wrote there for other settings is removed
    first; ``cleared`` lists what was removed."""

    def __init__(self, out, *, job: str, settings, inputs=(), outputs=(), owns=(), fresh: bool = True):
        self.out = Path(out)
        self.job = job
        self.key = digest({"job": job, "settings": settings, "inputs": [str(Path(p).resolve()) for p in inputs]})
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.outputs = [Path(p) for p in outputs if p is not None]
        self.cleared: list[str] = []
        self.owns = tuple(owns)
        self.fresh = fresh
        self._fh = None
        self._protecting = None
        self._made = False

    def __enter__(self) -> OutputFolder:
        import fcntl

        if os.path.lexists(self.out) and not self.out.is_dir():
            raise InputError(f"{self.out}: exists and is not a folder; choose another output folder.")
        for src in self.inputs:
            if _inside(src, self.out) and src.name in _OWN_STATE:
                raise InputError(f"{src}: is cryobox's own record of {self.out}, not an input; give the file itself.")
        check_outputs(
            self.outputs, self.inputs, owns=[self.out / c for c in self.owns], names=["out"] * len(self.outputs)
        )
        self._made = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.out / LOCK, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            self._fh = None
            raise InputError(
                f"{self.out}: another cryobox run ({holder}) is writing into this folder; wait for it to end or "
                "choose another output folder."
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()}\n")
        self._fh.flush()
        ledger.remove_leftovers(self.out)
        record = self.out / RECORD
        old = None
        if record.exists():
            try:
                old = json.loads(record.read_text())
            except (OSError, ValueError):
                old = {}
            if not isinstance(old, dict):
                old = {}
        other = old is None or old.get("key") != self.key
        if self.fresh and other:
            for c in self.owns:
                p = self.out / c
                if not os.path.lexists(p):
                    continue
                self.cleared.append(c)
                if p.is_dir() and not p.is_symlink():
                    ledger.remove_tree_written(p)
                else:
                    ledger.remove_written(p)
        ledger.compact(self.out)
        write_json(record, {"job": self.job, "key": self.key}, state=True)
        self._protecting = ledger.protecting(self.inputs)
        self._protecting.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and self._fh is not None:
            # a failed run (a full disk, a bad micrograph): its workers are stopped by now, so the
            # temporary files they were writing go (a killed run's go at the next run's start)
            with contextlib.suppress(OSError):
                ledger.remove_leftovers(self.out)
        if self._protecting is not None:
            self._protecting.__exit__(None, None, None)
            self._protecting = None
        if self._fh is not None:
            import fcntl

            if exc_type is not None and self._made:
                self._unmake()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        return False

    def _unmake(self) -> None:
        """A run that failed in a folder it made: what it wrote there goes (only files the ledger
        lists), and when nothing but cryobox's own state is left, the folder too (a refused run
        leaves nothing behind)."""
        for c in self.owns:
            p = self.out / c
            with contextlib.suppress(OSError, InputError):
                if p.is_dir() and not p.is_symlink():
                    ledger.remove_tree_written(p)
                else:
                    ledger.remove_written(p)
        names = {p.name for p in self.out.iterdir()}
        if names <= set(_OWN_STATE):
            for name in names:
                with contextlib.suppress(OSError):
                    (self.out / name).unlink()
            with contextlib.suppress(OSError):
                self.out.rmdir()
