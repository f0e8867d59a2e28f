"""cryoSPARC ``.cs`` files: numpy structured arrays (and cryosparc-tools' newer CSDAT format).

A ``.cs`` file is normally ``np.save`` of a structured array whose fields are named
``group/field`` (``ctf/df1_A``, ``blob/path``...). cryoSPARC 4.4+ may also write the compressed
CSDAT stream; that one is read through cryosparc-tools' ``Dataset``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path

__all__ = ["CSG_RESULTS", "csg_text", "read_cs_array", "write_cs_array", "write_csg"]

#: the particle results a .csg can name, each stored under its own field prefix in the .cs (the
#: result ``blob`` holds ``blob/path``, ``blob/idx``...); other prefixes stay in the .cs unnamed
CSG_RESULTS = ("blob", "ctf", "alignments2D", "alignments3D", "location", "pick_stats")
#: the cryoSPARC version whose exported .csg files this layout was checked against
CSG_VERSION = "v4.4.1"

_NUMPY_MAGIC = b"\x93NUMPY"
_CSDAT_MAGIC = b"\x95CSDAT"


def read_cs_array(path: str | os.PathLike) -> np.ndarray:
    """The structured array in a ``.cs`` file; ``InputError`` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path.")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == _CSDAT_MAGIC:
        try:
            from cryosparc.dataset import Dataset
        except ImportError:  # pragma: no cover - cryosparc-tools is a dependency
            raise InputError(f"{path}: is a compressed CSDAT .cs file; install cryosparc-tools to read it.") from None
        try:
            return Dataset.load(path).to_records(fixed=True)
        except Exception as exc:
            raise InputError(f"{path}: damaged CSDAT .cs file ({exc}); re-export it from cryoSPARC.") from None
    if magic != _NUMPY_MAGIC:
        raise InputError(
            f"{path}: not a cryoSPARC .cs file (no numpy header); export the particles from cryoSPARC again."
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # fields of Python objects: never unpickled (it could run code)
            raise InputError(
                f"{path}: holds fields of Python objects (pickled), which cryobox never loads; cryoSPARC writes text "
                "and numbers: export the dataset from cryoSPARC (or save it with fixed-width text fields)."
            ) from None
        raise InputError(
            f"{path}: truncated or damaged .cs file ({type(exc).__name__}: {exc}); re-export it from cryoSPARC."
        ) from None
    except Exception as exc:
        raise InputError(
            f"{path}: truncated or damaged .cs file ({type(exc).__name__}: {exc}); re-export it from cryoSPARC."
        ) from None
    if arr.dtype.names is None:
        raise InputError(f"{path}: a numpy file, but not a cryoSPARC dataset (no named fields).")
    return arr


def csg_text(records: np.ndarray, cs_name: str, *, name: str = "particles", title: str = "Particles",
             created: str | None = None) -> str:  # fmt: skip
    """The ``.csg`` (results group) that lets cryoSPARC's Import Result Group job read ``cs_name``.

    YAML, as cryoSPARC's own exports write it: ``created``, ``group`` (name, title, type),
    ``results`` (one entry per result: ``metafile`` with ``>`` meaning "beside this .csg",
    ``num_items``, ``type: particle.RESULT``) and ``version``. A result is listed when the .cs has
    fields under its prefix (``CSG_RESULTS``)."""
    import datetime

    prefixes = {f.split("/", 1)[0] for f in records.dtype.names or () if "/" in f}
    if created is None:
        created = datetime.datetime.now().isoformat(sep=" ")
    lines = [
        f"created: {created}",
        "group:",
        f"  description: {title}, written by cryobox",
        f"  name: {name}",
        f"  title: {title}",
        "  type: particle",
        "results:",
    ]
    for result in sorted(r for r in CSG_RESULTS if r in prefixes):
        lines += [
            f"  {result}:",
            f"    metafile: '>{cs_name}'",
            f"    num_items: {len(records)}",
            f"    type: particle.{result}",
        ]
    lines.append(f"version: {CSG_VERSION}")
    return "\n".join(lines) + "\n"


def write_csg(path: str | os.PathLike, records: np.ndarray, cs_path: str | os.PathLike) -> Path:
    """Write the ``.csg`` of the ``.cs`` at ``cs_path`` (which must sit beside it), atomically."""
    path = Path(path)
    if Path(cs_path).parent.resolve() != path.parent.resolve():
        raise ValueError("a .csg names its .cs files relative to its own folder: write them side by side")
    with atomic_path(path) as tmp:
        tmp.write_text(csg_text(records, Path(cs_path).name))
    return path


def write_cs_array(path: str | os.PathLike, records: np.ndarray) -> Path:
    """Write a structured array as a ``.cs`` file (``np.save`` format, atomically)."""
    if records.dtype.names is None:
        raise ValueError("a .cs file holds a structured array with named fields")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object, so numpy does not append ".npy"
            np.save(fh, records, allow_pickle=False)
    return path
