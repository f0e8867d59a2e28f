"""Coordinate files: RELION coordinate STAR files and EMAN .box files, as relion_preprocess takes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.star import read_numeric_loop, read_star_blocks

__all__ = ["read_coordinates"]


def read_coordinates(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Particle centres (x, y in micrograph px) from a RELION coordinate STAR file (the numeric
    fast path first, ``starfile`` for anything else) or an EMAN ``.box`` file (lower-left corner
    plus half the box)."""
    if path.suffix.lower() == ".box":
        try:
            arr = np.loadtxt(path, ndmin=2)
        except ValueError as exc:
            raise InputError(f"{path}: not an EMAN .box file ({exc}).") from None
        if arr.size == 0:
            return np.zeros(0), np.zeros(0)
        # .box: x, y of the lower-left corner, then box width and height
        return arr[:, 0] + arr[:, 2] / 2.0, arr[:, 1] + arr[:, 3] / 2.0
    simple = read_numeric_loop(path)
    if simple is not None and "rlnCoordinateX" in simple and "rlnCoordinateY" in simple:
        return simple["rlnCoordinateX"], simple["rlnCoordinateY"]
    blocks = read_star_blocks(path)
    for block in blocks.values():
        if "rlnCoordinateX" in block and "rlnCoordinateY" in block:
            out = []
            for label in ("rlnCoordinateX", "rlnCoordinateY"):
                raw = block[label]
                v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
                bad = ~np.isfinite(v)
                if bad.any():
                    i = int(np.argmax(bad))
                    raise InputError(
                        f"{path}: {label} of row {i + 1} is {raw.iloc[i]!r}, not a number of pixels; fix or remove "
                        "that row."
                    )
                out.append(v)
            return out[0], out[1]
    raise InputError(f"{path}: no rlnCoordinateX/rlnCoordinateY columns; give a RELION coordinate file.")
