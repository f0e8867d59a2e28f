"""Pose distances on known answers: the same poses give 0, a known extra rotation gives its angle
back, an in-plane flip is 180°, and the way the angles are written does not matter."""

from __future__ import annotations

import numpy as np
import pytest

from cryobox.core.poses import angular_distance_deg, euler_to_matrix, pose_differences, shift_distance_a


def _random_poses(n, rng):
    rot = rng.uniform(-180, 180, n)
    tilt = np.rad2deg(np.arccos(rng.uniform(-1, 1, n)))
    psi = rng.uniform(-180, 180, n)
    return np.stack([rot, tilt, psi], axis=1)


def _matrix_to_euler(m):
    """RELION's Euler_matrix2angles (ZYZ), for building test poses from rotation matrices."""
    tilt = np.degrees(np.arccos(np.clip(m[..., 2, 2], -1, 1)))
    rot = np.degrees(np.arctan2(m[..., 2, 1], m[..., 2, 0]))
    psi = np.degrees(np.arctan2(m[..., 1, 2], -m[..., 0, 2]))
    return np.stack([rot, tilt, psi], axis=-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_true_poses_give_zero(dtype):
    rng = np.random.default_rng(0)
    p = _random_poses(500, rng).astype(dtype)
    assert np.max(angular_distance_deg(p, p)) < 1e-3
    s = rng.normal(0, 3, (500, 2)).astype(dtype)
    assert np.max(shift_distance_a(s, s)) == 0


def test_matrices_are_rotations_and_match_relion_for_simple_cases():
    rng = np.random.default_rng(1)
    p = _random_poses(100, rng)
    m = euler_to_matrix(p[:, 0], p[:, 1], p[:, 2])
    np.testing.assert_allclose(m @ np.swapaxes(m, 1, 2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)
    # a pure in-plane angle: rot and psi add up (RELION's convention), so (10, 0, 0) == (0, 0, 10)
    assert angular_distance_deg([[10, 0, 0]], [[0, 0, 10]])[0] == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("angle", [0.5, 3.0, 15.0, 90.0, 179.0])
def test_poses_rotated_by_a_known_angle_give_that_angle(angle):
    rng = np.random.default_rng(2)
    p = _random_poses(300, rng)
    m = euler_to_matrix(p[:, 0], p[:, 1], p[:, 2])
    axes = rng.normal(size=(300, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    t = np.deg2rad(angle)
    k = np.zeros((300, 3, 3))  # Rodrigues: rotation by `angle` about a random axis per particle
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
    k = k - np.swapaxes(k, 1, 2)
    r = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)
    moved = _matrix_to_euler(r @ m)
    np.testing.assert_allclose(angular_distance_deg(moved, p), angle, atol=1e-6)


def test_an_in_plane_flip_is_180_degrees_and_a_psi_offset_is_its_angle():
    rng = np.random.default_rng(3)
    p = _random_poses(200, rng)
    flipped = p.copy()
    flipped[:, 2] += 180.0
    np.testing.assert_allclose(angular_distance_deg(flipped, p), 180.0, atol=1e-5)
    turned = p.copy()
    turned[:, 2] += 7.0
    np.testing.assert_allclose(angular_distance_deg(turned, p), 7.0, atol=1e-6)


def test_pose_differences_summarise_and_skip_missing_rows():
    rng = np.random.default_rng(4)
    p = np.concatenate([_random_poses(101, rng), rng.normal(0, 2, (101, 2))], axis=1)
    q = p.copy()
    q[:, 2] += 4.0  # 4° in plane
    q[:, 3] += 3.0  # 3 Å along x
    q[0] = np.nan
    d = pose_differences(q, p)
    assert d["n"] == 100
    assert d["median_angle_deg"] == pytest.approx(4.0, abs=1e-6) and d["p90_angle_deg"] == pytest.approx(4.0, abs=1e-6)
    assert d["median_shift_a"] == pytest.approx(3.0)
    assert pose_differences(np.full((3, 5), np.nan), p[:3])["n"] == 0
