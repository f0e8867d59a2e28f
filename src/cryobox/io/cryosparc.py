"""cryoSPARC ``.cs`` records <-> the canonical particle table (fields from ``io.schema``):
radians to degrees, shifts in pixels of ``alignments3D/psize_A`` to Å, coordinates from fractions
of ``location/micrograph_shape``, rotation vectors to RELION's Euler angles (as pyem and
cryosparc-tools: RELION's matrix = expmap(pose))."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.errors import InputError
from cryobox.io.schema import SCHEMA
from cryobox.io.table import ParticleTable, validate

__all__ = ["particles_from_cs", "particles_to_cs"]

# the one-to-one fields: canonical name -> (cryoSPARC field, canonical = field x scale)
_CS_DIRECT = {c.name: (c.cryosparc, c.cs_scale) for c in SCHEMA if c.direct and c.cryosparc}


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


def _rows(v: np.ndarray) -> np.ndarray:
    """A field as (rows, values per row), also for zero rows (where reshape cannot infer -1)."""
    return v.reshape(v.shape[0], int(np.prod(v.shape[1:], dtype=np.int64)))


#: fields that hold several values per particle, and how many
_CS_WIDTHS = {
    "blob/shape": 2,
    "location/micrograph_shape": 2,
    "alignments3D/shift": 2,
    "alignments3D/pose": 3,
    "alignments2D/shift": 2,
}
#: fields that only mean something together
_CS_PAIRS = (("location/center_x_frac", "location/center_y_frac"),)


def check_cs_layout(records: np.ndarray, path: Path | None) -> None:
    """One sentence for a structured array that is not laid out as cryoSPARC writes a dataset:
    not one row per particle, a multi-value field of the wrong width, half of a pair of fields, or
    a path field that is not text."""
    where = str(path) if path is not None else "the .cs data"
    if records.ndim != 1:
        raise InputError(
            f"{where}: holds a {records.ndim}-D array of shape {records.shape}; a cryoSPARC .cs is a table of one row "
            "per particle (1-D): give a dataset cryoSPARC exported."
        )
    names = set(records.dtype.names or ())
    for field, width in _CS_WIDTHS.items():
        if field in names:
            got = int(np.prod(records.dtype[field].shape, dtype=np.int64))
            if got != width:
                raise InputError(
                    f"{where}: field {field} holds {got} value(s) per particle where cryoSPARC writes {width}; the "
                    "file is not a cryoSPARC dataset, or was damaged: export it again."
                )
    for a, b in _CS_PAIRS:
        if (a in names) != (b in names):
            have, lack = (a, b) if a in names else (b, a)
            raise InputError(f"{where}: has {have} but not {lack}; cryoSPARC writes both: export the particles again.")
    for field in ("blob/path", "location/micrograph_path"):
        if field in names and records.dtype[field].kind not in "SU":
            raise InputError(
                f"{where}: field {field} is not text (numpy type {records.dtype[field]}); cryoSPARC stores paths as "
                "bytes: export the dataset again."
            )


def particles_from_cs(records: np.ndarray, *, path: Path | None = None, full: bool = True) -> ParticleTable:
    """Canonical table from a cryoSPARC structured array (any schema version).

    ``full=False`` reads only the canonical CTF, optics and location columns: no image paths,
    no rotation-vector -> Euler conversion and no carried-through fields. Jobs that summarise and
    never write (inspect, advise) read a million particles about twice as fast that way; a table
    read so must not be written back (it would lose the carried fields).
    """
    check_cs_layout(records, path)
    names = set(records.dtype.names or ())
    n = len(records)
    out: dict[str, object] = {}
    used: set[str] = set()

    def take(field_name: str, canon: str, scale: float = 1.0) -> None:
        if field_name in names:
            v = records[field_name]
            out[canon] = v * np.float64(scale) if scale != 1.0 else v
            used.add(field_name)

    for canon, (field_name, scale) in _CS_DIRECT.items():
        take(field_name, canon, scale)
    if "blob/shape" in names:
        out["box_px"] = _rows(records["blob/shape"])[:, -1].astype(np.int64)
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
        shape = _rows(records["location/micrograph_shape"]).astype(np.float64)
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
            flat = _rows(v)
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
    if "optics_group" in d:
        cols["ctf/exp_group_id"] = (d["optics_group"].to_numpy(dtype=np.int64) - 1).astype(np.uint32)
    for canon, (field_name, scale) in _CS_DIRECT.items():
        put(canon, field_name, np.float32, 1.0 / scale)
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
