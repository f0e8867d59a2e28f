"""Synthetic data with known truth: a default particle, projections, CTF'd noisy micrographs.

Pure numpy/scipy (the atomic-model reader lives in io/). Conventions (checked against
relion_project in the tests): RELION's Euler angles (rot, tilt, psi, degrees, ZYZ) with
RELION's rotation matrix A = Rz(psi)' Ry(tilt)' Rz(rot)' (see ``relion_matrix``); a projection is
the central slice of the volume's Fourier transform at A^T (kx, ky, 0), sampled from the
transform of the volume padded 2x (trilinear), as RELION's Projector does; the particle centre is
pixel N//2 of its box, and a shift (dx, dy) in px moves the particle by (+dx, +dy).
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from cryobox.core.fourier import fft_workers, filter_map, window

__all__ = [
    "relion_matrix",
    "random_relion_angles",
    "default_particle_map",
    "atoms_to_map",
    "Projector",
    "central_plane",
    "shift_images",
    "apply_ctf_to_images",
]


def relion_matrix(rot_deg, tilt_deg, psi_deg) -> NDArray[np.float64]:
    """RELION's Euler_angles2matrix for arrays of angles: (n, 3, 3)."""
    a, b, g = (np.deg2rad(np.atleast_1d(np.asarray(v, dtype=np.float64))) for v in (rot_deg, tilt_deg, psi_deg))
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.empty(a.shape + (3, 3))
    m[..., 0, 0] = cg * cc - sg * sa
    m[..., 0, 1] = cg * cs + sg * ca
    m[..., 0, 2] = -cg * sb
    m[..., 1, 0] = -sg * cc - cg * sa
    m[..., 1, 1] = -sg * cs + cg * ca
    m[..., 1, 2] = sg * sb
    m[..., 2, 0] = sc
    m[..., 2, 1] = ss
    m[..., 2, 2] = cb
    return m


def random_relion_angles(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """(n, 3) rot, tilt, psi (deg) uniform over orientations (tilt from arccos of a uniform)."""
    rot = rng.uniform(-180.0, 180.0, n)
    tilt = np.rad2deg(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(-180.0, 180.0, n)
    return np.stack([rot, tilt, psi], axis=1)


def atoms_to_map(
    coords_a: NDArray, box_px: int, pixel_size_a: float, *, weights: NDArray | None = None, bfactor_a2: float = 20.0
) -> NDArray[np.float32]:
    """Point scatterers (Å, relative to the box centre) splatted onto a (N, N, N) grid (trilinear)
    and given a Gaussian form factor exp(-B k^2 / 4): a smooth, band-limited potential."""
    n = int(box_px)
    pts = np.asarray(coords_a, dtype=np.float64) / pixel_size_a + n // 2  # (m, 3) x, y, z in px
    w = np.ones(len(pts)) if weights is None else np.asarray(weights, dtype=np.float64)
    grid = np.zeros((n, n, n), dtype=np.float64)
    base = np.floor(pts).astype(np.int64)
    frac = pts - base
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = base + np.array([dx, dy, dz])
                ok = np.all((idx >= 0) & (idx < n), axis=1)
                wt = (
                    w
                    * np.where(dx, frac[:, 0], 1 - frac[:, 0])
                    * np.where(dy, frac[:, 1], 1 - frac[:, 1])
                    * np.where(dz, frac[:, 2], 1 - frac[:, 2])
                )
                np.add.at(grid, (idx[ok, 2], idx[ok, 1], idx[ok, 0]), wt[ok])
    return filter_map(grid, pixel_size_a=pixel_size_a, bfactor_a2=bfactor_a2)


def _longest_dimension(points: NDArray) -> float:
    """The largest distance between two of ``points`` (n, 3), over their convex hull's vertices."""
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    return float(pdist(points[ConvexHull(points).vertices]).max())


def default_particle_map(
    box_px: int, pixel_size_a: float, *, length_a: float = 220.0, seed: int = 0
) -> NDArray[np.float32]:
    """The built-in particle: an elongated two-domain glycoprotein-like shape ~``length_a`` long (a
    flattened ellipsoidal head and a narrower arm bent away from its axis at a hinge, with two
    glycan-like knobs on opposite sides), filled with pseudo-atoms at protein density so the map
    carries high-resolution signal.

    It is asymmetric at low resolution on purpose: an earlier, round head with a straight arm
    correlated 0.97-0.99 with itself turned by any angle about its long axis at 30 Å, so a
    refinement could not find that angle and every pose-accuracy measure of a simulation was
    meaningless (the quick demo's runs ended 71-83° from the truth)."""
    rng = np.random.default_rng(seed)
    L = float(length_a)

    def ellipsoid(center, radii, axis, n_atoms):
        pts = rng.normal(size=(n_atoms * 3, 3))
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        pts *= rng.uniform(0, 1, (pts.shape[0], 1)) ** (1 / 3)
        pts = pts[:n_atoms] * np.asarray(radii)
        # rotate the ellipsoid's long axis (x) onto ``axis``
        axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
        v = np.cross([1.0, 0.0, 0.0], axis)
        s, c = np.linalg.norm(v), float(np.dot([1.0, 0.0, 0.0], axis))
        if s > 1e-9:
            k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / s
            r = np.eye(3) + s * k + (1 - c) * (k @ k)
            pts = pts @ r.T
        return pts + np.asarray(center)

    head = ellipsoid([-0.20 * L, 0.0, 0.0], [0.26 * L, 0.20 * L, 0.10 * L], [1.0, 0.1, 0.0], 8000)
    arm = ellipsoid([0.18 * L, 0.14 * L, 0.06 * L], [0.22 * L, 0.08 * L, 0.08 * L], [0.6, 1.0, 0.5], 3500)
    knob = ellipsoid([-0.30 * L, -0.06 * L, 0.14 * L], [0.11 * L, 0.10 * L, 0.10 * L], [0.0, 1.0, 0.2], 2000)
    lobe = ellipsoid([0.0, -0.14 * L, -0.08 * L], [0.08 * L, 0.07 * L, 0.07 * L], [0.0, 0.0, 1.0], 900)
    pts = np.concatenate([head, arm, knob, lobe])
    pts -= pts.mean(axis=0)
    pts *= L / _longest_dimension(pts)  # ``length_a`` is the particle's longest dimension
    vol = atoms_to_map(pts, box_px, pixel_size_a, bfactor_a2=max(20.0, 8.0 * pixel_size_a**2))
    return (vol / vol.max()).astype(np.float32)


def central_plane(
    box_px: int, padding: int, *, half_plane: bool = False
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """The frequencies of an image's rfft2 grid (N, N//2+1) within Nyquist: a mask on that grid and
    their (kx, ky, 0) in Fourier pixels of a transform ``padding`` times finer, (3, m).

    ``half_plane``: keep only one of each Hermitian pair (kx > 0, or kx = 0 and ky >= 0), as a
    backprojector needs (the other half is the mirror it adds itself)."""
    n = int(box_px)
    ky = np.fft.fftfreq(n) * n
    kx = np.arange(n // 2 + 1, dtype=np.float64)
    KY, KX = np.meshgrid(ky, kx, indexing="ij")
    keep = (KX**2 + KY**2) <= (n // 2) ** 2
    if half_plane:
        keep &= (KX > 0) | (KY >= 0)
    return keep, np.stack([KX[keep], KY[keep], np.zeros(int(keep.sum()))]) * padding


class Projector:
    """Fourier-slice projector of one volume, RELION's way: the volume is zero-padded 2x, its 3D
    transform is sampled trilinearly on the central slice A^T (kx, ky, 0) at the N x (N//2 + 1)
    frequencies of the output image (within Nyquist), and one inverse 2D FFT of size N gives the
    projection (centre at N//2)."""

    def __init__(self, volume: NDArray, *, padding: int = 2):
        vol = np.asarray(volume, dtype=np.float32)
        n = vol.shape[-1]
        if vol.shape != (n, n, n):
            raise ValueError(f"a projector needs a cubic volume, got {vol.shape}")
        self.n = n
        self.padding = int(padding)
        self.pad = self.padding * n
        # half transform (rfftn) of the padded volume, origin at index 0 (real-space centre moved to
        # the corner): half the memory of a full transform; the other half is its complex conjugate
        p = self.pad
        big = sfft.ifftshift(window(vol, p))
        # multiplying by (-1)^(y+z) moves the y and z frequency origin to index p//2 (p is even):
        # a centred layout without an fftshift copy of the big transform
        sign = np.where((np.arange(p) % 2) == 0, 1.0, -1.0).astype(np.float32)
        big *= sign[:, None, None] * sign[None, :, None]
        ft = sfft.rfftn(big, workers=fft_workers(), overwrite_x=True)
        del big
        self.half = ft.shape[-1]
        # append two periodic slices so trilinear neighbours index the array without modulo arithmetic
        ext = np.empty((p + 2, p + 2, self.half), dtype=np.complex64)
        ext[:p, :p] = ft
        ext[p:, :p] = ft[:2]
        ext[:, p:] = ext[:, :2]
        self.stride = p + 2
        self.ft = ext.reshape(-1)
        self.inside, self.plane = central_plane(n, self.padding)

    def _sample(self, pts: NDArray) -> NDArray[np.complex64]:
        """Trilinear samples of the padded volume's transform at frequencies (3, k) (x, y, z) in
        padded Fourier pixels. A point with x < 0 is sampled at -k and conjugated (Hermitian
        symmetry), so every sample lies in the stored half."""
        c = self.pad // 2
        flip = pts[0] < 0
        x, y, z = np.where(flip, -pts, pts).astype(np.float32)
        y = y + np.float32(c)
        z = z + np.float32(c)
        x0, y0, z0 = np.floor(x), np.floor(y), np.floor(z)
        fx, fy, fz = x - x0, y - y0, z - z0
        x0 = x0.astype(np.int32)
        edge = x0 >= self.half - 1  # exactly at Nyquist: use the cell below with full weight on its top
        x0 = np.where(edge, self.half - 2, x0)
        fx = np.where(edge, np.float32(1.0), fx)
        base = (z0.astype(np.int32) * self.stride + y0.astype(np.int32)) * self.half + x0
        sy, sz = self.half, self.stride * self.half
        out = np.zeros(x.shape, dtype=np.complex64)
        for dz, wz in ((0, 1 - fz), (sz, fz)):
            for dy, wy in ((0, 1 - fy), (sy, fy)):
                wzy = wz * wy
                out += np.take(self.ft, base + (dz + dy)) * (wzy * (1 - fx))
                out += np.take(self.ft, base + (dz + dy + 1)) * (wzy * fx)
        return np.where(flip, np.conj(out), out)

    def project(self, angles_deg: NDArray, *, batch: int = 8) -> NDArray[np.float32]:
        """Projections (m, N, N) of the volume at RELION Euler angles (m, 3) (deg).

        Batches run on as many threads as scipy.fft may use (numpy's gathers and arithmetic
        release the GIL)."""
        ang = np.atleast_2d(np.asarray(angles_deg, dtype=np.float64))
        n = self.n
        out = np.empty((ang.shape[0], n, n), dtype=np.float32)

        def one_batch(start: int) -> None:
            a = relion_matrix(*ang[start : start + batch].T)  # (b, 3, 3)
            b = a.shape[0]
            pts = np.einsum("bji,jk->ibk", a, self.plane).reshape(3, -1)  # A^T (kx, ky, 0) for every image
            spec = np.zeros((b, n, n // 2 + 1), dtype=np.complex64)
            spec[:, self.inside] = self._sample(pts).reshape(b, -1)
            out[start : start + b] = sfft.fftshift(sfft.irfft2(spec, s=(n, n), workers=1), axes=(-2, -1))

        starts = range(0, ang.shape[0], batch)
        threads = fft_workers()
        if threads > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(one_batch, starts))
        else:
            for start in starts:
                one_batch(start)
        return out


def shift_images(stack: NDArray, dx_px: NDArray, dy_px: NDArray) -> NDArray[np.float32]:
    """Shift each image (n, N, N) by (dx, dy) px (sub-pixel, Fourier phase ramp, periodic)."""
    s = np.asarray(stack, dtype=np.float32)
    n = s.shape[-1]
    ky = np.fft.fftfreq(n)
    kx = np.fft.rfftfreq(n)
    ft = sfft.rfft2(s, workers=fft_workers())
    # the phase ramp is separable: exp(-2 pi i (kx dx + ky dy)) = row factor x column factor
    ry = np.exp(-2j * np.pi * np.outer(np.asarray(dy_px, dtype=np.float64), ky)).astype(np.complex64)  # (m, n)
    rx = np.exp(-2j * np.pi * np.outer(np.asarray(dx_px, dtype=np.float64), kx)).astype(np.complex64)  # (m, n//2+1)
    ft *= ry[:, :, None]
    ft *= rx[:, None, :]
    return sfft.irfft2(ft, s=(n, n), workers=fft_workers()).astype(np.float32)


def apply_ctf_to_images(stack: NDArray, ctf_rfft: NDArray) -> NDArray[np.float32]:
    """Multiply images (n, N, N) by CTF grids on the rfft2 layout ((N, N//2+1) or per image)."""
    s = np.asarray(stack, dtype=np.float32)
    n = s.shape[-1]
    return sfft.irfft2(sfft.rfft2(s, workers=fft_workers()) * ctf_rfft, s=(n, n), workers=fft_workers()).astype(
        np.float32
    )
