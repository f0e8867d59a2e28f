"""Where the files named in particle and micrograph files are: RELION's paths are relative to the
project folder (the working folder), cryobox also looks beside the file itself."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.mrc import read_mrc_header_shape
from cryobox.io.table import ParticleTable

__all__ = [
    "project_relative",
    "search_roots",
    "resolve_path",
    "find_stack",
    "stack_files",
    "fill_box_from_stacks",
]


def search_roots(table: ParticleTable) -> list[Path]:
    """Where the relative file names in a particle or micrograph file are looked up: the working
    folder first (RELION's project folder, which its paths are relative to), then the file's own,
    then the folders above it up to two levels (the project folder of a RELION job's
    ``Extract/job012/particles.star``, read from elsewhere). A project folder the user named
    (``table.project_dir``: cryoSPARC's ``blob/path`` is relative to its project) comes first."""
    roots = ([Path(table.project_dir)] if getattr(table, "project_dir", None) else []) + [Path.cwd()]
    if table.path is not None:
        here = Path(table.path).parent
        roots += [here, *list(here.resolve().parents)[:2]]
    out: list[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def resolve_path(path_text: str, roots: list[Path]) -> Path:
    """An absolute name as it is; a relative one under the first root that has it (else the first
    root, for the caller to report)."""
    p = Path(path_text)
    if p.is_absolute():
        return p
    for r in roots:
        if (r / p).exists():
            return r / p
    return roots[0] / p


def find_stack(path_text: str, roots: list[Path], *, where: str | Path | None = None) -> Path:
    """A particle stack named in a particle file (``where``, for messages); one clear sentence when
    it is nowhere."""
    if not str(path_text).strip():
        raise InputError(
            f"{where or 'the particle file'}: a particle has an empty image path (rlnImageName / blob/path); give "
            "every particle its stack."
        )
    src = resolve_path(path_text, roots)
    if not src.exists():
        raise InputError(
            f"{path_text}: particle stack not found (looked beside {', '.join(map(str, roots))}); "
            "check rlnImageName / blob/path (for a cryoSPARC .cs, give its project folder: --project-dir)."
        )
    return src


def stack_files(table: ParticleTable) -> list[Path]:
    """The particle stacks a table names that exist (each once), for the inputs a job protects."""
    if "image_path" not in table.data:
        return []
    roots = search_roots(table)
    found = (resolve_path(t, roots) for t in pd.unique(table.data["image_path"].astype(str)))
    return [p for p in found if p.exists()]


def fill_box_from_stacks(table: ParticleTable) -> str | None:
    """Give a table without an image size (RELION 3.0 has no ``rlnImageSize``) the box of its stacks.

    The size is read from the MRC header of the first stack the table names that exists (one
    header, not every stack); stacks that are not square are refused. Returns a note saying
    where the size came from, or None when the table had a size already or no stack was found.
    """
    d = table.data
    if "image_path" not in d or ("box_px" in d and not d["box_px"].isna().any()):
        return None

    roots = search_roots(table)
    for text in pd.unique(d["image_path"].astype(str))[:20]:
        stack = resolve_path(text, roots)
        shape = read_mrc_header_shape(stack) if stack.is_file() else None
        if shape is None:
            continue
        if shape[0] != shape[1] or shape[0] < 2:
            raise InputError(f"{stack}: images of {shape[0]} x {shape[1]} px; cryobox works on square particle images.")
        table.data = d.assign(box_px=np.full(len(d), shape[0], dtype=np.int64))
        return f"image size {shape[0]} px from the MRC header of {stack} (the particle file has no rlnImageSize)"
    return None


def project_relative(path: str) -> str:
    """RELION's convention: file names in STAR files are relative to the project folder (the
    folder the job runs in); paths outside it stay absolute."""
    rel = os.path.relpath(path, Path.cwd())
    return path if rel.startswith("..") else rel
