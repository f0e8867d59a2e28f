"""The output folder a job writes into: one process at a time, outputs of one set of settings, and
never an input overwritten.

``OutputFolder(out, job=..., settings=..., inputs=[...], outputs=[...])`` is a context manager:

- **lock**: an exclusive ``flock`` on ``out/.cryobox.lock`` (released when the process ends, even
  by SIGKILL); a second run into the same folder stops with one sentence naming the process that
  holds it;
- **one set of settings**: ``out/.cryobox-run.json`` records the job and a digest of its settings
  and inputs. The outputs another run left in the folder (the paths in ``clear``: cryobox's own
  outputs, never other files) are removed before any work, so a STAR file never points at stacks
  written with other settings, even when this run is interrupted; ``cleared`` says so;
- **leftovers**: temporary files of a killed run (``.<name>.part``, see ``io.atomic``) are removed;
- **inputs**: an output path that is one of the inputs (or would replace one) is refused before
  any work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from cryobox.errors import InputError
from cryobox.jobs.records import digest

__all__ = ["OutputFolder", "refuse_overwriting_inputs", "refuse_star_unsafe_path"]

LOCK = ".cryobox.lock"
RECORD = ".cryobox-run.json"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_overwriting_inputs(outputs, inputs, *, name: str = "out") -> None:
    """One sentence, before any work, when an output path is one of the inputs or an existing
    folder (``name``: the parameter that set the output, for the message)."""
    ins = [Path(p) for p in inputs if p is not None]
    for out in outputs:
        if out is None:
            continue
        if Path(out).is_dir():
            raise InputError(f"{out}: is a folder; `{name}` takes the name of a file to write, not a folder.")
        for src in ins:
            if _same(Path(out), src):
                raise InputError(
                    f"{out}: is an input of this job and would be overwritten; choose another `{name}` path."
                )


def refuse_star_unsafe_path(path, *, what: str) -> None:
    """STAR files separate values by white space, so RELION cannot read a path that holds one."""
    text = str(Path(path).resolve())
    if any(c.isspace() for c in text):
        raise InputError(
            f"{path}: the {what} path holds a space ({text!r}); STAR files cannot name it so that RELION reads it "
            "back: choose a folder without spaces."
        )


class OutputFolder:
    """See the module docstring. ``clear`` lists what a different run's outputs are (files and
    folders, relative to ``out``); ``cleared`` lists what was removed."""

    def __init__(self, out, *, job: str, settings, inputs=(), outputs=(), clear=()):
        self.out = Path(out)
        self.job = job
        self.key = digest({"job": job, "settings": settings, "inputs": [str(Path(p).resolve()) for p in inputs]})
        self.inputs = [Path(p) for p in inputs]
        self.outputs = [Path(p) for p in outputs]
        self.cleared: list[str] = []
        self.clear = tuple(clear)
        self._fh = None

    def __enter__(self) -> OutputFolder:
        import fcntl

        refuse_overwriting_inputs(self.outputs, self.inputs)
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"{self.out}: exists and is not a folder; choose another output folder.")
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
        self._remove_leftovers()
        record = self.out / RECORD
        old = None
        if record.exists():
            try:
                old = json.loads(record.read_text())
            except (OSError, ValueError):
                old = {}
        other = old is not None and old.get("key") != self.key
        self.cleared = [c for c in self.clear if (self.out / c).exists()] if other or old is None else []
        for c in self.cleared:
            p = self.out / c
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        from cryobox.io.jsonio import write_json

        write_json(record, {"job": self.job, "key": self.key})
        return self

    def _remove_leftovers(self) -> None:
        """Temporary files of a run that was killed (``io.atomic`` names them ``.<name>.part``)."""
        for p in self.out.rglob(".*.part"):
            if p.is_file():
                p.unlink()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and self._fh is not None:
            # a failed run (a full disk, a bad micrograph): its workers are stopped by now, so the
            # temporary files they were writing go (a killed run's go at the next run's start)
            with contextlib.suppress(OSError):
                self._remove_leftovers()
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        return False
