"""How far apart two sets of particle poses are: the angle of the rotation between two
orientations, and the distance between two shifts.

Orientations are RELION's Euler angles (rot, tilt, psi in degrees, ZYZ; the rotation matrix as
RELION's ``Euler_angles2matrix``). The angular error of a found orientation A against a true one B
is the angle of the rotation A Bᵀ, ``arccos((trace(A Bᵀ) - 1) / 2)`` (computed in a form that
keeps its digits near 0° and 180°): 0° for the same orientation,
the in-plane angle for a pure in-plane difference, 180° for a flip. It does not depend on how the
angles are written (rot = 10°, tilt = 0° is the same orientation as rot = 0°, psi = 10°).
Shifts are in Å in the image plane (``rlnOriginXAngst``, ``rlnOriginYAngst``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryobox.core.simulate import relion_matrix

__all__ = ["euler_to_matrix", "angular_distance_deg", "shift_distance_a", "pose_differences"]


def euler_to_matrix(rot_deg: ArrayLike, tilt_deg: ArrayLike, psi_deg: ArrayLike) -> NDArray[np.float64]:
    """(n, 3, 3) rotation matrices from RELION's ZYZ Euler angles (degrees): the simulation's
    ``relion_matrix``, so that poses are measured in the convention the particles were made in."""

    return relion_matrix(rot_deg, tilt_deg, psi_deg)


def angular_distance_deg(angles_a: ArrayLike, angles_b: ArrayLike) -> NDArray[np.float64]:
    """Per particle, the angle (degrees, 0-180) of the rotation between two orientations.

    ``angles_a``, ``angles_b``: (n, 3) arrays of (rot, tilt, psi) in degrees.
    """
    a = np.asarray(angles_a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(angles_b, dtype=np.float64).reshape(-1, 3)
    if a.shape != b.shape:
        raise ValueError(f"pose arrays differ in shape: {a.shape} and {b.shape}")
    ra = euler_to_matrix(a[:, 0], a[:, 1], a[:, 2])
    rb = euler_to_matrix(b[:, 0], b[:, 1], b[:, 2])
    # θ = 2 atan2(sin θ/2, cos θ/2): ‖A − B‖² = 8 sin²(θ/2) and (trace(A Bᵀ) + 1) / 4 = cos²(θ/2);
    # exact near 0° and 180°, where arccos((trace - 1) / 2) loses digits
    half_sin = np.sqrt(np.einsum("nij,nij->n", ra - rb, ra - rb) / 8.0)
    half_cos = np.sqrt(np.clip((np.einsum("nij,nij->n", ra, rb) + 1.0) / 4.0, 0.0, None))
    return np.rad2deg(2.0 * np.arctan2(half_sin, half_cos))


def shift_distance_a(shifts_a: ArrayLike, shifts_b: ArrayLike) -> NDArray[np.float64]:
    """Per particle, the distance (Å) between two in-plane shifts ((n, 2) arrays in Å)."""
    a = np.asarray(shifts_a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(shifts_b, dtype=np.float64).reshape(-1, 2)
    if a.shape != b.shape:
        raise ValueError(f"shift arrays differ in shape: {a.shape} and {b.shape}")
    return np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1])


def pose_differences(poses_a: ArrayLike, poses_b: ArrayLike) -> dict:
    """Summary of how two pose sets of the same particles differ. ``poses_*``: (n, 5) arrays of
    rot, tilt, psi (degrees), shift x, shift y (Å); rows with NaN in either are left out.

    Returns the median and 90th percentile of the angular distance (degrees), the median shift
    distance (Å), and the number of particles compared.
    """
    a = np.asarray(poses_a, dtype=np.float64).reshape(-1, 5)
    b = np.asarray(poses_b, dtype=np.float64).reshape(-1, 5)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if not ok.any():
        return {"n": 0, "median_angle_deg": None, "p90_angle_deg": None, "median_shift_a": None}
    ang = angular_distance_deg(a[ok, :3], b[ok, :3])
    sh = shift_distance_a(a[ok, 3:], b[ok, 3:])
    return {
        "n": int(ok.sum()),
        "median_angle_deg": float(np.median(ang)),
        "p90_angle_deg": float(np.percentile(ang, 90)),
        "median_shift_a": float(np.median(sh)),
    }
