"""One canonical particle table, read from and written to RELION STAR and cryoSPARC ``.cs``.

A ``ParticleTable`` wraps a DataFrame with one row per particle (or per micrograph, for a
micrograph file). Canonical columns carry their unit in the name (DESIGN.md):

=========================  ======================================  ===============================
canonical column           RELION label                            cryoSPARC field
=========================  ======================================  ===============================
defocus_u_a                rlnDefocusU                             ctf/df1_A
defocus_v_a                rlnDefocusV                             ctf/df2_A
defocus_angle_deg          rlnDefocusAngle                         ctf/df_angle_rad (x 180/pi)
phase_shift_deg            rlnPhaseShift                           ctf/phase_shift_rad (x 180/pi)
ctf_bfactor_a2             rlnCtfBfactor                           ctf/bfactor
ctf_scale                  rlnCtfScalefactor                       ctf/scale
voltage_kv                 rlnVoltage (optics)                     ctf/accel_kv
cs_mm                      rlnSphericalAberration (optics)         ctf/cs_mm
amplitude_contrast         rlnAmplitudeContrast (optics)           ctf/amp_contrast
pixel_size_a               rlnImagePixelSize (optics; 3.0:         blob/psize_A
                           rlnDetectorPixelSize * 1e4 / rlnMag.;
                           micrographs: rlnMicrographPixelSize)
box_px                     rlnImageSize (optics)                   blob/shape[0]
optics_group               rlnOpticsGroup                          ctf/exp_group_id (+1)
optics_group_name          rlnOpticsGroupName                      -
ctf_premultiplied          rlnCtfDataAreCtfPremultiplied           -
micrograph_pixel_size_a    rlnMicrographOriginalPixelSize          location/micrograph_psize_A
image_path, image_index    rlnImageName ``000001@stack.mrcs``      blob/path (leading ``>``
                           (index stored 0-based)                  stripped), blob/idx
micrograph_name            rlnMicrographName                       location/micrograph_path
coord_x_px, coord_y_px     rlnCoordinateX/Y                        location/center_x_frac x
                                                                   micrograph_shape[1] (y: [0])
micrograph_height_px,      -                                       location/micrograph_shape
micrograph_width_px                                                (rows, columns)
shift_x_a, shift_y_a       rlnOriginXAngst/YAngst (3.0:            alignments3D/shift (px) x
                           rlnOriginX/Y x pixel size)              alignments3D/psize_A
angle_rot/tilt/psi_deg     rlnAngleRot/Tilt/Psi                    alignments3D/pose (rotation
                                                                   vector; RELION's matrix =
                                                                   expmap(pose), as pyem)
=========================  ======================================  ===============================

Every other column is carried through under its original name (``rln...`` labels, cryoSPARC
``group/field`` names; multi-valued fields split as ``field[0]``, ``field[1]``...), so round trips
keep every value.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.cs import read_cs_array, write_cs_array
from cryobox.io.star import read_star_blocks, write_star_blocks

__all__ = [
    "ParticleTable",
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
]

# canonical -> RELION label, for columns that map one to one
_RLN_PARTICLE = {
    "defocus_u_a": "rlnDefocusU",
    "defocus_v_a": "rlnDefocusV",
    "defocus_angle_deg": "rlnDefocusAngle",
    "phase_shift_deg": "rlnPhaseShift",
    "ctf_bfactor_a2": "rlnCtfBfactor",
    "ctf_scale": "rlnCtfScalefactor",
    "micrograph_name": "rlnMicrographName",
    "coord_x_px": "rlnCoordinateX",
    "coord_y_px": "rlnCoordinateY",
    "shift_x_a": "rlnOriginXAngst",
    "shift_y_a": "rlnOriginYAngst",
    "angle_rot_deg": "rlnAngleRot",
    "angle_tilt_deg": "rlnAngleTilt",
    "angle_psi_deg": "rlnAnglePsi",
    "optics_group": "rlnOpticsGroup",
}
_RLN_OPTICS = {
    "optics_group": "rlnOpticsGroup",
    "optics_group_name": "rlnOpticsGroupName",
    "voltage_kv": "rlnVoltage",
    "cs_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
    "micrograph_pixel_size_a": "rlnMicrographOriginalPixelSize",
    "box_px": "rlnImageSize",
    "ctf_premultiplied": "rlnCtfDataAreCtfPremultiplied",
}
_CS_FIELD = {
    "defocus_u_a": "ctf/df1_A",
    "defocus_v_a": "ctf/df2_A",
    "defocus_angle_deg": "ctf/df_angle_rad",
    "phase_shift_deg": "ctf/phase_shift_rad",
    "voltage_kv": "ctf/accel_kv",
    "cs_mm": "ctf/cs_mm",
    "amplitude_contrast": "ctf/amp_contrast",
    "pixel_size_a": "blob/psize_A",
    "box_px": "blob/shape",
}


@dataclass
class ParticleTable:
    """Particles (or micrographs) in canonical columns, plus the columns carried through.

    ``kind`` is ``"particles"`` or ``"micrographs"``; ``source_format`` names what was read
    (``relion3.0``, ``relion3.1``, ``cryosparc``); ``optics_passthrough`` lists carried-through
    RELION labels that belong in the optics table.
    """

    data: pd.DataFrame
    kind: str = "particles"
    source_format: str = ""
    path: Path | None = None
    optics_passthrough: list[str] = field(default_factory=list)
    source_fields: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.data)

    def has(self, *columns: str) -> bool:
        return all(c in self.data.columns for c in columns)

    def column(self, name: str) -> np.ndarray:
        """The column as a numpy array (float where numeric)."""
        return self.data[name].to_numpy()

    def require(self, *columns: str, purpose: str) -> None:
        """Raise ``InputError`` naming the first missing column and what it is needed for."""
        for col in columns:
            if col not in self.data.columns or self.data[col].isna().all():
                label = (
                    _RLN_PARTICLE.get(col)
                    or _RLN_OPTICS.get(col)
                    or ("rlnImagePixelSize" if col == "pixel_size_a" else col)
                )
                where = f"{self.path}" if self.path else "the particle table"
                raise InputError(
                    f"{where}: no {col} ({label} in RELION, {_CS_FIELD.get(col, 'no field')} in cryoSPARC) in the "
                    f"file, which {purpose} needs; "
                    "use a file with CTF parameters (after CTF estimation) or give the value on the command line."
                )


def _where(path: Path | None) -> str:
    return str(path) if path is not None else "input"


# --------------------------------------------------------------------------------------- RELION


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


def _split_image_names(names: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    parts = names.astype(str).str.partition("@")
    has_at = parts[1] == "@"
    idx = pd.to_numeric(parts[0].where(has_at, "1"), errors="coerce")
    path = parts[2].where(has_at, parts[0])
    return path.to_numpy(dtype=object), (idx.to_numpy(dtype=np.float64) - 1)


def particles_from_star_blocks(
    blocks: dict[str, pd.DataFrame], *, path: Path | None = None, full: bool = True
) -> ParticleTable:
    """Canonical table from the blocks of a RELION 3.0 / 3.1 / 4 / 5 particles or micrographs file.

    ``full=False`` skips image names and carried-through columns (see ``particles_from_cs``).
    """
    name, block = _pick_particle_block(blocks, path)
    optics = blocks.get("optics")
    kind = (
        "micrographs"
        if (
            name == "micrographs"
            or (
                "rlnImageName" not in block.columns
                and "rlnMicrographName" in block.columns
                and "rlnCoordinateX" not in block.columns
            )
        )
        else "particles"
    )
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
                f"{_where(path)}: particles refer to optics group(s) {bad} missing from data_optics; fix the optics "
                "table."
            )
        out["optics_group"] = np.asarray(optics_idx[pos])
        for canon, label in _RLN_OPTICS.items():
            if label in optics.columns and canon != "optics_group":
                out[canon] = optics[label].to_numpy()[pos]
        psize_label = "rlnMicrographPixelSize" if kind == "micrographs" else "rlnImagePixelSize"
        for label in (psize_label, "rlnImagePixelSize", "rlnMicrographPixelSize"):
            if label in optics.columns:
                out["pixel_size_a"] = optics[label].to_numpy(dtype=np.float64)[pos]
                break
        for label in optics.columns:
            if label not in _RLN_OPTICS.values() and label not in ("rlnImagePixelSize", "rlnMicrographPixelSize"):
                out[label] = optics[label].to_numpy()[pos]
                optics_passthrough.append(label)
        if "rlnImagePixelSize" in optics.columns and "rlnMicrographPixelSize" in optics.columns:
            out["rlnMicrographPixelSize"] = optics["rlnMicrographPixelSize"].to_numpy()[pos]
            optics_passthrough.append("rlnMicrographPixelSize")
    else:
        source_format = "relion3.0"
        # RELION 3.0: optics values per particle in the one block.
        for canon, label in _RLN_OPTICS.items():
            if label in block.columns and canon not in out:
                out[canon] = block[label].to_numpy()
                used.add(label)
        for label in ("rlnImagePixelSize", "rlnMicrographPixelSize"):
            if label in block.columns:
                out["pixel_size_a"] = block[label].to_numpy(dtype=np.float64)
                used.add(label)
                break
        else:
            if "rlnDetectorPixelSize" in block.columns and "rlnMagnification" in block.columns:
                mag = block["rlnMagnification"].to_numpy(dtype=np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    out["pixel_size_a"] = block["rlnDetectorPixelSize"].to_numpy(dtype=np.float64) * 1e4 / mag
        if "optics_group" not in out:
            out["optics_group"] = np.ones(n, dtype=np.int64)

    if "rlnImageName" in block.columns and full:
        paths, idx = _split_image_names(block["rlnImageName"])
        out["image_path"] = paths
        out["image_index"] = idx
        used.add("rlnImageName")
    if "shift_x_a" not in out and "rlnOriginX" in block.columns and "pixel_size_a" in out:
        out["shift_x_a"] = block["rlnOriginX"].to_numpy(dtype=np.float64) * out["pixel_size_a"]
        out["shift_y_a"] = block["rlnOriginY"].to_numpy(dtype=np.float64) * out["pixel_size_a"]
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


# ------------------------------------------------------------------------------------ cryoSPARC


def _factorize_fixed_bytes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of a fixed-width bytes array, exactly, with few Python objects.

    Paths in particle files come in runs (all particles of a micrograph or stack together), so
    rows equal to the row before are found by comparing raw bytes, and only the first row of each
    run is factorised as a Python object. Unordered input still works (more runs, slower).
    """
    n = values.size
    new_run = np.ones(n, dtype=bool)
    if n > 1:
        np.not_equal(values[1:], values[:-1], out=new_run[1:])  # works on strided field views, no copy
    starts = np.flatnonzero(new_run)
    run_codes, uniques = pd.factorize(values[starts].astype(object))
    codes = np.repeat(run_codes, np.diff(np.append(starts, n)))
    return codes, np.asarray(uniques, dtype=object)


def _str_column(values: np.ndarray, *, strip_prefix: str = "") -> pd.Categorical:
    """Text field -> categorical of str. Paths repeat (one per micrograph or stack), so only the
    distinct values are decoded: 1,000,000 paths cost one hash pass, not a million decodes."""
    if values.dtype.kind == "S" and values.size:
        codes, uniques = _factorize_fixed_bytes(values)
    else:
        codes, uniques = pd.factorize(values)
    text = [u.decode("utf-8") if isinstance(u, bytes) else str(u) for u in uniques]
    if strip_prefix:
        text = [t.removeprefix(strip_prefix) for t in text]
    # distinct raw values may coincide after stripping: factorize again on the clean strings
    clean_codes, clean = pd.factorize(np.asarray(text, dtype=object))
    if len(clean) == len(text):
        return pd.Categorical.from_codes(codes, categories=pd.Index(text, dtype=object))
    return pd.Categorical.from_codes(clean_codes[codes], categories=pd.Index(clean, dtype=object))


def _euler_from_pose(pose: np.ndarray) -> np.ndarray:
    """RELION Euler angles (rot, tilt, psi in degrees) from cryoSPARC rotation vectors.

    RELION's rotation matrix is A = expmap(pose) (pyem's csparc2star); RELION writes
    A = Rz(psi)' Ry(tilt)' Rz(rot)' (passive), so R = A^T = Rz(rot) Ry(tilt) Rz(psi) is the active
    rotation by -pose. Closed form in numpy (no scipy import on the read path): third column of R
    gives rot and tilt, third row gives psi; the few rows at tilt 0 or 180 deg go through scipy.
    """
    v = -np.asarray(pose, dtype=np.float64).reshape(-1, 3)
    theta = np.linalg.norm(v, axis=1)
    safe = np.where(theta > 0, theta, 1.0)
    n = v / safe[:, None]
    c, s = np.cos(theta), np.sin(theta)
    t = 1.0 - c
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    r02 = t * x * z + s * y
    r12 = t * y * z - s * x
    r22 = c + t * z * z
    r20 = t * x * z - s * y
    r21 = t * y * z + s * x
    tilt = np.arccos(np.clip(r22, -1.0, 1.0))
    rot = np.arctan2(r12, r02)
    psi = np.arctan2(r21, -r20)
    out = np.degrees(np.stack([rot, tilt, psi], axis=1))
    degenerate = np.abs(np.sin(tilt)) < 1e-6
    if degenerate.any():
        import warnings

        from scipy.spatial.transform import Rotation

        with warnings.catch_warnings():  # gimbal lock is expected here: psi is set to 0
            warnings.simplefilter("ignore", UserWarning)
            out[degenerate] = Rotation.from_rotvec(v[degenerate]).as_euler("ZYZ", degrees=True)
    return out


def _pose_from_euler(rot: np.ndarray, tilt: np.ndarray, psi: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    ang = np.stack([rot, tilt, psi], axis=-1).astype(np.float64)
    return -Rotation.from_euler("ZYZ", ang, degrees=True).as_rotvec()


def particles_from_cs(records: np.ndarray, *, path: Path | None = None, full: bool = True) -> ParticleTable:
    """Canonical table from a cryoSPARC structured array (any schema version).

    ``full=False`` reads only the canonical CTF, optics and location columns: no image paths,
    no rotation-vector -> Euler conversion and no carried-through fields. Jobs that summarise and
    never write (inspect, advise) read a million particles about twice as fast that way; a table
    read so must not be written back (it would lose the carried fields).
    """
    names = set(records.dtype.names or ())
    n = len(records)
    out: dict[str, object] = {}
    used: set[str] = set()

    def take(field_name: str, canon: str, scale: float = 1.0) -> None:
        if field_name in names:
            v = records[field_name]
            out[canon] = v * np.float64(scale) if scale != 1.0 else v
            used.add(field_name)

    take("ctf/df1_A", "defocus_u_a")
    take("ctf/df2_A", "defocus_v_a")
    take("ctf/df_angle_rad", "defocus_angle_deg", 180.0 / np.pi)
    take("ctf/phase_shift_rad", "phase_shift_deg", 180.0 / np.pi)
    take("ctf/bfactor", "ctf_bfactor_a2")
    take("ctf/scale", "ctf_scale")
    take("ctf/accel_kv", "voltage_kv")
    take("ctf/cs_mm", "cs_mm")
    take("ctf/amp_contrast", "amplitude_contrast")
    take("blob/psize_A", "pixel_size_a")
    take("location/micrograph_psize_A", "micrograph_pixel_size_a")
    if "blob/shape" in names:
        out["box_px"] = records["blob/shape"].reshape(n, -1)[:, -1].astype(np.int64)
        used.add("blob/shape")
    if "ctf/exp_group_id" in names:
        out["optics_group"] = records["ctf/exp_group_id"].astype(np.int64) + 1
        used.add("ctf/exp_group_id")
    else:
        out["optics_group"] = np.ones(n, dtype=np.int64)
    if "blob/path" in names and full:
        # exported datasets mark project-relative paths with a leading ">"
        out["image_path"] = _str_column(records["blob/path"], strip_prefix=">")
        used.add("blob/path")
        if "blob/idx" in names:
            out["image_index"] = records["blob/idx"].astype(np.int64)
            used.add("blob/idx")
    if "location/micrograph_path" in names:
        out["micrograph_name"] = _str_column(records["location/micrograph_path"], strip_prefix=">")
        used.add("location/micrograph_path")
    if "location/micrograph_shape" in names:
        shape = records["location/micrograph_shape"].reshape(n, -1).astype(np.float64)
        out["micrograph_height_px"] = shape[:, 0]
        out["micrograph_width_px"] = shape[:, 1]
        used.add("location/micrograph_shape")
        if "location/center_x_frac" in names:
            out["coord_x_px"] = records["location/center_x_frac"].astype(np.float64) * shape[:, 1]
            out["coord_y_px"] = records["location/center_y_frac"].astype(np.float64) * shape[:, 0]
            used.update(("location/center_x_frac", "location/center_y_frac"))
    if "alignments3D/shift" in names:
        shift_px = records["alignments3D/shift"].reshape(n, 2).astype(np.float64)
        ps = (
            records["alignments3D/psize_A"].astype(np.float64)
            if "alignments3D/psize_A" in names
            else out.get("pixel_size_a")
        )
        if ps is not None:
            out["shift_x_a"] = shift_px[:, 0] * ps
            out["shift_y_a"] = shift_px[:, 1] * ps
            used.add("alignments3D/shift")
    if "alignments3D/pose" in names:
        used.add("alignments3D/pose")
        if full:
            pose = records["alignments3D/pose"].reshape(n, 3)
            eul = _euler_from_pose(pose) if n else np.zeros((0, 3))
            out["angle_rot_deg"], out["angle_tilt_deg"], out["angle_psi_deg"] = eul[:, 0], eul[:, 1], eul[:, 2]
            # The raw rotation vectors are carried too: a rotation has several rotation vectors, and
            # a round trip should give back the very numbers it read (see particles_to_cs).
            for j in range(3):
                out[f"alignments3D/pose[{j}]"] = pose[:, j]
    for name in records.dtype.names or ():
        if name in used or not full:
            continue
        v = records[name]
        if v.dtype.kind == "S":
            out[name] = _str_column(v)
        elif v.ndim > 1:
            flat = v.reshape(n, -1)
            for j in range(flat.shape[1]):
                out[f"{name}[{j}]"] = flat[:, j]
        else:
            out[name] = v
    kind = "particles" if ("blob/path" in names or "location/center_x_frac" in names) else "micrographs"
    table = ParticleTable(
        pd.DataFrame(out, index=pd.RangeIndex(n), copy=False),
        kind=kind,
        source_format="cryosparc",
        path=path,
        source_fields=tuple(records.dtype.names or ()),
    )
    validate(table)
    return table


def _is_text(values: pd.Series) -> bool:
    return (
        values.dtype == object
        or isinstance(values.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(values.dtype)
    )


def _bytes_field(values: pd.Series) -> np.ndarray:
    arr = values.astype(str).to_numpy(dtype=str)
    return np.char.encode(arr, "utf-8") if arr.size else np.zeros(0, dtype="S1")


def particles_to_cs(table: ParticleTable, *, seed: int | None = None) -> np.ndarray:
    """A cryoSPARC structured array for a canonical table (readable by cryosparc-tools).

    ``uid`` is carried through when present, else drawn from a generator seeded by the content
    (same table, same uids).
    """
    d = table.data
    n = len(d)
    cols: dict[str, np.ndarray] = {}
    if "uid" in d:
        cols["uid"] = d["uid"].to_numpy(dtype=np.uint64)
    else:
        if seed is None:
            key = "|".join(map(str, d.iloc[[0, -1]].to_numpy().ravel())) if n else ""
            seed = zlib.crc32(f"{n}|{key}".encode())
        cols["uid"] = np.random.default_rng(seed).integers(1, 2**63, size=n, dtype=np.uint64)

    def put(canon: str, field_name: str, dtype, scale: float = 1.0) -> None:
        if canon in d:
            v = d[canon].to_numpy(dtype=np.float64)
            cols[field_name] = (v * scale if scale != 1.0 else v).astype(dtype)

    if "image_path" in d:
        cols["blob/path"] = _bytes_field(d["image_path"])
        cols["blob/idx"] = d["image_index"].to_numpy(dtype=np.uint32)
    if "box_px" in d:
        b = d["box_px"].to_numpy(dtype=np.uint32)
        cols["blob/shape"] = np.stack([b, b], axis=1)
    put("pixel_size_a", "blob/psize_A", np.float32)
    if "optics_group" in d:
        cols["ctf/exp_group_id"] = (d["optics_group"].to_numpy(dtype=np.int64) - 1).astype(np.uint32)
    put("voltage_kv", "ctf/accel_kv", np.float32)
    put("cs_mm", "ctf/cs_mm", np.float32)
    put("amplitude_contrast", "ctf/amp_contrast", np.float32)
    put("defocus_u_a", "ctf/df1_A", np.float32)
    put("defocus_v_a", "ctf/df2_A", np.float32)
    put("defocus_angle_deg", "ctf/df_angle_rad", np.float32, np.pi / 180.0)
    put("phase_shift_deg", "ctf/phase_shift_rad", np.float32, np.pi / 180.0)
    put("ctf_scale", "ctf/scale", np.float32)
    put("ctf_bfactor_a2", "ctf/bfactor", np.float32)
    if "rlnRandomSubset" in d and "alignments3D/split" not in d:  # half sets: RELION 1/2, cryoSPARC 0/1
        cols["alignments3D/split"] = (d["rlnRandomSubset"].to_numpy(dtype=np.int64) - 1).astype(np.uint32)
    if "micrograph_name" in d:
        cols["location/micrograph_path"] = _bytes_field(d["micrograph_name"])
    if "micrograph_width_px" in d and "micrograph_height_px" in d:
        h = d["micrograph_height_px"].to_numpy(dtype=np.float64)
        w = d["micrograph_width_px"].to_numpy(dtype=np.float64)
        cols["location/micrograph_shape"] = np.stack([h, w], axis=1).astype(np.uint32)
        if "coord_x_px" in d:
            cols["location/center_x_frac"] = (d["coord_x_px"].to_numpy(dtype=np.float64) / w).astype(np.float32)
            cols["location/center_y_frac"] = (d["coord_y_px"].to_numpy(dtype=np.float64) / h).astype(np.float32)
    put("micrograph_pixel_size_a", "location/micrograph_psize_A", np.float32)
    if "angle_rot_deg" in d:
        pose = (
            _pose_from_euler(
                d["angle_rot_deg"].to_numpy(), d["angle_tilt_deg"].to_numpy(), d["angle_psi_deg"].to_numpy()
            )
            if n
            else np.zeros((0, 3))
        )
        raw = [f"alignments3D/pose[{j}]" for j in range(3)]
        if n and all(c in d for c in raw):
            # keep the rotation vectors that were read wherever they still describe the angles
            from scipy.spatial.transform import Rotation

            old = np.stack([d[c].to_numpy(dtype=np.float64) for c in raw], axis=1)
            same = (Rotation.from_rotvec(old).inv() * Rotation.from_rotvec(pose)).magnitude() < 1e-4
            pose = np.where(same[:, None], old, pose)
        cols["alignments3D/pose"] = pose.astype(np.float32)
    if "shift_x_a" in d:
        ps = (
            d["alignments3D/psize_A"].to_numpy(dtype=np.float64)
            if "alignments3D/psize_A" in d
            else d["pixel_size_a"].to_numpy(dtype=np.float64)
        )
        cols["alignments3D/shift"] = np.stack(
            [d["shift_x_a"].to_numpy(dtype=np.float64) / ps, d["shift_y_a"].to_numpy(dtype=np.float64) / ps], axis=1
        ).astype(np.float32)
    # carried-through cryoSPARC fields (group/field), re-joining split vectors
    vector_parts: dict[str, list[tuple[int, str]]] = {}
    for col in d.columns:
        if "/" not in col or col in cols:
            continue
        if col.endswith("]") and "[" in col:
            base, j = col[:-1].rsplit("[", 1)
            vector_parts.setdefault(base, []).append((int(j), col))
        else:
            v = d[col]
            cols[col] = _bytes_field(v) if _is_text(v) else v.to_numpy()
    for base, parts in vector_parts.items():
        if base not in cols:
            cols[base] = np.stack([d[c].to_numpy() for _, c in sorted(parts)], axis=1)
    dtype = [(k, v.dtype, v.shape[1:]) if v.ndim > 1 else (k, v.dtype) for k, v in cols.items()]
    rec = np.empty(n, dtype=dtype)
    for k, v in cols.items():
        rec[k] = v
    return rec


# ----------------------------------------------------------------------------------- validation


def validate(table: ParticleTable) -> None:
    """Reject physically impossible values with one clear sentence (``InputError``)."""
    d = table.data
    where = _where(table.path)
    for col in ("defocus_u_a", "defocus_v_a"):
        if col in d:
            v = pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(v) | (v < 0)
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(
                    f"{where}: {col} ({_RLN_PARTICLE[col]} / ctf/df{'1' if col.endswith('u_a') else '2'}_A) is "
                    f"{v[i]} for row {i + 1} ({int(bad.sum())} bad row(s)); defocus must be a positive number of Å "
                    "(underfocus): redo or remove those rows' CTF estimates."
                )
    if "pixel_size_a" in d:
        v = pd.to_numeric(d["pixel_size_a"], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"{where}: pixel size (rlnImagePixelSize / blob/psize_A) is {v[i]} for row {i + 1}; it must be a "
                "positive number of Å/px: fix the optics table (or the .cs blob/psize_A field)."
            )
    for col, label in (
        ("voltage_kv", "rlnVoltage"),
        ("cs_mm", "rlnSphericalAberration"),
        ("amplitude_contrast", "rlnAmplitudeContrast"),
    ):
        if col in d:
            v = pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(v) | (v <= 0 if col == "voltage_kv" else v < 0)
            if bad.any():
                raise InputError(f"{where}: {label} ({col}) is {v[int(np.argmax(bad))]}; fix the optics table.")


# ----------------------------------------------------------------------------------------- files


def search_roots(table: ParticleTable) -> list[Path]:
    """Where the relative file names in a particle or micrograph file are looked up: the working
    folder first (RELION's project folder, which its paths are relative to), then the file's own."""
    return [Path.cwd()] + ([table.path.parent] if table.path is not None else [])


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


def find_stack(path_text: str, roots: list[Path]) -> Path:
    """A particle stack named in a particle file; one clear sentence when it is nowhere."""
    src = resolve_path(path_text, roots)
    if not src.exists():
        raise InputError(
            f"{path_text}: particle stack not found (looked beside {', '.join(map(str, roots))}); "
            "check rlnImageName / blob/path."
        )
    return src


def fill_box_from_stacks(table: ParticleTable) -> str | None:
    """Give a table without an image size (RELION 3.0 has no ``rlnImageSize``) the box of its stacks.

    The size is read from the MRC header of the first stack the table names that exists (one
    header, not every stack); stacks that are not square are refused. Returns a note saying
    where the size came from, or None when the table had a size already or no stack was found.
    """
    d = table.data
    if "image_path" not in d or ("box_px" in d and not d["box_px"].isna().any()):
        return None
    from cryobox.io.mrc import read_mrc_header_shape

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


def read_particles(path: str | os.PathLike, *, full: bool = True) -> ParticleTable:
    """Read a RELION ``.star`` or cryoSPARC ``.cs`` particle or micrograph file.

    ``full=False``: a faster read of the canonical columns only, for jobs that do not write the
    table back (see ``particles_from_cs``).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path.")
    suffix = path.suffix.lower()
    if suffix == ".cs":
        return particles_from_cs(read_cs_array(path), path=path, full=full)
    if suffix == ".star":
        return particles_from_star_blocks(read_star_blocks(path), path=path, full=full)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"\x93NUMPY") or head.startswith(b"\x95CSDAT"):
        return particles_from_cs(read_cs_array(path), path=path, full=full)
    if b"data_" in head and b"_rln" in head:
        return particles_from_star_blocks(read_star_blocks(path), path=path, full=full)
    raise InputError(f"{path}: unknown file type; give a RELION .star or cryoSPARC .cs particle file.")


def write_star(path: str | os.PathLike, table: ParticleTable) -> Path:
    """Write a RELION 3.1+ STAR file (optics + particles/micrographs), atomically."""
    return write_star_blocks(path, particles_to_star_blocks(table))


def write_cs(path: str | os.PathLike, table: ParticleTable, *, seed: int | None = None) -> Path:
    """Write a cryoSPARC ``.cs`` file, atomically."""
    return write_cs_array(path, particles_to_cs(table, seed=seed))
