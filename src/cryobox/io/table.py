"""The canonical particle table (``ParticleTable``) and the checks every reader runs (``validate``).

Columns are named and documented in ``io.schema``; ``io.relion`` and ``io.cryosparc`` convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.schema import cryosparc_field, relion_label

__all__ = ["ParticleTable", "validate", "where"]


def where(path: Path | None) -> str:
    """How a message names the table's file ("input" when it has none)."""
    return str(path) if path is not None else "input"


@dataclass
class ParticleTable:
    """Particles (or micrographs) in canonical columns, plus the columns carried through.

    ``kind`` is ``"particles"`` or ``"micrographs"``; ``source_format`` names what was read
    (``relion3.0``, ``relion3.1``, ``cryosparc``); ``optics_passthrough`` lists carried-through
    RELION labels that belong in the optics table.
    """

    data: pd.DataFrame
    kind: str = "particles"
    source_format: str = ""
    path: Path | None = None
    optics_passthrough: list[str] = field(default_factory=list)
    source_fields: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.data)

    def column(self, name: str) -> np.ndarray:
        """The column as a numpy array (float where numeric)."""
        return self.data[name].to_numpy()

    def require(self, *columns: str, purpose: str) -> None:
        """Raise ``InputError`` naming the first missing column and what it is needed for."""
        for col in columns:
            if col not in self.data.columns or self.data[col].isna().all():
                name = f"{self.path}" if self.path else "the particle table"
                raise InputError(
                    f"{name}: no {col} ({relion_label(col)} in RELION, {cryosparc_field(col)} in cryoSPARC) in the "
                    f"file, which {purpose} needs; "
                    "use a file with CTF parameters (after CTF estimation) or give the value on the command line."
                )


def validate(table: ParticleTable) -> None:
    """Reject physically impossible values with one clear sentence (``InputError``)."""
    d = table.data
    where_ = where(table.path)  # the file, for messages
    for col in ("defocus_u_a", "defocus_v_a"):
        if col in d:
            v = pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(v) | (v < 0)
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(
                    f"{where_}: {col} ({relion_label(col)} / ctf/df{'1' if col.endswith('u_a') else '2'}_A) is "
                    f"{v[i]} for row {i + 1} ({int(bad.sum())} bad row(s)); defocus must be a positive number of Å "
                    "(underfocus): redo or remove those rows' CTF estimates."
                )
    if "pixel_size_a" in d:
        v = pd.to_numeric(d["pixel_size_a"], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"{where_}: pixel size (rlnImagePixelSize / blob/psize_A) is {v[i]} for row {i + 1}; it must be a "
                "positive number of Å/px: fix the optics table (or the .cs blob/psize_A field)."
            )
    for col, label in (
        ("voltage_kv", "rlnVoltage"),
        ("cs_mm", "rlnSphericalAberration"),
        ("amplitude_contrast", "rlnAmplitudeContrast"),
    ):
        if col in d:
            v = pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(v) | (v <= 0 if col == "voltage_kv" else v < 0)
            if bad.any():
                raise InputError(f"{where_}: {label} ({col}) is {v[int(np.argmax(bad))]}; fix the optics table.")
