"""RELION STAR files: blocks in and out.

Reading goes through ``starfile`` (the reference parser); ``read_numeric_loop`` is a fast path
for files that are one loop of numbers (pickers' coordinate files), which declines anything else.
Writing uses pandas' C writer for the loop body, because ``starfile.write`` formats row by row
(35 s for a 1,000,000-particle file here); the output is plain RELION 3.1 STAR that ``starfile``
and RELION read (tested).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path

__all__ = ["read_numeric_loop", "read_star_blocks", "write_star_blocks"]


def read_star_blocks(path: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """All loop blocks of a STAR file as DataFrames keyed by block name (without ``data_``).

    Key-value (non-loop) blocks with one row are returned as one-row DataFrames; a file that
    cannot be parsed raises ``InputError`` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a STAR file; give the .star file inside it.")
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path.")
    import starfile  # imported here: the .cs path and the CLI's start-up do not pay for it

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many kinds on malformed text
        empty = _empty_loop(path) if type(exc).__name__ == "EmptyDataError" else None
        if empty is not None:
            raise InputError(
                f"{path}: data_{empty} has labels but no rows; write the file again from its program (or give the "
                "block its rows)."
            ) from None
        if "mismatch" in str(exc).lower():
            raise InputError(
                f"{path}: a row has fewer or more values than the loop has labels; the file is cut short or damaged "
                "(copy it again, or write it again from its program)."
            ) from None
        raise InputError(
            f"{path}: not a readable STAR file ({type(exc).__name__}: {exc}); check that it is RELION STAR text."
        ) from None
    out: dict[str, pd.DataFrame] = {}
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame) and any(not str(c).strip() for c in block.columns):
            raise InputError(
                f"{path}: data_{name} ends in the middle of its labels; the file is cut short (copy it again, or "
                "write it again from its program)."
            )
        if isinstance(block, pd.DataFrame):
            dup = block.columns[block.columns.duplicated()]
            if len(dup):
                raise InputError(
                    f"{path}: the label _{dup[0]} appears twice in data_{name}; remove one of the two columns."
                )
            out[name] = block
        elif isinstance(block, dict):
            out[name] = pd.DataFrame({k: [v] for k, v in block.items()})
    if not out:
        raise InputError(f"{path}: no data blocks found; is it a STAR file?")
    _refuse_repeated_blocks(path)
    return out


def _empty_loop(path: Path) -> str | None:
    """The name of the first loop block whose labels no row follows (read only when the parser
    has failed on one)."""
    block, in_loop, rows = None, False, 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in [*lines, "data_"]:
        t = line.strip()
        if t.startswith("data_"):
            if block is not None and in_loop and rows == 0:
                return block
            block, in_loop, rows = t[5:], False, 0
        elif t == "loop_":
            in_loop = True
        elif in_loop and t and not t.startswith(("_", "#")):
            rows += 1
    return None


def _refuse_repeated_blocks(path: Path) -> None:
    """Two blocks of one name (two data_particles): a parser keeps only one of them, silently;
    refuse the file instead (one pass of a compiled pattern over the bytes)."""
    import mmap
    import re

    with open(path, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            return
        with mm:
            seen: set[bytes] = set()
            for m in re.finditer(rb"(?m)^[ \t]*data_(\S*)", mm):
                name = m.group(1)
                if name in seen:
                    raise InputError(
                        f"{path}: the block data_{name.decode(errors='replace')} appears twice; a STAR file holds each "
                        "block once: merge the two (relion_star_handler --combine) or remove one."
                    )
                seen.add(name)


def read_numeric_loop(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """Fast path for the simplest STAR files, such as pickers' coordinate files: one data block
    holding one loop of numbers only. Returns its columns (label without the leading ``_``) as
    float64 arrays, or None for anything else (the caller then uses ``read_star_blocks``).

    ``starfile`` costs about 3 ms per file even for a few hundred rows (timed by hand here); a project with thousands
    of micrographs has as many coordinate files. Here a file is split once on whitespace.
    """
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    if text.count("data_") != 1 or text.count("loop_") != 1:
        return None
    labels: list[str] = []
    rows: list[str] = []
    seen_loop = False
    for line in text.splitlines():
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        if not seen_loop:
            if t == "loop_":
                seen_loop = True
            elif not t.startswith("data_"):
                return None  # key-value pairs before the loop
            continue
        if t.startswith("_") and not rows:
            labels.append(t[1:].split()[0])
        else:
            rows.append(t)
    if not labels:
        return None
    try:
        values = np.array(" ".join(rows).split(), dtype=np.float64)
    except ValueError:  # text in the loop (quoted names, ...)
        return None
    if values.size % len(labels):
        return None
    table = values.reshape(-1, len(labels))
    return {label: table[:, i] for i, label in enumerate(labels)}


def _format_loop(df: pd.DataFrame, float_format: str | None) -> str:
    header = ["loop_"] + [f"_{col} #{i + 1}" for i, col in enumerate(df.columns)]
    body = io.StringIO()
    if len(df):
        formatted = df.copy(deep=False)
        for col in formatted.columns:
            dtype = formatted[col].dtype
            if (
                dtype is np.dtype(object)
                or isinstance(dtype, pd.CategoricalDtype)
                or pd.api.types.is_string_dtype(dtype)
            ):
                s = formatted[col].astype(str)
                if (s.str.len() == 0).any() or s.str.contains(r"\s", regex=True).any():
                    s = s.map(lambda v: f'"{v}"')
                formatted[col] = s
            elif pd.api.types.is_bool_dtype(formatted[col]):
                formatted[col] = formatted[col].astype(np.int8)
        formatted.to_csv(
            body,
            sep=" ",
            header=False,
            index=False,
            float_format=float_format,
            na_rep="nan",
            quoting=3,
            lineterminator="\n",
        )
    return "\n".join(header) + "\n" + body.getvalue()


def _format_pairs(pairs: dict) -> str:
    lines = []
    for key, value in pairs.items():
        text = repr(value) if isinstance(value, float) else str(value)
        if isinstance(value, str) and (not value or any(c.isspace() for c in value)):
            text = f'"{value}"'
        lines.append(f"_{key} {text}")
    return "\n".join(lines) + "\n"


def write_star_blocks(
    path: str | os.PathLike,
    blocks: dict[str, pd.DataFrame | dict],
    *,
    float_format: str | None = None,
    version: int = 30001,
) -> Path:
    """Write blocks atomically as RELION 3.1+ STAR (``# version 30001`` before each block).

    A DataFrame becomes a loop; a dict becomes a key-value block (like postprocess.star's
    ``data_general``). Floats are written in their shortest exact form by default (round trips
    keep every value).
    """
    path = Path(path)
    parts = []
    for name, block in blocks.items():
        body = _format_pairs(block) if isinstance(block, dict) else _format_loop(block, float_format)
        parts.append(f"\n# version {version}\n\ndata_{name}\n\n" + body + "\n")
    text = "".join(parts)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
