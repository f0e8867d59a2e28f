"""Coordinate files: RELION coordinate STAR files and EMAN .box files, as relion_preprocess takes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.particles import read_particles
from cryobox.io.star import read_numeric_loop, read_star_blocks, write_star_blocks
from cryobox.io.table import ParticleTable

__all__ = ["read_coordinates", "write_coordinates"]


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


def write_coordinates(path: Path, x_px: np.ndarray, y_px: np.ndarray) -> None:
    """A RELION coordinate STAR file (one loop of rlnCoordinateX, rlnCoordinateY in micrograph px),
    as relion_preprocess reads it."""
    write_star_blocks(path, {"": pd.DataFrame({"rlnCoordinateX": x_px, "rlnCoordinateY": y_px})})


def particles_from_micrographs(
    micrographs_star: Path, *, coords_dir: Path | None, coords_suffix: str, keep_going: bool = False
) -> tuple[ParticleTable, list[str]]:
    """A particle table from a micrographs STAR (with CTF) plus one coordinate file per micrograph
    (``<coords_dir>/<micrograph stem><coords_suffix>``, the layout relion_preprocess takes)."""
    mics = read_particles(micrographs_star)
    if mics.kind != "micrographs" or "micrograph_name" not in mics.data:
        raise InputError(
            f"{micrographs_star}: not a RELION micrographs STAR file (no data_micrographs with rlnMicrographName)."
        )
    names = mics.data["micrograph_name"].astype(str)
    twice = names[names.duplicated()]
    if len(twice):
        raise InputError(
            f"{micrographs_star}: rlnMicrographName {twice.iloc[0]} is listed twice (rows "
            f"{', '.join(str(i + 1) for i in names.index[names == twice.iloc[0]][:3])}); its particles would be "
            "extracted twice: remove the repeated row."
        )
    base = micrographs_star.parent
    cdir = coords_dir if coords_dir is not None else None
    notes: list[str] = []
    known_stems = set()
    which, xs, ys = [], [], []  # per micrograph with particles: its row, coordinates
    for i, name in enumerate(mics.data["micrograph_name"].astype(str)):
        stem = Path(name).stem
        known_stems.add(stem)
        candidates = [(cdir / (stem + coords_suffix)) if cdir else (base / Path(name).parent / (stem + coords_suffix))]
        if cdir is None:
            candidates.append(Path(name).parent / (stem + coords_suffix))
        cfile = next((c for c in candidates if c.exists()), None)
        if cfile is None:
            notes.append(f"no coordinate file for {name} (looked for {candidates[0]}); no particles from it.")
            continue
        x, y = read_coordinates(cfile)
        if x.size == 0:
            continue
        which.append(i)
        xs.append(x)
        ys.append(y)
    if cdir is not None and cdir.is_dir():
        for f in sorted(cdir.glob("*" + coords_suffix)):
            stem = f.name[: -len(coords_suffix)]
            if stem not in known_stems:
                msg = f"{f}: coordinate file for micrograph '{stem}', which {micrographs_star} does not list"
                if not keep_going:
                    raise InputError(msg + "; add the micrograph or remove the file (or `keep_going`).")
                notes.append(msg + "; ignored.")
    if not which:
        raise InputError(
            f"{micrographs_star}: no particles found (coordinate suffix '{coords_suffix}'); check `coords_dir` and "
            "`coords_suffix`."
        )
    # every particle carries its micrograph's row (name, CTF, optics group), in one take
    data = mics.data.iloc[np.repeat(which, [x.size for x in xs])].reset_index(drop=True)
    data.insert(0, "coord_y_px", np.concatenate(ys))
    data.insert(0, "coord_x_px", np.concatenate(xs))
    table = ParticleTable(
        data,
        kind="particles",
        source_format=mics.source_format,
        path=micrographs_star,
        optics_passthrough=[c for c in mics.optics_passthrough if c != "rlnMicrographPixelSize"],
    )
    return table, notes
