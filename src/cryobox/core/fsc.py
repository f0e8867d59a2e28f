"""Fourier shell correlation, masks, phase randomisation and resolution, as relion_postprocess.

Shells are one Fourier pixel wide: element k of the rfftn half-transform goes to shell
round(|k|) (k in Fourier pixels), shells 0..N//2, each element counted once (RELION's getFSC).
FSC(s) = sum Re(F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2).

Masked FSC with phase randomisation (Chen et al. 2013, Ultramicroscopy 135:24), exactly the steps
relion_postprocess takes:
1. unmasked FSC;
2. masked FSC (both half maps times the mask);
3. randomise the phases of both unmasked half maps beyond shell r, the first shell (> 0) where
   the unmasked FSC drops below 0.8 (or round-down of N p / d for a given resolution d), mask,
   FSC -> FSC_random_masked;
4. FSC_true = FSC_masked for shells < r + 2, else (FSC_masked - FSC_random) / (1 - FSC_random).

Step 3 is one random draw in RELION; its FSC_random, and so the resolution, moves from draw to
draw. By default cryobox uses the expectation of that curve over all phase draws instead, computed
exactly (``expected_random_masked_fsc``): the same maps give the same numbers, with no
randomisation noise at all. One seeded draw, as RELION makes it, remains available (``seed``).

Memory and transforms (``masked_fsc_analysis``): each half map is transformed in a buffer that
holds its spectrum (``core.fourier.rfftn_in_place``; with ``overwrite_input`` and maps read into
``padded_volume`` arrays, in the maps' own memory), and two more buffers serve the masked and
randomised maps, so the peak is the mask plus four map-sized buffers (five 576³ float32 volumes,
3.8 GB); shell sums run slab by slab (``core.shells.ShellGrid``). 3D transforms per call: 2
unmasked; with a mask, 2 more for the masked maps (masked, then transformed), and 10 for the
expected randomised curve (the masked low-pass parts 4, the mask's autocorrelation 2, the
randomised power of each map 4), or 4 for one seeded draw: 14 in all by default, 8 with a seed.
The auto mask adds under one (the low-pass of the half maps' average, made on the few frequencies
it keeps: ``core.fourier.LowpassSlabs``); ``keep_spectra`` adds 2 (the
masked spectra are then made from the unmasked ones at the end: back to real space, mask, forward).
Resolution (RELION's rule): N p / s for the last shell s before the FSC first drops below the
threshold; the linearly interpolated crossing is reported beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from cryobox.core.fourier import (
    fft_workers,
    irfftn_in_place,
    padded_volume,
    rfft_radius_fourier_px,
    rfftn_in_place,
    spectrum_buffer,
)
from cryobox.core.shells import ShellGrid, thread_pool

__all__ = [
    "fsc_curve",
    "fsc_from_rfft",
    "randomise_phases_beyond",
    "corrected_fsc",
    "first_shell_below",
    "resolution_relion_rule",
    "resolution_interpolated",
    "soft_spherical_mask",
    "auto_mask",
    "auto_mask_from_map",
    "auto_mask_scales_a",
    "AutoMaskSettings",
    "auto_mask_from_half_maps",
    "SlabMap",
    "AutoMaskError",
    "FscResult",
    "masked_fsc_analysis",
    "expected_random_masked_fsc",
    "shell_sums_rfft",
    "mask_effective_fraction",
    "resolution_measurement_sd_a",
]


def _check_pair(a: NDArray, b: NDArray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"half maps differ in shape: {a.shape} and {b.shape}")
    for name, m in (("first", a), ("second", b)):
        lo, hi = float(m.min()), float(m.max())  # NaN propagates into both, inf shows in one
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"the {name} half map holds NaN or infinite values")
        if hi == lo:
            raise ValueError(f"the {name} half map is constant ({float(m.max()):g}): there is nothing to correlate")
    n = a.shape[-1]
    if any(s != n for s in a.shape):
        raise ValueError(f"FSC needs cubic (square) boxes, got shape {a.shape}")


def _shell_sums(a: NDArray, b: NDArray, s: NDArray, n_bins: int, work: dict) -> NDArray[np.float64]:
    """(3, n_bins) per-shell sums of Re(a conj b), |a|^2, |b|^2 for flat complex64 a, b."""
    av = a.view(np.float32).reshape(-1, 2)
    bv = b.view(np.float32).reshape(-1, 2)
    m = av.shape[0]
    if work.get("size") != m:
        work.update(size=m, pairs=np.empty((m, 2), np.float32), sum32=np.empty(m, np.float32), sum64=np.empty(m))
    pairs, sum32, sum64 = work["pairs"], work["sum32"], work["sum64"]
    out = np.empty((3, n_bins))
    for row, (x, y) in enumerate(((av, bv), (av, av), (bv, bv))):
        np.multiply(x, y, out=pairs)
        np.add(pairs[:, 0], pairs[:, 1], out=sum32)
        np.copyto(sum64, sum32)  # bincount is several times slower on float32 weights
        out[row] = np.bincount(s, weights=sum64, minlength=n_bins)
    return out


def shell_sums_rfft(
    ft1: NDArray, ft2: NDArray, shells: NDArray, n_shells: int, *, work: dict | None = None
) -> NDArray[np.float64]:
    """(3, n_shells) per-shell sums of Re(F1 conj F2), |F1|^2 and |F2|^2 of two complex64 rfftn
    spectra (the terms of ``fsc_from_rfft``)."""
    s = shells.reshape(-1)
    if s.dtype != np.intp:
        s = s.astype(np.intp)
    n_bins = max(int(s.max()) + 1, n_shells)
    a = np.ascontiguousarray(ft1, dtype=np.complex64).reshape(-1)
    b = np.ascontiguousarray(ft2, dtype=np.complex64).reshape(-1)
    work = {} if work is None else work
    parts = work.setdefault("parts", ({}, {}))
    half = a.size // 2
    spans = (slice(0, half), slice(half, a.size))
    sums = sum(_pool().map(lambda i: _shell_sums(a[spans[i]], b[spans[i]], s[spans[i]], n_bins, parts[i]), (0, 1)))
    return sums[:, :n_shells]


def _fsc_from_sums(sums: NDArray) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        fsc = sums[0] / np.sqrt(sums[1] * sums[2])
    return np.nan_to_num(fsc, nan=0.0)


def fsc_from_rfft(
    ft1: NDArray, ft2: NDArray, shells: NDArray, n_shells: int, *, work: dict | None = None
) -> NDArray[np.float64]:
    """FSC per shell from two complex64 rfftn spectra and their shell index (intp).

    Shells >= ``n_shells`` (corners beyond Nyquist) are accumulated but dropped, which is cheaper
    than masking them out. The spectrum is summed in two halves on two threads (numpy releases
    the GIL in these loops). ``work``: a dict this function fills with buffers on first use and
    reuses on later calls (fresh temporaries cost as much as the arithmetic on big maps).
    """
    return _fsc_from_sums(shell_sums_rfft(ft1, ft2, shells, n_shells, work=work))


_pool = thread_pool


def fsc_curve(map1: NDArray, map2: NDArray) -> NDArray[np.float64]:
    """FSC (2D: FRC) of two cubic maps or square images, shells 0..N//2 (RELION's getFSC)."""
    a = np.asarray(map1, dtype=np.float32)
    b = np.asarray(map2, dtype=np.float32)
    _check_pair(a, b)
    grid = ShellGrid(a.shape)
    return _fsc_from_sums(grid.cross_sums(_spectrum_of(a, False), _spectrum_of(b, False)))


def _spectrum_of(volume: NDArray, overwrite: bool) -> NDArray[np.complex64]:
    """The rfftn of ``volume`` in a buffer of its own: the volume's own memory when it is a
    ``padded_volume`` and ``overwrite`` allows it, else a new buffer (the volume left alone)."""
    buffer = spectrum_buffer(volume) if overwrite else None
    if buffer is None:
        copy = padded_volume(volume.shape)
        copy[...] = volume
        buffer = spectrum_buffer(copy)
    return rfftn_in_place(buffer, volume.shape[-1])


def _empty_spectrum(shape: tuple[int, ...]) -> NDArray[np.complex64]:
    return spectrum_buffer(padded_volume(shape))


def _mask_in_place(buffer: NDArray, mask: NDArray, grid: ShellGrid) -> NDArray[np.complex64]:
    """The spectrum of ``mask`` times the map whose spectrum ``buffer`` holds, written over it."""
    n = grid.shape[-1]
    real = irfftn_in_place(buffer, n)
    grid.each_slab(lambda i, j: np.multiply(real[i:j], mask[i:j], out=real[i:j]))
    return rfftn_in_place(buffer, n)


def _copy_low(src: NDArray, dst: NDArray, cut2: int, grid: ShellGrid) -> None:
    """``dst`` = ``src`` with every component at |k|² >= ``cut2`` set to zero."""

    def one(i, j):
        dst[i:j] = 0
        if grid.min_radius2(i, j) < cut2:  # else the whole slab lies beyond
            np.copyto(dst[i:j], src[i:j], where=grid.radius2(i, j) < cut2)

    grid.each_slab(one)


def _copy_power_beyond(src: NDArray, dst: NDArray, cut2: int, grid: ShellGrid) -> None:
    """``dst`` = |src|² where |k|² >= ``cut2``, 0 elsewhere (a real, even spectrum)."""

    def one(i, j):
        x = src[i:j]
        a2 = x.real * x.real + x.imag * x.imag
        a2[grid.radius2(i, j) < cut2] = 0
        dst[i:j].real = a2
        dst[i:j].imag = 0

    grid.each_slab(one)


_PHASE_TABLE_BITS = 16


def _randomise_phases_rfft(ft: NDArray, beyond: NDArray, rng: np.random.Generator) -> NDArray:
    """Copy of an rfftn spectrum with the components where ``beyond`` is True given uniformly
    random phases and their amplitudes kept. Phases are drawn from 2^16 equally spaced values
    (a 0.0001 rad grid, far below anything an FSC can see), which makes this a table look-up."""
    table = np.exp(1j * 2 * np.pi * np.arange(2**_PHASE_TABLE_BITS) / 2**_PHASE_TABLE_BITS).astype(np.complex64)
    z = np.take(table, rng.integers(0, 2**_PHASE_TABLE_BITS, size=ft.shape, dtype=np.uint16))
    z *= np.abs(ft)
    np.copyto(z, ft, where=~beyond)
    return z


def randomise_phases_beyond(volume: NDArray, shell: int, *, rng: np.random.Generator) -> NDArray[np.float32]:
    """Replace the phases of all Fourier components with |k| >= ``shell`` (Fourier pixels) by
    uniform random phases, keeping their amplitudes. As RELION's randomizePhasesBeyond, the test
    is on the unrounded radius, so half of the shell ``shell`` itself is randomised too."""
    vol = np.asarray(volume, dtype=np.float32)
    ft = sfft.rfftn(vol, workers=fft_workers())
    beyond = rfft_radius_fourier_px(vol.shape) >= shell
    return sfft.irfftn(_randomise_phases_rfft(ft, beyond, rng), s=vol.shape, workers=fft_workers()).astype(np.float32)


def expected_random_masked_fsc(
    ft1: NDArray, ft2: NDArray, mask: NDArray, randomise_at_shell: int
) -> NDArray[np.float64]:
    """The phase-randomised masked FSC averaged over all phase draws, computed exactly.

    ``ft1``, ``ft2``: the rfftn spectra of the two half maps (left alone); the phases are
    randomised at |k| >= ``randomise_at_shell`` (RELION's randomizePhasesBeyond).

    Randomising the phases of half map i beyond shell r splits it into its low part L_i (kept)
    and a part R_i whose components keep their amplitudes A_i(q) and get independent uniform
    phases (a real map: q and -q stay conjugate, and E[e^{2i phi}] = 0). With M the mask's
    transform, the masked random part's transform is (1/N^3) sum_q M(k - q) R_i(q), so over the
    draws: E[F(m R_1) conj F(m R_2)] = 0 (independent draws), every cross term of L and R has mean
    0, and E|F(m R_i)(k)|^2 = N^-6 sum_q |M(k - q)|^2 A_i(q)^2, a circular convolution, which
    is N^-3 F[c_m c_i] with c_m = F^-1|M|^2 (the mask's autocorrelation) and c_i = F^-1(A_i^2 beyond r).
    Per shell: numerator sum Re F(m L_1) conj F(m L_2); denominators sum |F(m L_i)|^2 + sum of
    the convolution. The FSC is their ratio (the ratio of the expectations; shells hold hundreds
    of components or more where it matters). Ten 3D transforms, against four for one draw.
    """
    m = np.asarray(mask, dtype=np.float32)
    grid = ShellGrid(m.shape)
    a = np.ascontiguousarray(ft1, dtype=np.complex64)
    b = np.ascontiguousarray(ft2, dtype=np.complex64)
    work = (_empty_spectrum(m.shape), _empty_spectrum(m.shape))
    return _fsc_from_sums(_expected_random_sums(a, b, m, int(randomise_at_shell), grid, work))


def _expected_random_sums(
    s1: NDArray, s2: NDArray, m: NDArray, r: int, grid: ShellGrid, work: tuple[NDArray, NDArray]
) -> NDArray[np.float64]:
    """(3, n_shells) expected FSC sums of the phase-randomised masked maps (see
    ``expected_random_masked_fsc``); ``s1``, ``s2`` are read, the two ``work`` buffers overwritten."""
    t1, t2 = work
    n = grid.shape[-1]
    cut2 = r * r
    _copy_low(s1, t1, cut2, grid)
    _copy_low(s2, t2, cut2, grid)
    sums = grid.cross_sums(_mask_in_place(t1, m, grid), _mask_in_place(t2, m, grid))
    # the mask's autocorrelation c_m = F^-1 |M|^2, in t1
    real = t1.view(np.float32)[..., :n]
    grid.each_slab(lambda i, j: np.copyto(real[i:j], m[i:j]))
    rfftn_in_place(t1, n)
    _copy_power_beyond(t1, t1, 0, grid)
    c_m = irfftn_in_place(t1, n)
    for row, src in ((1, s1), (2, s2)):
        _copy_power_beyond(src, t2, cut2, grid)
        c = irfftn_in_place(t2, n)
        grid.each_slab(lambda i, j, c=c: np.multiply(c[i:j], c_m[i:j], out=c[i:j]))
        spectrum = rfftn_in_place(t2, n)
        sums[row] += grid.sum_per_shell(lambda i, j, x=spectrum: x[i:j].real) / float(np.prod(grid.shape))
    return sums


def _one_draw_sums(
    s1: NDArray, s2: NDArray, m: NDArray, r: int, grid: ShellGrid, work: tuple[NDArray, NDArray], streams: list
) -> NDArray[np.float64]:
    """(3, n_shells) FSC sums of the masked maps with their phases randomised at |k| >= r, one
    draw from ``streams`` (one generator per map, drawn slab after slab in order)."""
    cut2 = r * r
    table = np.exp(1j * 2 * np.pi * np.arange(2**_PHASE_TABLE_BITS) / 2**_PHASE_TABLE_BITS).astype(np.complex64)

    def randomise(job):
        src, dst, stream = job
        for i, j in grid.slabs:
            z = np.take(table, stream.integers(0, 2**_PHASE_TABLE_BITS, size=src[i:j].shape, dtype=np.uint16))
            z *= np.abs(src[i:j])
            np.copyto(z, src[i:j], where=grid.radius2(i, j) < cut2)
            dst[i:j] = z

    list(thread_pool().map(randomise, ((s1, work[0], streams[0]), (s2, work[1], streams[1]))))
    return grid.cross_sums(_mask_in_place(work[0], m, grid), _mask_in_place(work[1], m, grid))


def corrected_fsc(fsc_masked: NDArray, fsc_random_masked: NDArray, randomise_at: int) -> NDArray[np.float64]:
    """Chen et al. (2013) correction as relion_postprocess applies it: masked FSC below shell
    ``randomise_at + 2``, (FSC_m - FSC_r) / (1 - FSC_r) from there on."""
    fm = np.array(fsc_masked, dtype=np.float64)
    fr = np.array(fsc_random_masked, dtype=np.float64)
    if fm[0] <= 0:
        fm[0] = 1.0  # RELION: the FSC at the origin sometimes comes out as -1
    if fr[0] <= 0:
        fr[0] = 1.0
    out = fm.copy()
    i = np.arange(fm.size)
    use = i >= randomise_at + 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out[use] = (fm[use] - fr[use]) / (1.0 - fr[use])
    return np.nan_to_num(out, nan=0.0)


def first_shell_below(fsc: NDArray, threshold: float, *, start: int = 1) -> int | None:
    """Index of the first shell >= ``start`` whose FSC is below ``threshold`` (None if never)."""
    below = np.flatnonzero(np.asarray(fsc)[start:] < threshold)
    return int(below[0]) + start if below.size else None


def resolution_relion_rule(fsc: NDArray, threshold: float, *, box_px: int, pixel_size_a: float) -> tuple[float, int]:
    """(resolution Å, shell) with relion_postprocess's rule: N p / s for the last shell s before
    the FSC first drops below ``threshold``. Never below: the Nyquist shell. Shell 0 (the mean)
    always passes, as RELION forces it to 1 in the corrected curve; without that a map pair whose
    means differ in sign would have no resolution at all."""
    f = np.asarray(fsc)
    first = first_shell_below(f, threshold, start=1)
    last = (f.size - 1) if first is None else first - 1
    if last <= 0:
        return float("inf"), 0
    return float(box_px * pixel_size_a / last), int(last)


def resolution_interpolated(fsc: NDArray, threshold: float, *, box_px: int, pixel_size_a: float) -> float:
    """Resolution (Å) where the FSC first crosses ``threshold``, linearly interpolated in spatial
    frequency between the two shells around the crossing (Nyquist when it never crosses)."""
    f = np.asarray(fsc, dtype=np.float64)
    first = first_shell_below(f, threshold, start=1)
    if first is None:
        return float(2.0 * pixel_size_a) if f.size - 1 == box_px // 2 else float(box_px * pixel_size_a / (f.size - 1))
    y0, y1 = f[first - 1], f[first]
    t = (y0 - threshold) / (y0 - y1) if y0 != y1 else 0.0
    k = (first - 1) + float(np.clip(t, 0.0, 1.0))
    return float(box_px * pixel_size_a / k) if k > 0 else float("inf")


def _distance_grid_px(shape: tuple[int, ...]) -> NDArray[np.float32]:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum(((g - n // 2).astype(np.float32)) ** 2 for g, n in zip(grids, shape))
    return np.sqrt(r2)


def soft_spherical_mask(size: int, *, radius_px: float, soft_edge_px: float, ndim: int = 3) -> NDArray[np.float32]:
    """Sphere (circle) of ``radius_px`` centred at N//2 with a raised-cosine edge of ``soft_edge_px``."""
    r = _distance_grid_px((int(size),) * ndim)
    if soft_edge_px <= 0:
        return (r <= radius_px).astype(np.float32)
    t = np.clip((r - radius_px) / soft_edge_px, 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)


class SlabMap:
    """A map that is read a slab of planes at a time, ``source(i, j)`` giving planes i..j as
    float32 (a low-passed map that is never held whole: ``core.fourier.LowpassSlabs``). Indexing
    with a slice of planes, optionally followed by slices of the other axes, reads those planes."""

    def __init__(self, source, shape: tuple[int, ...]):
        self.source = source
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))

    def __getitem__(self, key):
        first, rest = (key[0], tuple(key[1:])) if isinstance(key, tuple) else (key, ())
        i, j, step = first.indices(self.shape[0])
        if step != 1:
            raise ValueError("SlabMap reads contiguous slabs of planes")
        planes = self.source(i, j)
        return planes[(slice(None),) + rest] if rest else planes

    def max(self) -> float:
        return max(float(self.source(i, min(i + 16, self.shape[0])).max()) for i in range(0, self.shape[0], 16))


def auto_mask(
    volume: NDArray, *, threshold: float, extend_px: float = 0.0, soft_edge_px: float = 0.0
) -> NDArray[np.float32]:
    """A solvent mask like relion_mask_create: voxels >= ``threshold`` are 1, the mask is then
    extended by ``extend_px`` (binary dilation by distance) and given a raised-cosine soft edge of
    ``soft_edge_px``. Distances are Euclidean in pixels.

    ``volume``: an array or a ``SlabMap`` (read twice, a slab at a time). Only the bounding box of
    the voxels above the threshold, widened by the extension and the edge, can be non-zero: the
    distances are computed there, in slabs (``_bounded_distance``), so a 576³ map with a 220 Å
    particle costs a small fraction of a whole-box distance transform (20 bytes a voxel)."""
    vol = volume if isinstance(volume, SlabMap) else np.asarray(volume)
    # which planes, rows and columns hold a voxel above the threshold, a slab at a time
    planes = np.zeros(vol.shape[0], dtype=bool)
    across = np.zeros(vol.shape[1:], dtype=bool)  # any plane, per position in a plane
    for i in range(0, vol.shape[0], 16):
        above = vol[i : i + 16] >= threshold
        planes[i : i + 16] = above.reshape(above.shape[0], -1).any(axis=1)
        across |= above.any(axis=0)
    seen = [planes] + [across.any(axis=tuple(a for a in range(across.ndim) if a != k)) for k in range(across.ndim)]
    if not planes.any():
        raise ValueError(f"no voxel reaches the mask threshold {threshold} (map max {float(vol.max()):.4g})")
    reach = max(0.0, float(extend_px)) + max(0.0, float(soft_edge_px))
    margin = int(np.ceil(reach)) + 2
    box = []
    for axis, hit in enumerate(seen):
        idx = np.flatnonzero(hit)
        box.append(slice(max(0, int(idx[0]) - margin), min(vol.shape[axis], int(idx[-1]) + 1 + margin)))
    box = tuple(box)
    lo, hi = box[0].start, box[0].stop
    part = np.concatenate([vol[(slice(i, min(i + 16, hi)),) + box[1:]] >= threshold for i in range(lo, hi, 16)])
    if extend_px > 0:
        part = _bounded_distance(part, extend_px) <= extend_px
    out = np.zeros(vol.shape, dtype=np.float32)
    if soft_edge_px <= 0:
        out[box] = part
        return out
    d = _bounded_distance(part, soft_edge_px)
    edge = d < soft_edge_px
    edge &= ~part
    inner = part.astype(np.float32)
    inner[edge] = 0.5 + 0.5 * np.cos(np.pi * (d[edge] / np.float32(soft_edge_px)))
    out[box] = inner
    return out


def _bounded_distance(core: NDArray[np.bool_], limit: float) -> NDArray[np.float32]:
    """Euclidean distance (px) of each voxel to the nearest True voxel of ``core``: exact up to
    ``limit``, and more than ``limit`` wherever it is more.

    The squared distance is separable (the minimum over one axis' offsets of the offset² plus the
    previous axes' result), and a distance of at most ``limit`` uses offsets of at most
    L = floor(limit) on every axis: three passes of 2L shifted minima on small integers (uint16,
    capped above limit²) give the exact squared distances up to L² and more than L² elsewhere. In slabs
    along the first axis with L planes of context on either side, on two threads; a few times
    faster than a whole Euclidean distance transform for the few pixels a mask's edge needs."""
    reach = int(np.floor(limit))
    cap = np.uint16(int(np.floor(limit * limit)) + 1)  # every squared distance up to limit² is below it
    n0 = core.shape[0]
    step = max(8, (1 << 22) // max(1, core[0].size))
    out = np.empty(core.shape, dtype=np.float32)

    def one(i):
        j = min(n0, i + step)
        a, b = max(0, i - reach), min(n0, j + reach)
        g = np.where(core[a:b], np.uint16(0), cap)
        for axis in range(g.ndim):
            src = g.copy()
            for k in range(1, reach + 1):
                lo = [slice(None)] * g.ndim
                hi = [slice(None)] * g.ndim
                lo[axis], hi[axis] = slice(None, -k), slice(k, None)
                lo, hi = tuple(lo), tuple(hi)
                np.minimum(g[hi], src[lo] + np.uint16(k * k), out=g[hi])
                np.minimum(g[lo], src[hi] + np.uint16(k * k), out=g[lo])
            np.minimum(g, cap, out=g)
        d = np.sqrt(g[i - a : j - a], dtype=np.float32)
        d[g[i - a : j - a] >= cap] = np.inf
        out[i:j] = d

    list(thread_pool().map(one, range(0, n0, step)))  # numpy releases the GIL in these loops
    return out


class AutoMaskError(ValueError):
    """No voxel of the low-passed average reaches the auto mask's threshold."""


@dataclass(frozen=True)
class AutoMaskSettings:
    """How an FSC mask is built from the half maps' average (``auto_mask_from_map``): low-pass
    (Å, 0: none), threshold (None: mean + 3 sd of the low-passed map), extension and soft edge (Å)."""

    lowpass_a: float = 15.0
    threshold: float | None = None
    extend_a: float = 3.0
    soft_edge_a: float = 6.0


def _mask_from_smooth(
    smooth: NDArray, pixel_size_a: float, settings: AutoMaskSettings, stats: tuple[float, float] | None = None
) -> tuple[NDArray, float]:
    """``auto_mask`` of an already low-passed map, its threshold from ``settings`` or its statistics
    (``stats``: its mean and mean square, when known)."""
    if settings.threshold is None and stats is not None:
        mean, mean_square = stats
        thr = mean + 3.0 * float(np.sqrt(max(0.0, mean_square - mean * mean)))
    elif settings.threshold is None:
        total = squares = 0.0
        for i in range(0, smooth.shape[0], 16):
            part = smooth[i : i + 16]
            total += float(part.sum(dtype=np.float64))
            squares += float(np.square(part, dtype=np.float64).sum())
        mean = total / smooth.size
        thr = mean + 3.0 * float(np.sqrt(max(0.0, squares / smooth.size - mean * mean)))
    else:
        thr = float(settings.threshold)
    try:
        mask = auto_mask(
            smooth,
            threshold=thr,
            extend_px=settings.extend_a / pixel_size_a,
            soft_edge_px=settings.soft_edge_a / pixel_size_a,
        )
    except ValueError as exc:
        raise AutoMaskError(str(exc)) from None
    return mask, thr


def auto_mask_scales_a(pixel_size_a: float) -> tuple[float, float, float]:
    """Low-pass, extension and soft edge (Å) of an FSC mask that suits maps at ``pixel_size_a``:
    15, 3 and 6 Å (relion_mask_create's usual values), and never finer than 3, 1 and 3 pixels."""
    p = float(pixel_size_a)
    return max(15.0, 3.0 * p), max(3.0, p), max(6.0, 3.0 * p)


def auto_mask_from_map(
    volume: NDArray,
    *,
    pixel_size_a: float,
    lowpass_a: float = 15.0,
    threshold: float | None = None,
    extend_a: float = 3.0,
    soft_edge_a: float = 6.0,
) -> tuple[NDArray[np.float32], float]:
    """``auto_mask`` of ``volume`` low-passed to ``lowpass_a`` Å (0: not filtered), thresholded at
    ``threshold`` (default: mean + 3 sd of the low-passed map), extended and soft-edged in Å.
    Returns the mask and the threshold used (AutoMaskError, a ValueError, when no voxel reaches
    it). The low-passed map is never held whole (``core.fourier.LowpassSlabs``): the mask is the
    only map-sized array made."""
    vol = np.asarray(volume, dtype=np.float32)
    settings = AutoMaskSettings(lowpass_a, threshold, extend_a, soft_edge_a)
    return _mask_of_source(lambda i, j: vol[i:j], vol.shape, pixel_size_a, settings)


def auto_mask_from_half_maps(
    half1: NDArray, half2: NDArray, *, pixel_size_a: float, settings: AutoMaskSettings | None = None
) -> tuple[NDArray[np.float32], float]:
    """``auto_mask_from_map`` of the half maps' average, which is never formed whole (each slab of
    it is made as the low-pass reads it)."""
    a = np.asarray(half1, dtype=np.float32)
    b = np.asarray(half2, dtype=np.float32)

    def average(i, j):
        out = a[i:j] + b[i:j]
        out *= np.float32(0.5)
        return out

    return _mask_of_source(average, a.shape, pixel_size_a, settings or AutoMaskSettings())


def _mask_of_source(source, shape, pixel_size_a: float, settings: AutoMaskSettings) -> tuple[NDArray, float]:
    from cryobox.core.fourier import LowpassSlabs

    if settings.lowpass_a > 0 and len(shape) == 3:
        smooth = LowpassSlabs(source, shape, pixel_size_a=pixel_size_a, resolution_a=settings.lowpass_a)
        return _mask_from_smooth(SlabMap(smooth, shape), pixel_size_a, settings, (smooth.mean, smooth.mean_square))
    if settings.lowpass_a > 0:  # a 2D image: small, filtered whole
        from cryobox.core.fourier import filter_map

        image = filter_map(source(0, shape[0]), pixel_size_a=pixel_size_a, lowpass_a=settings.lowpass_a)
        source = lambda i, j: image[i:j]  # noqa: E731
    return _mask_from_smooth(SlabMap(source, shape), pixel_size_a, settings)


@dataclass
class FscResult:
    """FSC curves on shells 0..N//2 and the resolutions read from them."""

    box_px: int
    pixel_size_a: float
    fsc_unmasked: NDArray
    fsc_masked: NDArray | None = None
    fsc_random_masked: NDArray | None = None
    fsc_corrected: NDArray | None = None
    randomise_at_shell: int | None = None
    warnings: list[str] = field(default_factory=list)
    # the share of each shell's Fourier components that a masked FSC samples independently
    # (``mask_effective_fraction``); 1 without a mask
    mask_fraction: float = 1.0
    ndim: int = 3
    # the mask built from the half maps (``masked_fsc_analysis(auto_mask=...)``) and its threshold
    auto_mask: NDArray | None = field(default=None, repr=False)
    auto_mask_threshold: float | None = None
    # the masked half maps' rfftn spectra (``masked_fsc_analysis(keep_spectra=True)``)
    spectra: tuple | None = field(default=None, repr=False)

    @property
    def final(self) -> NDArray:
        """The curve the resolution is read from: corrected when masked, else unmasked."""
        return self.fsc_corrected if self.fsc_corrected is not None else self.fsc_unmasked

    @property
    def shells(self) -> NDArray:
        return np.arange(self.fsc_unmasked.size)

    @property
    def frequency_inv_a(self) -> NDArray:
        return self.shells / (self.box_px * self.pixel_size_a)

    def resolution(self, threshold: float = 0.143, *, curve: str = "final") -> dict:
        f = self.final if curve == "final" else getattr(self, f"fsc_{curve}")
        rel, shell = resolution_relion_rule(f, threshold, box_px=self.box_px, pixel_size_a=self.pixel_size_a)
        return {
            "threshold": threshold,
            "resolution_a": rel,
            "shell": shell,
            "interpolated_resolution_a": resolution_interpolated(
                f, threshold, box_px=self.box_px, pixel_size_a=self.pixel_size_a
            ),
            # never below the threshold: the values are Nyquist (or the last shell), a bound, not a measurement
            "limited_by_nyquist": first_shell_below(np.asarray(f), threshold, start=1) is None,
            "measurement_sd_a": resolution_measurement_sd_a(
                f,
                threshold,
                box_px=self.box_px,
                pixel_size_a=self.pixel_size_a,
                effective_fraction=1.0 if curve == "unmasked" else self.mask_fraction,
                random_masked=self.fsc_random_masked if curve in ("final", "corrected") else None,
                ndim=self.ndim,
            ),
        }


def mask_effective_fraction(mask: NDArray) -> float:
    """The share of a shell's Fourier components that stay independent after masking, for the
    sampling spread of a masked FSC: a mask of diameter D in a box of N px correlates components
    within about N/D Fourier pixels, so a shell (a surface) keeps about (D/N)^2 of them. D is the
    diameter of the ball with the mask's effective volume (sum m^2)^2 / sum m^4. Checked against
    40 noise realisations (tests/test_fsc.py)."""
    m = np.asarray(mask)
    m2 = m4 = 0.0
    for plane in m.reshape(m.shape[0], -1):  # plane by plane: no full-size temporaries
        sq = plane.astype(np.float64) ** 2
        m2 += float(sq.sum())
        m4 += float(np.dot(sq, sq))
    if m4 <= 0:
        return 1.0
    volume = m2 * m2 / m4 / m.size
    if m.ndim == 2:  # a disc of that area; a ring keeps D/N of its components
        return float(min(1.0, np.sqrt(4.0 * volume / np.pi)))
    return float(min(1.0, (6.0 * volume / np.pi) ** (2.0 / 3.0)))


def resolution_measurement_sd_a(
    fsc: NDArray,
    threshold: float,
    *,
    box_px: int,
    pixel_size_a: float,
    effective_fraction: float = 1.0,
    random_masked: NDArray | None = None,
    ndim: int = 3,
) -> float | None:
    """The standard deviation of an FSC's interpolated crossing from the sampling of its shells
    alone (the same maps' noise drawn again): an FSC value over n independent complex components
    scatters by (1 - FSC^2) / sqrt(2 n) (a correlation coefficient over 2n real samples), n the
    shell's component count times ``effective_fraction``; the corrected FSC divides that by
    (1 - FSC_random). Through the curve's slope at the crossing (a line over the four shells
    around it) into shells, and into Å by d^2 dk. None where the curve never crosses, or is flat
    there. Run-to-run differences of a refinement are a further spread, which only repeats measure."""
    f = np.asarray(fsc, dtype=np.float64)
    i = first_shell_below(f, threshold, start=1)
    if i is None or i < 2:
        return None
    i -= 1  # f[i] >= threshold > f[i + 1]
    x = i + (f[i] - threshold) / (f[i] - f[i + 1])
    lo, hi = max(1, i - 1), min(f.size - 1, i + 2)
    slope = -np.polyfit(np.arange(lo, hi + 1), f[lo : hi + 1], 1)[0]
    if not slope > 0:
        return None
    # an rfft half-shell (half-ring in 2D) of radius x, one pixel thick
    n_components = (2.0 * np.pi * x * x if ndim == 3 else np.pi * x) + 2.0
    sd = (1.0 - threshold**2) / np.sqrt(2.0 * n_components * max(effective_fraction, 1e-6))
    if random_masked is not None:
        sd /= max(1e-3, 1.0 - float(np.asarray(random_masked)[i]))
    box_a = box_px * pixel_size_a
    d = box_a / x
    return float(d * d * (sd / slope) / box_a)


def content_digest(array: NDArray | None) -> bytes:
    """8 bytes that depend on an array's shape and values (one value in 97, strided, so that a
    576³ map costs milliseconds): the randomisation of a map is a function of the map."""
    h = hashlib.blake2b(digest_size=8)
    if array is None:
        h.update(b"none")
        return h.digest()
    a = np.ascontiguousarray(array, dtype=np.float32)
    h.update(repr(a.shape).encode())
    h.update(a.reshape(-1)[::97].tobytes())
    return h.digest()


def content_streams(half1: NDArray, half2: NDArray, mask: NDArray | None, *, seed: int = 0) -> list:
    """Two random generators for the phase randomisation of ``half1`` and ``half2``, derived from
    the maps' content (and the mask's, and ``seed``) alone: the same maps give the same draws in
    any command, in any order of runs, and with the halves swapped."""
    return _streams(content_digest(half1), content_digest(half2), mask, seed)


def _streams(d1: bytes, d2: bytes, mask: NDArray | None, seed: int) -> list:
    pair = sorted((d1, d2))
    key = hashlib.blake2b(pair[0] + pair[1] + content_digest(mask) + str(int(seed)).encode(), digest_size=16)
    streams = np.random.default_rng(int.from_bytes(key.digest(), "little")).spawn(2)
    return streams if d1 <= d2 else streams[::-1]


def masked_fsc_analysis(
    half1: NDArray,
    half2: NDArray,
    *,
    pixel_size_a: float,
    mask: NDArray | None = None,
    randomise_at_a: float | None = None,
    randomise_fsc_at: float = 0.8,
    rng: np.random.Generator | None = None,
    force_mask: bool = False,
    seed: int | None = None,
    overwrite_input: bool = False,
    fallback_randomise_at_a: float | None = None,
    auto_mask: AutoMaskSettings | None = None,
    keep_spectra: bool = False,
) -> FscResult:
    """Unmasked, masked, phase-randomised-masked and corrected FSC, as relion_postprocess.

    By default the phase-randomised masked FSC is its expectation over all phase draws
    (``expected_random_masked_fsc``): no randomness, the same maps give the same numbers. With a
    ``seed`` (or an ``rng``), one random draw as relion_postprocess makes it; the draw comes from
    ``content_streams`` (the maps' and mask's content, and ``seed``), so it is still a function of
    the maps, whichever command computes it and in whatever order; an explicit ``rng`` overrides that.

    Without a mask only the unmasked curve is computed. ``randomise_at_a`` sets the
    randomisation resolution (RELION's --randomize_at_A: shell int(N p / d)); otherwise the first
    shell where the unmasked FSC drops below ``randomise_fsc_at``. Like RELION, when the unmasked
    FSC reaches further than the corrected one the unmasked curve is used (with a warning)
    unless ``force_mask``. ``fallback_randomise_at_a``: the randomisation resolution to use when
    the unmasked FSC never drops below ``randomise_fsc_at`` (without it, a ValueError).

    ``auto_mask``: build the mask from the half maps' average (``auto_mask_from_map`` with these
    settings, from the spectra already in hand) instead of giving one; the result holds it
    (``auto_mask``, ``auto_mask_threshold``). AutoMaskError when no voxel reaches its threshold.

    ``keep_spectra``: the result holds the rfftn spectra of the masked half maps (of the half maps
    without a mask) in ``spectra``, for callers that analyse them further (``cryobox diagnose``).

    ``overwrite_input``: the half maps may be overwritten (they are then garbage); half maps held
    in ``core.fourier.padded_volume`` arrays are then transformed where they are, which saves two
    map-sized buffers (the module docstring gives the memory and the transforms).
    """
    h1 = np.asarray(half1, dtype=np.float32)
    h2 = np.asarray(half2, dtype=np.float32)
    _check_pair(h1, h2)
    if mask is not None and auto_mask is not None:
        raise ValueError("give a mask or auto mask settings, not both")
    masked_run = mask is not None or auto_mask is not None
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=np.float32)
        if m.shape != h1.shape:
            raise ValueError(f"mask shape {m.shape} differs from the half maps' {h1.shape}")
        if m.min() < -1e-6 or m.max() > 1 + 1e-6:
            raise ValueError(f"mask values must lie in [0, 1], got {float(m.min()):.3g}..{float(m.max()):.3g}")
    for name, value in (("randomise_at_a", randomise_at_a), ("fallback_randomise_at_a", fallback_randomise_at_a)):
        if masked_run and value is not None and not (np.isfinite(value) and value >= 2.0 * pixel_size_a):
            raise ValueError(
                f"`{name}` must be a resolution at or below Nyquist ({2.0 * pixel_size_a:g} Å), got {value}"
            )
    # one stream per half map, from the maps' content (read before they may be overwritten)
    one_draw = masked_run and (rng is not None or seed is not None)
    digests = (content_digest(h1), content_digest(h2)) if one_draw and rng is None else None
    n = h1.shape[-1]
    grid = ShellGrid(h1.shape)
    masked = None
    work = (_empty_spectrum(h1.shape), _empty_spectrum(h1.shape)) if masked_run else (None, None)
    threshold = None
    if auto_mask is not None:
        m, threshold = auto_mask_from_half_maps(h1, h2, pixel_size_a=pixel_size_a, settings=auto_mask)
    if m is not None and not keep_spectra:
        # the masked maps' spectra straight from the maps (two transforms, where masking the
        # spectra later takes four); the buffers serve the randomised maps afterwards
        for h, buffer in zip((h1, h2), work):
            real = buffer.view(np.float32)[..., :n]
            grid.each_slab(lambda i, j, h=h, real=real: np.multiply(h[i:j], m[i:j], out=real[i:j]))
            rfftn_in_place(buffer, n)
        masked = _fsc_from_sums(grid.cross_sums(*work))
    s1 = _spectrum_of(h1, overwrite_input)
    s2 = _spectrum_of(h2, overwrite_input)
    unmasked = _fsc_from_sums(grid.cross_sums(s1, s2))
    result = FscResult(box_px=n, pixel_size_a=float(pixel_size_a), fsc_unmasked=unmasked, ndim=h1.ndim)
    if not masked_run:
        if keep_spectra:
            result.spectra = (s1, s2)
        return result
    if auto_mask is not None:
        result.auto_mask, result.auto_mask_threshold = m, threshold
    result.mask_fraction = mask_effective_fraction(m)
    if randomise_at_a is not None:
        r = int(n * pixel_size_a / randomise_at_a)
    else:
        r = first_shell_below(unmasked, randomise_fsc_at, start=1)
        if r is None and fallback_randomise_at_a is not None:
            r = int(n * pixel_size_a / fallback_randomise_at_a)
        if r is None:
            raise ValueError(
                f"the unmasked FSC never drops below {randomise_fsc_at}: give the phase-randomisation resolution "
                "explicitly"
            )
    # |k| >= r, as RELION's randomizePhasesBeyond (r2 >= r^2), on the spectra already in hand
    if not one_draw:
        random_sums = _expected_random_sums(s1, s2, m, r, grid, work)
    else:
        streams = rng.spawn(2) if rng is not None else _streams(*digests, m, seed)
        random_sums = _one_draw_sums(s1, s2, m, r, grid, work, streams)
    del work
    random_masked = _fsc_from_sums(random_sums)
    if masked is None:  # the masked spectra are to be kept: mask the maps' spectra now
        masked = _fsc_from_sums(grid.cross_sums(_mask_in_place(s1, m, grid), _mask_in_place(s2, m, grid)))
        if keep_spectra:
            result.spectra = (s1, s2)
    corrected = corrected_fsc(masked, random_masked, r)
    result.fsc_masked, result.fsc_random_masked, result.fsc_corrected, result.randomise_at_shell = (
        masked,
        random_masked,
        corrected,
        r,
    )
    _, s_corr = resolution_relion_rule(corrected, 0.143, box_px=n, pixel_size_a=pixel_size_a)
    _, s_unm = resolution_relion_rule(unmasked, 0.143, box_px=n, pixel_size_a=pixel_size_a)
    if s_unm > s_corr:
        if force_mask:
            result.warnings.append(
                "the unmasked FSC extends beyond the solvent-corrected FSC (mask kept: `force_mask`)."
            )
        else:
            result.warnings.append(
                "the unmasked FSC extends beyond the solvent-corrected FSC: the unmasked curve is used, as "
                "relion_postprocess does; check the mask or use --force-mask."
            )
            result.fsc_corrected = unmasked.copy()
    elif random_masked[s_corr] > 0.1:
        result.warnings.append(
            "the phase-randomised masked FSC is above 0.10 at the estimated resolution: the mask is too sharp or "
            "too tight; use a softer mask."
        )
    return result
