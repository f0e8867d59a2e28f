"""FSC masks: a soft sphere, and a solvent mask built as relion_mask_create builds one (threshold,
extension, raised-cosine soft edge), from a map or the half maps' average low-passed a slab at a
time, so that a 576³ map's mask is the only map-sized array made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cryobox.core.fourier import LowpassSlabs, filter_map
from cryobox.core.shells import thread_pool

__all__ = [
    "soft_spherical_mask",
    "SlabMap",
    "auto_mask",
    "AutoMaskError",
    "AutoMaskSettings",
    "auto_mask_scales_a",
    "auto_mask_from_map",
    "auto_mask_from_half_maps",
]


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
    if settings.lowpass_a > 0 and len(shape) == 3:
        smooth = LowpassSlabs(source, shape, pixel_size_a=pixel_size_a, resolution_a=settings.lowpass_a)
        return _mask_from_smooth(SlabMap(smooth, shape), pixel_size_a, settings, (smooth.mean, smooth.mean_square))
    if settings.lowpass_a > 0:  # a 2D image: small, filtered whole
        image = filter_map(source(0, shape[0]), pixel_size_a=pixel_size_a, lowpass_a=settings.lowpass_a)
        source = lambda i, j: image[i:j]  # noqa: E731
    return _mask_from_smooth(SlabMap(source, shape), pixel_size_a, settings)
