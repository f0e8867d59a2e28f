"""The canonical particle table (``ParticleTable``) and the checks every reader runs (``validate``).

Columns are named and documented in ``io.schema``; ``io.relion`` and ``io.cryosparc`` convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.schema import COLUMNS, CTF_REQUIRED, RANGES, cryosparc_field, relion_label

__all__ = ["ParticleTable", "validate", "where"]


def where(path: Path | None) -> str:
    """How a message names the table's file ("input" when it has none)."""
    return str(path) if path is not None else "input"


@dataclass
class ParticleTable:
    """Particles (or micrographs) in canonical columns, plus the columns carried through.

    ``kind`` is ``"particles"`` or ``"micrographs"``; ``source_format`` names what was read
    (``relion3.0``, ``relion3.1``, ``cryosparc``); ``optics_passthrough`` lists carried-through
    RELION labels that belong in the optics table; ``project_dir``: the folder its relative file
    names are relative to, when the user names it (a cryoSPARC project folder for a .cs exported
    elsewhere: ``io.paths.search_roots`` looks there first).
    """

    data: pd.DataFrame
    kind: str = "particles"
    source_format: str = ""
    path: Path | None = None
    optics_passthrough: list[str] = field(default_factory=list)
    source_fields: tuple[str, ...] = ()
    project_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.data)

    def with_data(self, data: pd.DataFrame, *, path: Path | None = None) -> ParticleTable:
        """The same kind of table (format, optics columns carried through) holding ``data``; a
        new table belongs to no file until it is written (``path``)."""
        return ParticleTable(
            data,
            kind=self.kind,
            source_format=self.source_format,
            path=path,
            optics_passthrough=list(self.optics_passthrough),
            source_fields=self.source_fields,
            project_dir=self.project_dir,
        )

    def column(self, name: str) -> np.ndarray:
        """The column as a numpy array (float where numeric)."""
        return self.data[name].to_numpy()

    def require(self, *columns: str, purpose: str) -> None:
        """Raise ``InputError`` naming the first missing column and what it is needed for (or, for a
        file with no rows, saying so: every column of an empty file is "missing")."""
        if len(self.data) == 0:
            name = f"{self.path}" if self.path else "the particle table"
            raise InputError(
                f"{name}: 0 particles (the file has no rows), nothing for {purpose}; give a file that lists particles."
            )
        for col in columns:
            if col not in self.data.columns or self.data[col].isna().all():
                name = f"{self.path}" if self.path else "the particle table"
                fix = (
                    "use a file with CTF parameters (after CTF estimation) or give the value on the command line"
                    if col in CTF_FIXABLE
                    else "use a file written by the program that made the images (an Extract job's particles), "
                    "not a picking or selection file"
                    if col in ("image_path", "image_index")
                    else "use a file that has it (a refinement's output for poses, half sets and shifts)"
                )
                raise InputError(
                    f"{name}: no {col} ({relion_label(col)} in RELION, {cryosparc_field(col)} in cryoSPARC) in the "
                    f"file, which {purpose} needs; {fix}."
                )


#: columns a user can also give on the command line (or get from CTF estimation)
CTF_FIXABLE = (*CTF_REQUIRED, "pixel_size_a", "box_px", "phase_shift_deg")


def validate(table: ParticleTable) -> None:
    """Reject impossible values with one clear sentence (``InputError``): every canonical numeric
    column must be finite and inside its range (``io.schema.RANGES``)."""
    d = table.data
    where_ = where(table.path)  # the file, for messages
    for col, (lo, hi, lo_ok, hi_ok, rule) in RANGES.items():
        if col not in d:
            continue
        v = pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=np.float64)
        text = d[col].to_numpy()
        if text.dtype == object:  # text where a number belongs: name the text, not the NaN it became
            not_number = np.isnan(v) & pd.notna(text) & (pd.Series(text).astype(str).str.lower() != "nan").to_numpy()
            if not_number.any():
                i = int(np.argmax(not_number))
                raise InputError(
                    f"{where_}: {col} ({relion_label(col)} / {cryosparc_field(col)}) is the text {str(text[i])!r} for "
                    f"row {i + 1} ({int(not_number.sum())} such row(s)); it must be a number: fix or remove those rows."
                )
        if col == "defocus_u_a" and len(v) and 0 < np.nanmedian(v) <= 20.0:
            raise InputError(
                f"{where_}: defocus ({relion_label(col)} / {cryosparc_field(col)}) has a median of {np.nanmedian(v):g} "
                "Å; RELION and cryoSPARC store defocus in Å (1.8 µm is 18000 Å): these look like µm, multiply them by "
                "10,000."
            )
        bad = ~np.isfinite(v) | (v < lo) | (v > hi) | ((v == lo) & (not lo_ok)) | ((v == hi) & (not hi_ok))
        if bad.any():
            i = int(np.argmax(bad))
            fix = (
                "redo or remove those rows' CTF estimates"
                if col.startswith("defocus")
                else "fix the optics table (or the .cs field)"
                if COLUMNS[col].block == "optics" or col == "pixel_size_a"
                else "fix or remove those rows"
            )
            shown = (
                f"{int(v[i]) + 1:06d}@ (blob/idx {int(v[i])})" if col == "image_index" and np.isfinite(v[i]) else v[i]
            )
            raise InputError(
                f"{where_}: {col} ({relion_label(col)} / {cryosparc_field(col)}) is {shown} for row {i + 1} "
                f"({int(bad.sum())} bad row(s)); it must be {rule}: {fix}."
            )
