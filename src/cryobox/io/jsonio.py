"""JSON out: plain Python values from numpy ones (non-finite floats become null), written atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from cryobox.io.atomic import atomic_path

__all__ = ["jsonable", "write_json"]


def jsonable(obj):
    """``obj`` with numpy scalars as plain numbers, tuples as lists, and NaN / inf as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj, *, indent: int | None = None, state: bool = False) -> Path:
    """Write ``jsonable(obj)`` to ``path`` atomically (strict JSON: no NaN); ``state``: see ``atomic_path``."""
    with atomic_path(path, state=state) as tmp:
        tmp.write_text(json.dumps(jsonable(obj), indent=indent, allow_nan=False))
    return Path(path)
