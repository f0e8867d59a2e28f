"""What the advisor and explain read from particle files: per-particle defocus, optics and
positions, with where they came from (``AdviseInputs``), shared by ``advise``, ``explain``,
``judge``, ``report`` and ``demo``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.mrc import read_mrc_header_shape
from cryobox.io.particles import ParticleTable, read_particles, resolve_path, search_roots
from cryobox.io.schema import checked, checked_defocus

__all__ = ["AdviseInputs", "fill_micrograph_shapes", "inputs_from_tables", "inputs_from_range", "gather_inputs"]


def fill_micrograph_shapes(table: ParticleTable) -> bool:
    """Add micrograph sizes from the micrographs' MRC headers when the metadata lacks them.

    RELION STAR files do not record micrograph sizes; when every micrograph named in the table
    is found (relative to the current folder or to the STAR file's folder), their headers give
    them. Returns True when sizes are known afterwards. Inputs are never modified on disk.
    """
    d = table.data
    if "micrograph_width_px" in d:
        return True
    if "micrograph_name" not in d or "coord_x_px" not in d:
        return False
    roots = search_roots(table)
    shapes = {}
    for name in d["micrograph_name"].unique():
        shape = read_mrc_header_shape(resolve_path(str(name), roots))
        if shape is None:
            return False
        shapes[name] = shape
    w = d["micrograph_name"].map({k: v[0] for k, v in shapes.items()})
    h = d["micrograph_name"].map({k: v[1] for k, v in shapes.items()})
    d["micrograph_width_px"] = w.to_numpy(dtype=np.float64)
    d["micrograph_height_px"] = h.to_numpy(dtype=np.float64)
    return True


@dataclass
class AdviseInputs:
    """Per-particle arrays the advisor needs, with where they came from."""

    source: str
    pixel_size_a: float
    defocus_u_a: np.ndarray
    defocus_v_a: np.ndarray
    voltage_kv: np.ndarray
    cs_mm: np.ndarray
    coord_x_px: np.ndarray | None = None
    coord_y_px: np.ndarray | None = None
    micrograph_width_px: np.ndarray | None = None
    micrograph_height_px: np.ndarray | None = None
    defocus_from_range: bool = False
    file_box_px: int | None = None  # the particles' own box, when the file says (always a row of the table)
    micrograph: np.ndarray | None = None  # each particle's micrograph (an integer id), when the file says
    program: str | None = None  # "cryosparc" for .cs input, "relion" for STAR input, None for flags


def _one_value(values: np.ndarray, what: str, where: str, flag: str) -> float:
    v = values.astype(np.float64, copy=False)
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 1e-6 * max(1.0, abs(hi)):
        return float(np.round(hi, 6))
    uniq = np.unique(np.round(v, 6))
    if uniq.size != 1:
        raise InputError(
            f"{where}: particles have {uniq.size} different {what} values ({', '.join(map(str, uniq[:4]))}); "
            f"choose one optics group with `optics_group` or give {flag}."
        )
    return float(uniq[0])


def inputs_from_tables(
    tables: list[ParticleTable],
    *,
    pixel_size_a: float | None = None,
    voltage_kv: float | None = None,
    cs_mm: float | None = None,
    micrograph_size_px: tuple[int, int] | None = None,
    optics_group: int | None = None,
) -> AdviseInputs:
    """Gather the advisor's inputs from particle tables; flags override metadata."""
    checked("voltage_kv", voltage_kv, "voltage_kv")
    checked("cs_mm", cs_mm, "cs_mm")
    checked("pixel_size_a", pixel_size_a, "pixel_size_a")
    frames = []
    for t in tables:
        d = t.data
        if optics_group is not None:
            if "optics_group" not in d or not (d["optics_group"] == optics_group).any():
                raise InputError(
                    f"{t.path}: no particles in optics group {optics_group}; see `cryobox inspect` for the groups."
                )
            d = d[d["optics_group"] == optics_group]
        t.require("defocus_u_a", "defocus_v_a", purpose="the box advisor")
        if voltage_kv is None:
            t.require("voltage_kv", purpose="the box advisor (or `voltage_kv`)")
        if cs_mm is None:
            t.require("cs_mm", purpose="the box advisor (or `cs_mm`)")
        if pixel_size_a is None and "pixel_size_a" not in d:
            raise InputError(
                f"{t.path}: no pixel size (rlnImagePixelSize, rlnDetectorPixelSize/rlnMagnification or blob/psize_A); "
                "give `pixel_size_a`."
            )
        frames.append(d)
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    where = ", ".join(str(t.path) for t in tables)
    psize = (
        pixel_size_a
        if pixel_size_a is not None
        else _one_value(data["pixel_size_a"].to_numpy(), "pixel size", where, "`pixel_size_a`")
    )
    n = len(data)
    kv = (
        np.full(n, voltage_kv, dtype=np.float64)
        if voltage_kv is not None
        else data["voltage_kv"].to_numpy(dtype=np.float64)
    )
    cs = np.full(n, cs_mm, dtype=np.float64) if cs_mm is not None else data["cs_mm"].to_numpy(dtype=np.float64)
    inputs = AdviseInputs(
        source=where,
        pixel_size_a=float(psize),
        defocus_u_a=data["defocus_u_a"].to_numpy(dtype=np.float64),
        defocus_v_a=data["defocus_v_a"].to_numpy(dtype=np.float64),
        voltage_kv=kv,
        cs_mm=cs,
    )
    if "box_px" in data and len(data):
        boxes = pd.to_numeric(data["box_px"], errors="coerce").dropna().unique()
        if boxes.size == 1 and boxes[0] >= 2:
            inputs.file_box_px = int(boxes[0])
    formats = {t.source_format for t in tables}
    inputs.program = (
        "cryosparc" if formats == {"cryosparc"} else ("relion" if formats and "cryosparc" not in formats else None)
    )
    if "micrograph_name" in data:
        inputs.micrograph = pd.factorize(data["micrograph_name"])[0]  # one integer per micrograph
    if "coord_x_px" in data and "coord_y_px" in data:
        if micrograph_size_px is not None:
            w, h = micrograph_size_px
            width, height = np.full(n, float(w)), np.full(n, float(h))
        elif "micrograph_width_px" in data:
            width = data["micrograph_width_px"].to_numpy(dtype=np.float64)
            height = data["micrograph_height_px"].to_numpy(dtype=np.float64)
        else:
            width = height = None
        if width is not None:
            inputs.coord_x_px = data["coord_x_px"].to_numpy(dtype=np.float64)
            inputs.coord_y_px = data["coord_y_px"].to_numpy(dtype=np.float64)
            inputs.micrograph_width_px, inputs.micrograph_height_px = width, height
    return inputs


def inputs_from_range(
    *, pixel_size_a: float, defocus_min_a: float, defocus_max_a: float, voltage_kv: float, cs_mm: float, n: int = 2001
) -> AdviseInputs:
    """Inputs from flags alone: defocus spread uniformly between min and max (no astigmatism)."""
    checked("voltage_kv", voltage_kv, "voltage_kv")
    checked("cs_mm", cs_mm, "cs_mm")
    checked("pixel_size_a", pixel_size_a, "pixel_size_a")
    checked_defocus(defocus_min_a, "defocus_min_a")
    checked_defocus(defocus_max_a, "defocus_max_a")
    if not 0 <= defocus_min_a <= defocus_max_a:
        raise InputError(
            f"`defocus_min_a` ({defocus_min_a} Å) and `defocus_max_a` ({defocus_max_a} Å) must satisfy 0 <= min <= max."
        )
    df = np.linspace(defocus_min_a, defocus_max_a, n)
    return AdviseInputs(
        source=f"flags: {defocus_min_a:.0f}-{defocus_max_a:.0f} Å defocus (uniform)",
        pixel_size_a=float(pixel_size_a),
        defocus_u_a=df,
        defocus_v_a=df,
        voltage_kv=np.full(n, float(voltage_kv)),
        cs_mm=np.full(n, float(cs_mm)),
        defocus_from_range=True,
    )


def gather_inputs(
    paths: list,
    *,
    tables: list[ParticleTable] | None = None,
    pixel_size_a: float | None = None,
    voltage_kv: float | None = None,
    cs_mm: float | None = None,
    micrograph_size_px: tuple[int, int] | None = None,
    optics_group: int | None = None,
) -> AdviseInputs:
    """Read particle files (or take ``tables``), fill micrograph sizes from the micrographs' MRC
    headers when the files lack them and no size is given, and gather the per-particle arrays:
    the one reading ``advise``, ``explain``, ``report`` and ``demo`` share."""

    tables = tables if tables is not None else [read_particles(p, full=False) for p in paths]
    if micrograph_size_px is None:
        for t in tables:
            fill_micrograph_shapes(t)
    return inputs_from_tables(
        tables,
        pixel_size_a=pixel_size_a,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        micrograph_size_px=micrograph_size_px,
        optics_group=optics_group,
    )
