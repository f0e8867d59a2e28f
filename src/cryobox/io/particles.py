"""One canonical particle table, read from and written to RELION STAR and cryoSPARC ``.cs``.

A ``ParticleTable`` (``io.table``) wraps a DataFrame with one row per particle (or per micrograph,
for a micrograph file). Its canonical columns carry their unit in the name; ``io.schema.SCHEMA``
lists each with its RELION label and cryoSPARC field. ``io.relion`` and ``io.cryosparc`` convert;
``io.paths`` finds the files a table names. This module reads and writes files and re-exports
those names.

Every other column is carried through under its original name (``rln...`` labels, cryoSPARC
``group/field`` names; multi-valued fields split as ``field[0]``, ``field[1]``...), so round trips
keep every value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.cryosparc import particles_from_cs, particles_to_cs
from cryobox.io.cs import read_cs_array, write_cs_array, write_csg
from cryobox.io.paths import fill_box_from_stacks, find_stack, resolve_path, search_roots
from cryobox.io.relion import particles_from_star_blocks, particles_to_star_blocks
from cryobox.io.schema import relion_label
from cryobox.io.star import read_star_blocks, write_star_blocks
from cryobox.io.table import ParticleTable, validate, where

__all__ = [
    "ParticleTable",
    "check_star_text",
    "read_particles",
    "particles_from_star_blocks",
    "particles_from_cs",
    "particles_to_star_blocks",
    "particles_to_cs",
    "write_star",
    "write_cs",
    "search_roots",
    "resolve_path",
    "find_stack",
    "fill_box_from_stacks",
    "validate",
    "write_particles",
    "FORMATS",
    "ParticleFormat",
]


def read_particles(path: str | os.PathLike, *, full: bool = True) -> ParticleTable:
    """Read a RELION ``.star`` or cryoSPARC ``.cs`` particle or micrograph file.

    ``full=False``: a faster read of the canonical columns only, for jobs that do not write the
    table back (see ``particles_from_cs``).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path.")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a particle file; give the .star or .cs file inside it.")
    if not path.is_file():  # a named pipe or a device: reading it to sniff its type could wait forever
        raise InputError(f"{path}: not a regular file (a pipe, socket or device); give the .star or .cs file itself.")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        fmt = next((f for f in FORMATS.values() if f.sniff(head)), None)
    if fmt is None:
        raise InputError(f"{path}: unknown file type; give a RELION .star or cryoSPARC .cs particle file.")
    return fmt.read(path, full)


def write_particles(path: str | os.PathLike, table: ParticleTable) -> Path:
    """Write a particle table in the format its suffix names (``FORMATS``), atomically."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = " or ".join(FORMATS)
        raise ValueError(f"particle files are {known}, not {path.suffix or 'a file without a suffix'} ({path})")
    return fmt.write(path, table)


def check_star_text(table: ParticleTable, *, purpose: str, skip: tuple[str, ...] = ()) -> None:
    """One sentence, before any work, when a text column the STAR file will hold has a value a
    STAR file cannot hold (``io.starnames.STAR_UNSAFE``: white space, #, quotes, @, ...); file names
    cryobox makes itself are made safe, the user's own (micrograph names, carried columns) are not
    renamed behind her back. ``skip``: columns the job replaces before writing."""

    d = table.data
    for col in d.columns:
        if d[col].dtype != object or col in skip:
            continue
        bad = d[col].astype(str).str.contains(r"[\s#'\"]", regex=True).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{where(table.path)}: {relion_label(col)} of row {i + 1} is {str(d[col].iloc[i])!r}, which a STAR "
                f"file cannot hold (white space, # or a quote); {purpose} writes a STAR file: rename it (e.g. spaces "
                "to _) first."
            )


def write_star(path: str | os.PathLike, table: ParticleTable) -> Path:
    """Write a RELION 3.1+ STAR file (optics + particles/micrographs), atomically; text a STAR file
    cannot hold is refused (``check_star_text``) before anything is written."""
    check_star_text(table, purpose="this job")
    return write_star_blocks(path, particles_to_star_blocks(table))


def write_cs(path: str | os.PathLike, table: ParticleTable, *, seed: int | None = None, group: bool = False) -> Path:
    """Write a cryoSPARC ``.cs`` file, atomically; with ``group`` also its ``.csg`` beside it (same
    name), which cryoSPARC's Import Result Group job reads."""
    records = particles_to_cs(table, seed=seed)
    path = write_cs_array(path, records)
    if group:
        write_csg(Path(path).with_suffix(".csg"), records, path)
    return path


@dataclass(frozen=True)
class ParticleFormat:
    """One particle-file format: its name, how to read a path (``full`` as in ``read_particles``),
    how to write a table, and how to recognise its first bytes when the suffix says nothing."""

    name: str
    read: Callable[[Path, bool], ParticleTable]
    write: Callable[[Path, ParticleTable], Path]
    sniff: Callable[[bytes], bool]


#: every particle-file format, by suffix: the one table ``read_particles``, ``write_particles``
#: and ``cryobox.api`` dispatch through (a new format is a module in io/ and a row here)
FORMATS = {
    ".star": ParticleFormat(
        "RELION STAR",
        lambda path, full: particles_from_star_blocks(read_star_blocks(path), path=path, full=full),
        write_star,
        lambda head: b"data_" in head and b"_rln" in head,
    ),
    ".cs": ParticleFormat(
        "cryoSPARC .cs",
        lambda path, full: particles_from_cs(read_cs_array(path), path=path, full=full),
        write_cs,
        lambda head: head.startswith(b"\x93NUMPY") or head.startswith(b"\x95CSDAT"),
    ),
}
