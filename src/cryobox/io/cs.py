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

__all__ = ["read_cs_array", "write_cs_array"]

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


def write_cs_array(path: str | os.PathLike, records: np.ndarray) -> Path:
    """Write a structured array as a ``.cs`` file (``np.save`` format, atomically)."""
    if records.dtype.names is None:
        raise ValueError("a .cs file holds a structured array with named fields")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object, so numpy does not append ".npy"
            np.save(fh, records, allow_pickle=False)
    return path
