"""Which particle of one file is which particle of another, and the poses they carry.

By micrograph and coordinates when both files have them, else by image (stack and number), else
by order when both hold as many; and the (n, 5) pose array (rot, tilt, psi in degrees, shifts in
Å) that the sweep, judge and the alignment statistics compare.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.particles import ParticleTable
from cryobox.io.schema import relion_label

__all__ = [
    "HALF_SET_COLUMNS",
    "half_sets",
    "set_half_sets",
    "POSE_COLUMNS",
    "POSE_PREFIXES",
    "particle_keys",
    "strip_poses",
    "match_particles",
    "pose_array",
]


POSE_COLUMNS = ("angle_rot_deg", "angle_tilt_deg", "angle_psi_deg", "shift_x_a", "shift_y_a")


POSE_PREFIXES = (
    "rlnAngle",
    "rlnOrigin",
    "rlnRandomSubset",
    "rlnClassNumber",
    "rlnNormCorrection",
    "rlnLogLikeliContribution",
    "rlnMaxValueProbDistribution",
    "rlnNrOfSignificantSamples",
    "alignments3D/",
    "alignments2D/",
)


def particle_keys(table: ParticleTable, mode: str) -> list:
    d = table.data
    if mode == "restack":
        return list(range(len(d)))
    return list(
        zip(
            d["micrograph_name"].astype(str),
            np.round(d["coord_x_px"].to_numpy(float), 2),
            np.round(d["coord_y_px"].to_numpy(float), 2),
        )
    )


def strip_poses(table: ParticleTable) -> ParticleTable:
    """Refinements start from the reference alone: poses, shifts and half-set labels go."""
    d = table.data
    drop = [c for c in d.columns if c in POSE_COLUMNS or c.startswith(POSE_PREFIXES)]
    return table.with_data(d.drop(columns=drop).reset_index(drop=True))


def _match_keys(table: ParticleTable, how: str) -> list:
    d = table.data
    if how == "coordinates":
        mics = d["micrograph_name"].astype(str).map(lambda p: Path(p).name)
        return list(
            zip(mics, np.round(d["coord_x_px"].to_numpy(float), 1), np.round(d["coord_y_px"].to_numpy(float), 1))
        )
    names = d["image_path"].astype(str).map(lambda p: Path(p).name)
    return list(zip(names, d["image_index"].to_numpy(np.int64)))


def match_particles(table: ParticleTable, other: ParticleTable, *, what: str) -> np.ndarray:
    """For each particle of ``table``, its row in ``other``: by micrograph and coordinates when
    both have them, else by image (stack and number), else by order when both have as many rows.
    InputError naming ``other`` when some particle has no match."""
    cols = set(table.data.columns), set(other.data.columns)
    coords = {"micrograph_name", "coord_x_px", "coord_y_px"}
    images = {"image_path", "image_index"}
    if coords <= cols[0] and coords <= cols[1]:
        how = "coordinates"
    elif images <= cols[0] and images <= cols[1]:
        how = "images"
    elif len(table) == len(other):
        return np.arange(len(table))
    else:
        raise InputError(
            f"{other.path}: {what} names its particles neither by micrograph and coordinates nor by image, and "
            f"holds {len(other)} particles against {len(table)}; give the file of the same particles."
        )
    pos: dict = {}
    for i, k in enumerate(_match_keys(other, how)):
        pos.setdefault(k, i)
    keys = _match_keys(table, how)
    rows = np.array([pos.get(k, -1) for k in keys], dtype=np.int64)
    missing = int((rows < 0).sum())
    if missing:
        first = keys[int(np.argmax(rows < 0))]
        raise InputError(
            f"{other.path}: {missing} of {len(table)} particles of {table.path} are not in {what} (matched by "
            f"{'micrograph and coordinates' if how == 'coordinates' else 'stack and image number'}; the first "
            f"missing is {first}); give the file of the same particles."
        )
    return rows


def pose_array(table: ParticleTable, *, what: str) -> np.ndarray:
    """(n, 5) poses: rot, tilt, psi (degrees), shift x, shift y (Å); InputError when absent."""
    d = table.data
    missing = [c for c in POSE_COLUMNS[:3] if c not in d]
    if missing:
        raise InputError(
            f"{table.path}: {what} has no poses ({relion_label(missing[0])} is missing); give the data STAR of a "
            "refinement (run_data.star) or a cryoSPARC .cs with alignments3D/pose."
        )
    cols = [d[c].to_numpy(np.float64) if c in d else np.zeros(len(d)) for c in POSE_COLUMNS]
    return np.stack(cols, axis=1)


# the half-set columns, RELION's and cryoSPARC's, in the order they are looked for
HALF_SET_COLUMNS = ("rlnRandomSubset", "alignments3D/split")


def set_half_sets(data, halves: np.ndarray) -> None:
    """Write each particle's half set (1 or 2) into a particle table's data, in the canonical
    column (RELION's rlnRandomSubset; the cryoSPARC writer turns it into alignments3D/split)."""
    data[HALF_SET_COLUMNS[0]] = np.asarray(halves, dtype=np.int64)


def half_sets(table: ParticleTable) -> np.ndarray:
    """Each particle's half set, 1 or 2, from the canonical half-set column: RELION's
    rlnRandomSubset (1/2) or cryoSPARC's alignments3D/split (0/1); InputError when absent or bad."""
    d = table.data
    for col in HALF_SET_COLUMNS:
        if col in d:
            v = d[col].to_numpy()
            v = v.astype(int) + (1 if col == "alignments3D/split" else 0)  # cryoSPARC: 0/1, RELION: 1/2
            bad = ~np.isin(v, (1, 2))
            if bad.any():
                raise InputError(
                    f"{table.path}: {col} must be 1 or 2 for every particle ({int(bad.sum())} are not); "
                    f"give the data STAR of a refinement with --split_random_halves."
                )
            return v
    raise InputError(
        f"{table.path}: no half-set labels (rlnRandomSubset / alignments3D/split); "
        "give the data STAR of a gold-standard refinement, or use `halves=False` for one map."
    )
