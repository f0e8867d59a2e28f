"""Direct Fourier reconstruction of a map from images with known poses and CTFs.

The adjoint of ``simulate.Projector`` (RELION's conventions: Euler angles ZYZ in degrees, the
central slice at A^T (kx, ky, 0), the particle centre at pixel N//2; a particle whose origin
offset is (ox, oy) px lies at N//2 - (ox, oy), as ``relion_preprocess --recenter`` reads it).

Each image's transform is inserted, trilinearly, into a 3D transform ``padding`` times finer
than the box; a CTF weight goes into a second grid beside it:

- plain images:           numerator += CTF . X,  weight += CTF^2
- premultiplied images:   numerator += X,        weight += CTF^2   (X already carries one CTF)
- no CTF:                 numerator += X,        weight += 1

so plain and CTF-premultiplied particles give the same estimate, sum CTF.X / sum CTF^2 (the
Wiener numerator over the CTF power). A small Tikhonov term (``regularisation`` x the shell's
mean weight) keeps sparsely sampled voxels and CTF zeros from amplifying noise. The weights and
the regularisation are the same for every kind of input, which is the point: two stacks of the
same particles reconstructed from the same poses differ only by their images.

Why not ``relion_reconstruct``: RELION 3.1.3's program ignores ``rlnCtfDataAreCtfPremultiplied``
(with ``--ctf`` it applies the CTF a second time), so plain and premultiplied stacks could not be
reconstructed the same way with it.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from cryobox.core.fourier import fft_workers, window
from cryobox.core.simulate import central_plane, relion_matrix

__all__ = ["Backprojector"]


class Backprojector:
    """Accumulates images into one padded half transform; ``reconstruct`` returns the map.

    Memory: two grids of (P, P, P//2 + 2) with P = padding x N (complex128 and float64), about
    24 P^3 / 2 bytes: 200 MB at N = 128 with padding 2, and about as much again while
    ``reconstruct`` runs. Use ``padding=1`` for large boxes.
    """

    def __init__(self, box_px: int, *, padding: int = 2):
        n = int(box_px)
        if n < 2:
            raise ValueError(f"the box must be at least 2 px, got {box_px}")
        if padding not in (1, 2):
            raise ValueError(f"padding must be 1 or 2, got {padding}")
        self.n = n
        self.padding = int(padding)
        p = self.padding * n
        self.pad = p
        self.half = p // 2 + 1
        # one spare x slab: trilinear neighbours of points at Nyquist land there and are dropped
        self.shape = (p, p, self.half + 1)
        size = int(np.prod(self.shape))
        self._num = np.zeros(size, dtype=np.complex128)
        self._wgt = np.zeros(size)
        self.count = 0
        # a half plane of the image's transform (the other half is the Hermitian mirror)
        self._keep, self._plane = central_plane(n, self.padding, half_plane=True)
        # for the phase ramp that moves the particle centre to the origin: k / N (cycles per px)
        self._kx = self._plane[0] / (self.padding * n)
        self._ky = self._plane[1] / (self.padding * n)

    def insert(
        self,
        images: NDArray,
        angles_deg: NDArray,
        *,
        offsets_px: NDArray | None = None,
        ctf_rfft: NDArray | None = None,
        premultiplied: bool = False,
        batch: int = 32,
    ) -> None:
        """Add images (m, N, N) at RELION Euler angles (m, 3) (rot, tilt, psi, degrees).

        ``offsets_px`` (m, 2): RELION's origin offsets (rlnOriginX/Y, in px of this box).
        ``ctf_rfft``: the CTF on the rfft2 grid (N, N//2+1), shared or one per image
        (m, N, N//2+1) (``core.extract.ctf_grids``); None inserts without CTF weighting.
        ``premultiplied``: the images already carry the CTF once (rlnCtfDataAreCtfPremultiplied).
        """
        imgs = np.asarray(images)
        if imgs.ndim == 2:
            imgs = imgs[None]
        m, n = imgs.shape[0], self.n
        if imgs.shape[1:] != (n, n):
            raise ValueError(f"images of {imgs.shape[1:]} do not fit a {n} px backprojector")
        ang = np.atleast_2d(np.asarray(angles_deg, dtype=np.float64))
        off = np.zeros((m, 2)) if offsets_px is None else np.atleast_2d(np.asarray(offsets_px, dtype=np.float64))
        if ang.shape != (m, 3) or off.shape != (m, 2):
            raise ValueError(f"need (m, 3) angles and (m, 2) offsets for {m} images, got {ang.shape} and {off.shape}")
        ctf = None if ctf_rfft is None else np.asarray(ctf_rfft)
        if ctf is not None and ctf.shape[-2:] != (n, n // 2 + 1):
            raise ValueError(f"CTF grids of {ctf.shape[-2:]} do not fit a {n} px box (need {(n, n // 2 + 1)})")
        for s in range(0, m, batch):
            e = min(m, s + batch)
            ft = sfft.rfft2(np.asarray(imgs[s:e], dtype=np.float64), workers=fft_workers())[:, self._keep]  # (b, k)
            # centre: the particle sits at N//2 - offset; move it to the origin
            cx = n // 2 - off[s:e, 0]
            cy = n // 2 - off[s:e, 1]
            ft *= np.exp(2j * np.pi * (np.outer(cx, self._kx) + np.outer(cy, self._ky)))
            if ctf is None:
                w = np.ones(ft.shape)
            else:
                c = (ctf[s:e] if ctf.ndim == 3 else np.broadcast_to(ctf, (e - s,) + ctf.shape))[:, self._keep].astype(
                    np.float64
                )
                w = c * c
                if not premultiplied:
                    ft *= c
            a = relion_matrix(*ang[s:e].T)  # (b, 3, 3)
            pts = np.einsum("bji,jk->ibk", a, self._plane).reshape(3, -1)  # A^T (kx, ky, 0)
            self._add(pts, ft.reshape(-1), w.reshape(-1))
            self.count += e - s

    def _add(self, pts: NDArray, values: NDArray, weights: NDArray) -> None:
        flip = pts[0] < 0  # x < 0: insert the Hermitian mirror (-k, conj) into the stored half
        pts = np.where(flip, -pts, pts)
        values = np.where(flip, np.conj(values), values)
        x, y, z = pts
        x0, y0, z0 = np.floor(x), np.floor(y), np.floor(z)
        fx, fy, fz = x - x0, y - y0, z - z0
        p, hx = self.pad, self.shape[2]
        x0 = x0.astype(np.int64)
        y0 = y0.astype(np.int64)
        z0 = z0.astype(np.int64)
        # unbuffered scatter-add, one trilinear corner at a time (numpy >= 1.25 makes ufunc.at fast;
        # no full-grid temporaries, unlike bincount)
        for dz, wz in ((0, 1 - fz), (1, fz)):
            zi = (z0 + dz) % p
            for dy, wy in ((0, 1 - fy), (1, fy)):
                zy = (zi * p + (y0 + dy) % p) * hx
                wzy = wz * wy
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    idx = zy + x0 + dx
                    w = wzy * wx
                    np.add.at(self._num, idx, values * w)
                    np.add.at(self._wgt, idx, weights * w)

    def reconstruct(self, *, regularisation: float = 0.05) -> NDArray[np.float32]:
        """The (N, N, N) map, centre at N//2: sum CTF.X / (sum CTF^2 + eps), eps =
        ``regularisation`` x the mean weight of the voxel's shell (of one padded Fourier pixel)."""
        p, h = self.pad, self.half
        num = self._num.reshape(self.shape)[..., :h].copy()
        wgt = self._wgt.reshape(self.shape)[..., :h].copy()
        # the x = 0 plane holds points and their mirrors: complete it, F(0, y, z) += conj F(0, -y, -z)
        # (the x = P/2 plane lies beyond the box's Nyquist, zeroed below, but for one voxel)
        mirror = (-np.arange(p)) % p
        for arr, conj in ((num, True), (wgt, False)):
            plane = arr[:, :, 0]
            other = plane[mirror][:, mirror]
            arr[:, :, 0] = plane + (np.conj(other) if conj else other)
        kz = (np.fft.fftfreq(p) * p).astype(np.float32)
        kx = np.arange(h, dtype=np.float32)
        shell = np.rint(np.sqrt(kz[:, None, None] ** 2 + kz[None, :, None] ** 2 + kx[None, None, :] ** 2)).astype(
            np.int32
        )
        sampled = wgt > 0
        counts = np.bincount(shell[sampled], minlength=shell.max() + 1)
        sums = np.bincount(shell[sampled], wgt[sampled], minlength=shell.max() + 1)
        eps = regularisation * np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        # in place, to keep the peak memory near the two grids: num / (wgt + eps), zero where unsampled
        wgt += eps[shell]
        np.divide(num, wgt, out=num, where=sampled)
        num[~sampled] = 0
        del wgt, sampled
        num[shell > (self.n // 2) * self.padding] = 0  # beyond the box's Nyquist
        del shell
        vol = sfft.irfftn(num.astype(np.complex64), s=(p, p, p), workers=fft_workers(), overwrite_x=True)
        del num
        return window(sfft.fftshift(vol), self.n).astype(np.float32)
