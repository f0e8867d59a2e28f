"""RELION STAR <-> the canonical particle table: 3.0 (one block, optics per particle) and 3.1 / 4 / 5
(optics block and particles block, in either order). Labels from ``io.schema``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.schema import SCHEMA
from cryobox.io.table import ParticleTable, validate
from cryobox.io.table import where as _where

__all__ = ["particles_from_star_blocks", "particles_to_star_blocks"]

# canonical -> RELION label, for columns that map one to one
_RLN_PARTICLE = {c.name: c.relion for c in SCHEMA if c.block == "particles"}
_RLN_OPTICS = {c.name: c.relion for c in SCHEMA if c.block == "optics" or c.name == "optics_group"}


def _pick_particle_block(blocks: dict[str, pd.DataFrame], path: Path | None) -> tuple[str, pd.DataFrame]:
    candidates = {k: v for k, v in blocks.items() if k != "optics"}
    for preferred in ("particles", "micrographs", "movies"):
        if preferred in candidates:
            return preferred, candidates[preferred]
    signature = ("rlnImageName", "rlnMicrographName", "rlnCoordinateX", "rlnDefocusU")
    usable = {k: v for k, v in candidates.items() if any(s in v.columns for s in signature)}
    if not usable:
        raise InputError(
            f"{_where(path)}: no particle or micrograph block (none has rlnImageName, rlnMicrographName, "
            "rlnCoordinateX or rlnDefocusU); give a RELION particles or micrographs STAR file."
        )
    name = max(usable, key=lambda k: len(usable[k]))
    return name, usable[name]


def _split_image_names(names: pd.Series, path_for_messages: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    if names.empty:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.float64)
    parts = names.astype(str).str.partition("@")
    has_at = parts[1] == "@"
    idx = pd.to_numeric(parts[0].where(has_at, "1"), errors="coerce")
    fractional = np.isfinite(idx.to_numpy(dtype=np.float64)) & (idx.to_numpy(dtype=np.float64) % 1 != 0)
    if fractional.any():
        row = int(np.flatnonzero(fractional)[0])
        raise InputError(
            f"{_where(path_for_messages)}: rlnImageName {names.iloc[row]!r} (row {row + 1}) numbers its image "
            f"{parts[0].iloc[row]}, not a whole number; image numbers count from 1: fix that row."
        )
    path = parts[2].where(has_at, parts[0])
    return path.to_numpy(dtype=object), (idx.to_numpy(dtype=np.float64) - 1)


def _numbers(frame: pd.DataFrame, label: str, path: Path | None, what: str = "") -> np.ndarray:
    """A column as floats; one sentence naming the label and the first row that is not a number."""
    values = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & frame[label].notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{_where(path)}: {label}{what} is the text {str(frame[label].iloc[row])!r} in row {row + 1}; it must be a "
            "number: fix that row."
        )
    return values


_PAIRS = (("rlnOriginX", "rlnOriginY"), ("rlnOriginXAngst", "rlnOriginYAngst"), ("rlnCoordinateX", "rlnCoordinateY"))


def particles_from_star_blocks(
    blocks: dict[str, pd.DataFrame], *, path: Path | None = None, full: bool = True
) -> ParticleTable:
    """Canonical table from the blocks of a RELION 3.0 / 3.1 / 4 / 5 particles or micrographs file.

    ``full=False`` skips image names and carried-through columns (see ``particles_from_cs``).
    """
    name, block = _pick_particle_block(blocks, path)
    optics = blocks.get("optics")
    _check_blocks(block, optics, path)
    kind = _block_kind(name, block)
    out: dict[str, object] = {}
    n = len(block)
    used: set[str] = set()
    optics_passthrough: list[str] = []

    for canon, label in _RLN_PARTICLE.items():
        if label in block.columns:
            out[canon] = block[label].to_numpy()
            used.add(label)

    if optics is not None and len(optics):
        source_format = "relion3.1"
        optics_passthrough = _optics_per_particle(out, block, optics, kind, path)
    else:
        source_format = "relion3.0"
        used |= _relion30_optics(out, block, path)

    if "rlnImageName" in block.columns and full:
        paths, idx = _split_image_names(block["rlnImageName"], path)
        out["image_path"] = paths
        out["image_index"] = idx
        used.add("rlnImageName")
    if "shift_x_a" not in out and "rlnOriginX" in block.columns and "pixel_size_a" in out:
        out["shift_x_a"] = _numbers(block, "rlnOriginX", path) * out["pixel_size_a"]
        out["shift_y_a"] = _numbers(block, "rlnOriginY", path) * out["pixel_size_a"]
        used.update(("rlnOriginX", "rlnOriginY"))
    if "ctf_premultiplied" in out:
        out["ctf_premultiplied"] = np.asarray(out["ctf_premultiplied"]).astype(bool)
    for label in block.columns:
        if label not in used and full:
            out[label] = block[label].to_numpy()
    data = pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)  # no block consolidation: columns stay as read
    if "image_index" in data and not data["image_index"].isna().any():
        data["image_index"] = data["image_index"].astype(np.int64)
    table = ParticleTable(
        data,
        kind=kind,
        source_format=source_format,
        path=path,
        optics_passthrough=optics_passthrough,
        source_fields=tuple(block.columns) + (tuple(optics.columns) if optics is not None else ()),
    )
    validate(table)
    return table


def _check_blocks(block: pd.DataFrame, optics: pd.DataFrame | None, path: Path | None) -> None:
    for a, b in _PAIRS:
        if (a in block.columns) != (b in block.columns):
            have, lack = (a, b) if a in block.columns else (b, a)
            raise InputError(f"{_where(path)}: has {have} but not {lack}; RELION writes both: add the missing column.")
    if optics is not None and len(optics) == 0 and len(block):
        raise InputError(
            f"{_where(path)}: data_optics has labels but no rows, while {len(block)} particles refer to it; write the "
            "file again from RELION (or give each optics group its row)."
        )
    if optics is not None and "rlnOpticsGroup" in optics.columns and optics["rlnOpticsGroup"].duplicated().any():
        dup = optics["rlnOpticsGroup"][optics["rlnOpticsGroup"].duplicated()].iloc[0]
        raise InputError(
            f"{_where(path)}: optics group {dup} has two rows in data_optics (rlnOpticsGroup); each group has one: "
            "remove the extra row."
        )


def _block_kind(name: str, block: pd.DataFrame) -> str:
    """ "micrographs" for a micrographs block (by its name, or micrograph names without images or
    coordinates), else "particles"."""
    columns = block.columns
    if name == "micrographs" or (
        "rlnImageName" not in columns and "rlnMicrographName" in columns and "rlnCoordinateX" not in columns
    ):
        return "micrographs"
    return "particles"


def _optics_per_particle(
    out: dict, block: pd.DataFrame, optics: pd.DataFrame, kind: str, path: Path | None
) -> list[str]:
    """RELION 3.1+: each particle's optics values from its group's row of data_optics, into
    ``out``; returns the optics labels carried through unchanged."""
    n = len(block)
    passthrough = []
    if "rlnOpticsGroup" not in optics.columns:
        raise InputError(f"{_where(path)}: the optics block has no rlnOpticsGroup column; the file is damaged.")
    groups = block["rlnOpticsGroup"].to_numpy() if "rlnOpticsGroup" in block.columns else np.ones(n, dtype=int)
    if "rlnOpticsGroup" not in block.columns and len(optics) > 1:
        raise InputError(
            f"{_where(path)}: {len(optics)} optics groups but the particles have no rlnOpticsGroup column; add it."
        )
    optics_idx = pd.Index(optics["rlnOpticsGroup"].to_numpy())
    pos = optics_idx.get_indexer(groups if "rlnOpticsGroup" in block.columns else np.full(n, optics_idx[0]))
    if (pos < 0).any():
        bad = sorted(set(np.asarray(groups)[pos < 0].tolist()))[:5]
        raise InputError(
            f"{_where(path)}: rlnOpticsGroup of the particles names group(s) {bad} that data_optics lacks; "
            "add them to the optics table or correct the particles' rlnOpticsGroup."
        )
    out["optics_group"] = np.asarray(optics_idx[pos])
    for canon, label in _RLN_OPTICS.items():
        if label in optics.columns and canon != "optics_group":
            out[canon] = optics[label].to_numpy()[pos]
    psize_label = "rlnMicrographPixelSize" if kind == "micrographs" else "rlnImagePixelSize"
    for label in (psize_label, "rlnImagePixelSize", "rlnMicrographPixelSize"):
        if label in optics.columns:
            out["pixel_size_a"] = _numbers(optics, label, path, " (data_optics)")[pos]
            break
    for label in optics.columns:
        if label not in _RLN_OPTICS.values() and label not in ("rlnImagePixelSize", "rlnMicrographPixelSize"):
            out[label] = optics[label].to_numpy()[pos]
            passthrough.append(label)
    if "rlnImagePixelSize" in optics.columns and "rlnMicrographPixelSize" in optics.columns:
        out["rlnMicrographPixelSize"] = optics["rlnMicrographPixelSize"].to_numpy()[pos]
        passthrough.append("rlnMicrographPixelSize")
    return passthrough


def _relion30_optics(out: dict, block: pd.DataFrame, path: Path | None) -> set[str]:
    """RELION 3.0: the optics values are columns of the particles' own block; into ``out``.
    Returns the labels used."""
    used = set()
    for canon, label in _RLN_OPTICS.items():
        if label in block.columns and canon not in out:
            out[canon] = block[label].to_numpy()
            used.add(label)
    for label in ("rlnImagePixelSize", "rlnMicrographPixelSize"):
        if label in block.columns:
            out["pixel_size_a"] = _numbers(block, label, path)
            used.add(label)
            break
    else:
        if "rlnDetectorPixelSize" in block.columns and "rlnMagnification" in block.columns:
            mag = _numbers(block, "rlnMagnification", path)
            with np.errstate(divide="ignore", invalid="ignore"):
                out["pixel_size_a"] = _numbers(block, "rlnDetectorPixelSize", path) * 1e4 / mag
    if "optics_group" not in out:
        out["optics_group"] = np.ones(len(block), dtype=np.int64)
    return used


def particles_to_star_blocks(table: ParticleTable) -> dict[str, pd.DataFrame]:
    """RELION 3.1+ blocks (``optics`` + ``particles`` or ``micrographs``) for a canonical table."""
    d = table.data
    n = len(d)
    groups = d["optics_group"].to_numpy() if "optics_group" in d else np.ones(n, dtype=np.int64)
    uniq, first = np.unique(groups, return_index=True)
    optics = {"rlnOpticsGroup": uniq.astype(np.int64)}
    optics["rlnOpticsGroupName"] = (
        d["optics_group_name"].to_numpy()[first]
        if "optics_group_name" in d
        else np.array([f"opticsGroup{g}" for g in uniq])
    )
    for canon in ("voltage_kv", "cs_mm", "amplitude_contrast", "micrograph_pixel_size_a"):
        if canon in d:
            optics[_RLN_OPTICS[canon]] = d[canon].to_numpy()[first]
    if "pixel_size_a" in d:
        label = "rlnMicrographPixelSize" if table.kind == "micrographs" else "rlnImagePixelSize"
        optics[label] = d["pixel_size_a"].to_numpy()[first]
    if table.kind == "particles":
        if "box_px" in d:
            optics["rlnImageSize"] = d["box_px"].to_numpy()[first].astype(np.int64)
            optics["rlnImageDimensionality"] = np.full(uniq.size, 2, dtype=np.int64)
        if "ctf_premultiplied" in d:
            optics["rlnCtfDataAreCtfPremultiplied"] = d["ctf_premultiplied"].to_numpy()[first].astype(np.int64)
    for label in table.optics_passthrough:
        if label in d and label not in optics:
            optics[label] = d[label].to_numpy()[first]

    parts: dict[str, object] = {}
    if "image_path" in d and "image_index" in d:
        idx = d["image_index"].to_numpy(dtype=np.int64) + 1
        parts["rlnImageName"] = (
            pd.Series(idx).map("{:06d}".format).to_numpy(dtype=object)
            + "@"
            + d["image_path"].astype(str).to_numpy(dtype=object)
        )
    for canon, label in _RLN_PARTICLE.items():
        if canon in d and canon != "optics_group":
            parts[label] = d[canon].to_numpy()
    parts["rlnOpticsGroup"] = groups.astype(np.int64)
    if "alignments3D/split" in d and "rlnRandomSubset" not in d:  # half sets: cryoSPARC 0/1, RELION 1/2
        parts["rlnRandomSubset"] = d["alignments3D/split"].to_numpy(dtype=np.int64) + 1
    for col in d.columns:
        if col.startswith("rln") and col not in table.optics_passthrough and col not in parts:
            parts[col] = d[col].to_numpy()
    name = "micrographs" if table.kind == "micrographs" else "particles"
    return {"optics": pd.DataFrame(optics), name: pd.DataFrame(parts)}
