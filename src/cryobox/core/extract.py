"""Particle extraction on arrays, batched: window, CTF premultiply / phase flip, rescale,
background normalisation, contrast inversion. Pure numpy/scipy, no files.

Conventions follow relion_preprocess (RELION 3.1), checked against it in the tests:
- the box is centred on pixel int(coordinate) (RELION truncates the coordinate), which is pixel
  N//2 of the box: it spans [int(x) - N//2, int(x) - N//2 + N) on each axis;
- pixels outside the micrograph take the value of the nearest pixel inside (edge replication,
  "lines at the edges rather than zeros");
- premultiply / phase flip: the particle is windowed in a box of M >= N px (outside pixels filled
  with the micrograph mean), multiplied in Fourier space by its CTF (or the CTF's sign) with the
  CTF B-factor and scale, cropped to N px around N//2, then edge-replicated;
- per-image operations in RELION's order: Fourier rescale -> normalise -> invert;
- normalisation: over the background (pixels with i^2 + j^2 > R^2, (i, j) from the box centre)
  fit and subtract a plane a j + b i + c (or subtract the mean, no_ramp), then subtract the
  background mean and divide by its standard deviation.
Images are float32 arrays (n, N, N). ``scipy.fft`` is imported only by the functions that need it
(see ``cryobox.core.fourier``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from cryobox.core.boxsize import box_origins
from cryobox.core.fourier import fft_workers, irfft2_inplace
from cryobox.core.optics import CtfParams

__all__ = [
    "box_origins",
    "window_particles",
    "premultiply_micrograph",
    "ctf_rfft_grid",
    "ctf_grids",
    "premultiply_and_crop",
    "fourier_rescale_stack",
    "normalise_background",
    "background_mask",
    "default_bg_radius_px",
]


def window_particles(
    micrograph: NDArray, x_px: NDArray, y_px: NDArray, box_px: int, *, fill: float | None = None
) -> NDArray[np.float32]:
    """Boxes (n, N, N) cut from a micrograph (H, W) around int(x), int(y).

    ``fill=None``: pixels outside the micrograph repeat the nearest edge pixel (RELION's final
    particles). ``fill=value``: they hold that value (RELION's big box before premultiplication,
    filled with the micrograph mean). Boxes inside the micrograph are plain slices (fast);
    only boxes crossing an edge go through clamped index arrays.
    """
    mic = np.asarray(micrograph)
    h, w = mic.shape
    n = int(box_px)
    x0 = box_origins(x_px, n)
    y0 = box_origins(y_px, n)
    out = np.empty((x0.size, n, n), dtype=np.float32)
    offs = np.arange(n)
    for k in range(x0.size):
        xa, ya = int(x0[k]), int(y0[k])
        if xa >= 0 and ya >= 0 and xa + n <= w and ya + n <= h:
            out[k] = mic[ya : ya + n, xa : xa + n]
            continue
        rows = ya + offs
        cols = xa + offs
        out[k] = mic[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]]
        if fill is not None:
            outside = ((rows < 0) | (rows >= h))[:, None] | ((cols < 0) | (cols >= w))[None, :]
            out[k][outside] = np.float32(fill)
    return out


def _replicate_edges(stack: NDArray, x_px: NDArray, y_px: NDArray, *, width_px: int, height_px: int) -> None:
    """In place: pixels of boxes outside the micrograph take the nearest inside value."""
    n = stack.shape[-1]
    offs = np.arange(n)
    for i, (x0, y0) in enumerate(zip(box_origins(x_px, n), box_origins(y_px, n))):
        if x0 >= 0 and y0 >= 0 and x0 + n <= width_px and y0 + n <= height_px:
            continue
        cols = np.clip(x0 + offs, 0, width_px - 1) - x0
        rows = np.clip(y0 + offs, 0, height_px - 1) - y0
        stack[i] = stack[i][rows[:, None], cols[None, :]]


def ctf_rfft_grid(box_px: int, pixel_size_a: float, ctf: CtfParams, *, phase_flip: bool = False) -> NDArray[np.float32]:
    """The CTF (with B-factor envelope and scale, RELION's "damping") or its sign on the rfft2
    grid (N, N//2 + 1) of a box: what relion_preprocess multiplies a particle's spectrum by."""
    grid = ctf.on_box(box_px, pixel_size_a, layout="rfft-relion", dtype=np.float64)
    if phase_flip:
        return np.where(grid < 0, -1.0, 1.0).astype(np.float32)
    return (ctf.scale * grid).astype(np.float32)


CTF_KEYS = (
    "defocus_u_a",
    "defocus_v_a",
    "defocus_angle_deg",
    "phase_shift_deg",
    "ctf_bfactor_a2",
    "ctf_scale",
    "voltage_kv",
    "cs_mm",
    "amplitude_contrast",
)


def ctf_grids(params: dict, box_px: int, pixel_size_a: float, *, phase_flip: bool = False) -> NDArray[np.float32]:
    """CTF grids (see ``ctf_rfft_grid``) for a batch of particles given per-particle parameter
    arrays (canonical names; missing optional ones default to 0 / 1). Particles that share a CTF
    (usually all of one micrograph) share one grid: returns (M, M//2+1) when all are equal, else
    (n, M, M//2+1)."""
    keys = [k for k in CTF_KEYS if k in params]
    table = np.stack([np.asarray(params[k], dtype=np.float64) for k in keys], axis=1)
    uniq, inverse = np.unique(table, axis=0, return_inverse=True)
    grids = []
    for row in uniq:
        ctf = CtfParams.from_columns(dict(zip(keys, row)))
        grids.append(ctf_rfft_grid(box_px, pixel_size_a, ctf, phase_flip=phase_flip))
    return grids[0] if len(grids) == 1 else np.stack(grids)[inverse.reshape(-1)]


def premultiply_and_crop(big: NDArray, ctf_rfft: NDArray, box_px: int) -> NDArray[np.float32]:
    """Multiply boxes (n, M, M) by CTF grids ((M, M//2+1) shared, or (n, M, M//2+1)) in Fourier
    space and crop the centre N px (pixel M//2 -> N//2).

    Only the kept rows are inverse-transformed along x: the inverse runs as a complex FFT along y,
    a cut to the N central rows, then the real inverse along x (a quarter less work than a full
    irfft2 followed by the crop; the same numbers).
    """
    import scipy.fft as sfft  # imported here: see the module docstring

    stack = np.asarray(big, dtype=np.float32)
    m = stack.shape[-1]
    n = int(box_px)
    wk = fft_workers()
    ft = sfft.rfft2(stack, workers=wk, overwrite_x=stack is not big)
    ft *= ctf_rfft
    start = m // 2 - n // 2
    half = sfft.ifft(ft, axis=-2, workers=wk, overwrite_x=True)[:, start : start + n, :]
    out = sfft.irfft(half, n=m, axis=-1, workers=wk)
    return np.ascontiguousarray(out[:, :, start : start + n], dtype=np.float32)


def fourier_rescale_stack(stack: NDArray, new_box_px: int, *, pixel_size_a: float) -> tuple[NDArray[np.float32], float]:
    """Fourier crop/pad every image of (k, N, N) to (k, n, n), as RELION's resizeMap.

    Returns the rescaled stack and the pixel size it reached, ``pixel_size_a * N / n`` (Å/px).

    RELION's windowFourierTransform on the FFTW half-transform: cropping keeps the square of
    rows ky in [-(n//2 - 1 + n % 2), n//2] (for even n the Nyquist row is taken from +n/2) and
    columns 0..n//2; padding copies the components with |k| <= N//2 (a disc, so the padded
    spectrum has no corners). Real-space values are preserved (the spectrum is scaled by n^2/N^2).
    """
    import scipy.fft as sfft  # imported here: see the module docstring

    s = np.asarray(stack, dtype=np.float32)
    n_old, n_new = s.shape[-1], int(new_box_px)
    achieved_a = float(pixel_size_a) * n_old / n_new
    if n_new == n_old:
        return s.copy(), achieved_a
    ft = sfft.rfft2(s, workers=fft_workers())
    out = np.zeros(s.shape[:-2] + (n_new, n_new // 2 + 1), dtype=np.complex64)

    def signed_rows(n):  # FFTW-loop row frequencies: i if i < n//2 + 1 else i - n
        i = np.arange(n)
        return np.where(i < n // 2 + 1, i, i - n)

    if n_new < n_old:
        ip = signed_rows(n_new)
        out[...] = ft[..., ip % n_old, : n_new // 2 + 1]
    else:
        ip = signed_rows(n_old)
        jp = np.arange(n_old // 2 + 1)
        keep = ip[:, None] ** 2 + jp[None, :] ** 2 <= (n_old // 2) ** 2
        rows = ip % n_new
        out[..., rows, : n_old // 2 + 1] = np.where(keep, ft, 0)
    img = sfft.irfft2(out, s=(n_new, n_new), workers=fft_workers())
    img *= (n_new / n_old) ** 2
    return img.astype(np.float32), achieved_a


def default_bg_radius_px(box_px: int) -> float:
    """RELION's default background radius (its GUI's): int(0.375 N) px of the final box."""
    return float(int(0.375 * int(box_px)))


def background_mask(box_px: int, radius_px: float) -> NDArray[np.bool_]:
    """Pixels with i^2 + j^2 > R^2, (i, j) counted from the box centre N//2 (RELION's background)."""
    c = np.arange(int(box_px)) - int(box_px) // 2
    return (c[:, None] ** 2 + c[None, :] ** 2) > radius_px * radius_px


@lru_cache(maxsize=8)
def _background_design(box_px: int, radius_px: float, ramp: bool):
    """Per (box, radius, ramp): background weights, the weighted design (x, y, 1 or just 1), the
    inverse of its Gram matrix over the background, the number of background pixels and the
    centred coordinates."""
    n = int(box_px)
    c = np.arange(n, dtype=np.float64) - n // 2
    bg = background_mask(n, radius_px).ravel()
    cols = [np.broadcast_to(c[None, :], (n, n)).ravel(), np.broadcast_to(c[:, None], (n, n)).ravel()] if ramp else []
    design = np.stack(cols + [np.ones(n * n)], axis=1)  # (pixels, 3 or 1)
    w = design * bg[:, None]
    n_bg = int(bg.sum())
    gram_inv = np.linalg.inv(w.T @ design) if n_bg else None
    return bg.astype(np.float32), w.astype(np.float32), gram_inv, n_bg, c.astype(np.float32)


_CACHE_PIXELS = 1 << 16  # pixels per sub-batch (256 KiB of float32): the passes below stay in L2 cache


def normalise_background(
    stack: NDArray, radius_px: float, *, ramp: bool = True, invert: bool = False, overwrite: bool = False
) -> NDArray[np.float32]:
    """relion_preprocess --norm on a batch: plane fit (or mean, ``ramp=False``) on the background
    outside ``radius_px``, subtract, then (x - mean_bg) / std_bg (population std); ``invert``
    flips the sign in the same pass (RELION inverts after normalising). ``overwrite``: work in
    ``stack`` itself when it is a writeable C-contiguous float32 array (no copy).

    Few passes, each over a sub-batch small enough to stay in cache: one matrix product gives the
    normal equations of the plane (sums over the background of x v, y v, v), one more the
    background's sum of squares; the residual's variance follows from those (a least-squares fit
    with a constant column leaves residuals of zero mean, and sum r^2 = sum v^2 - coef . X^T v).
    Then scale and subtract the plane row by row and column by column. Each image is first
    shifted by one of its background pixels so that the second moments do not cancel in float32.
    """
    s = np.asarray(stack)
    b, n = s.shape[0], s.shape[-1]
    bgf, w, gram_inv, n_bg, c = _background_design(n, float(radius_px), bool(ramp))
    if n_bg == 0:
        raise ValueError(f"background radius {radius_px} px leaves no background in a {n} px box")
    in_place = overwrite and s.dtype == np.float32 and s.flags.c_contiguous and s.flags.writeable
    out = s if in_place else np.array(s, dtype=np.float32, order="C")
    flat = out.reshape(b, n * n)
    corner = int(np.argmax(bgf))  # a background pixel
    step = max(1, _CACHE_PIXELS // (n * n))
    sq = np.empty((min(step, b), n * n), dtype=np.float32)
    sign = -1.0 if invert else 1.0
    for a in range(0, b, step):
        blk = flat[a : a + step]
        k = blk.shape[0]
        blk -= blk[:, corner].copy()[:, None]
        rhs = (blk @ w).astype(np.float64)  # (images, 3 or 1): X^T v over the background
        coef = rhs @ gram_inv  # the Gram matrix is symmetric
        np.multiply(blk, blk, out=sq[:k])
        s2 = (sq[:k] @ bgf).astype(np.float64)
        var = (s2 - np.einsum("ij,ij->i", coef, rhs)) / n_bg
        std = np.sqrt(np.maximum(var, 0.0))
        std[std == 0] = 1.0
        scale = sign / std
        img = blk.reshape(k, n, n)
        img *= scale.astype(np.float32)[:, None, None]
        cs = coef * scale[:, None]
        if ramp:
            img -= (cs[:, 0, None] * c[None, :]).astype(np.float32)[:, None, :]
            img -= (cs[:, 1, None] * c[None, :] + cs[:, 2, None]).astype(np.float32)[:, :, None]
        else:
            img -= cs[:, 0].astype(np.float32)[:, None, None]
    return out


def premultiply_micrograph(micrograph: NDArray, pixel_size_a: float, ctf: CtfParams) -> NDArray[np.float32]:
    """A whole micrograph (H, W) multiplied by its CTF (RELION's convention, times ``scale``) in
    Fourier space: the limit of an infinitely large premultiply box, so no delocalised signal
    wraps around a box edge (``ctf``: the micrograph's one CTF, its scale applied)."""
    import scipy.fft as sfft  # imported here: see the module docstring

    mic = np.asarray(micrograph, dtype=np.float32)
    h, w = mic.shape
    ky = np.fft.fftfreq(h, d=pixel_size_a).astype(np.float32)
    kx = np.fft.rfftfreq(w, d=pixel_size_a).astype(np.float32)
    grid = ctf.on_grid(ky[:, None], kx[None, :], dtype=np.float32)
    if ctf.scale != 1.0:
        grid *= np.float32(ctf.scale)
    ft = sfft.rfft2(mic, workers=fft_workers())
    ft *= grid
    return irfft2_inplace(ft, mic.shape)


def particle_contrast(images: NDArray, radius_px: float) -> float:
    """Mean inside a centred disc of ``radius_px`` minus the mean outside it, over a stack of
    images, in units of the images' standard deviation: positive for white particles (RELION's
    convention for refinement), negative for dark ones (as on micrographs)."""
    imgs = np.asarray(images, dtype=np.float64)
    n = imgs.shape[-1]
    yy, xx = np.mgrid[:n, :n] - n // 2
    inside = (xx * xx + yy * yy) <= radius_px * radius_px
    if inside.all() or not inside.any():
        return 0.0
    sd = float(imgs.std()) or 1.0
    return float((imgs[..., inside].mean() - imgs[..., ~inside].mean()) / sd)
