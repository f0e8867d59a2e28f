"""Per-shell sums over an rfftn half spectrum, slab by slab (no full-size index or temporary), and the
spectrum buffers the FSC code transforms in place.

The shell of an element is round(|k|) in Fourier pixels (RELION's getFSC binning); shells
0..N//2 are kept, the corners beyond are summed and dropped. Each slab of planes along the first
axis gets its |k|² from a table of the other axes plus the first axis' k², so a 576³ spectrum
needs a 0.7 MB table where a full shell index took 0.77 GB. Slabs run on two threads (numpy and
bincount release the GIL); each slab's sums go to float64 bincounts, the products are float32.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from cryobox.core.fourier import (
    irfftn_in_place,
    padded_volume,
    rfft_radius2_fourier_px,
    rfftn_in_place,
    slab_ranges,
    spectrum_buffer,
)

__all__ = [
    "ShellGrid",
    "thread_pool",
    "fsc_from_sums",
    "spectrum_of",
    "empty_spectrum",
    "mask_spectrum_in_place",
    "copy_low",
    "copy_power_beyond",
]

_POOL: ThreadPoolExecutor | None = None


def thread_pool() -> ThreadPoolExecutor:
    """Two worker threads shared by the FSC code (created on first use, not at import)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cryobox-fsc")
    return _POOL


class ShellGrid:
    """The rfftn grid of a real array of ``shape`` (2D or 3D), read slab by slab."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) < 2:
            raise ValueError(f"a shell grid needs a 2D or 3D array, got shape {self.shape}")
        self.n_shells = self.shape[-1] // 2 + 1
        self.spectrum_shape = self.shape[:-1] + (self.shape[-1] // 2 + 1,)
        k0 = np.rint(np.fft.fftfreq(self.shape[0]) * self.shape[0]).astype(np.int32)
        self._k0_squared = k0 * k0
        self._rest = rfft_radius2_fourier_px(self.shape[1:])
        top = int(self._k0_squared.max()) + int(np.max(self._rest))
        self._lut = np.floor(np.sqrt(np.arange(top + 1, dtype=np.float64)) + 0.5).astype(np.intp)
        self.n_bins = int(self._lut[-1]) + 1
        self.slabs = slab_ranges(self.shape[0], int(np.prod(self.spectrum_shape[1:])), target=1 << 21)

    def radius2(self, i: int, j: int) -> NDArray[np.int32]:
        """|k|² (Fourier pixels², integer) of planes i..j."""
        k0 = self._k0_squared[i:j].reshape((-1,) + (1,) * self._rest.ndim)
        return k0 + self._rest

    def min_radius2(self, i: int, j: int) -> int:
        """The smallest |k|² in planes i..j."""
        return int(self._k0_squared[i:j].min()) + int(self._rest.min())

    def shells(self, i: int, j: int) -> NDArray[np.intp]:
        """Shell index (round |k|) of planes i..j."""
        return np.take(self._lut, self.radius2(i, j))

    def map_slabs(self, fn: Callable[[int, int], object]) -> list:
        """``fn(i, j)`` for every slab, on two threads, results in slab order."""
        return list(thread_pool().map(lambda ij: fn(*ij), self.slabs))

    def each_slab(self, fn: Callable[[int, int], None]) -> None:
        """``fn(i, j)`` for every slab, on two threads (for in-place work on disjoint slabs)."""
        self.map_slabs(fn)

    def sum_per_shell(self, weights: Callable[[int, int], NDArray]) -> NDArray[np.float64]:
        """Per-shell sums (shells 0..N//2) of ``weights(i, j)``, a float array over planes i..j."""

        def one(i, j):
            return np.bincount(self.shells(i, j).reshape(-1), weights=_float64(weights(i, j)), minlength=self.n_bins)

        return np.sum(self.map_slabs(one), axis=0)[: self.n_shells]

    def cross_sums(self, a: NDArray, b: NDArray) -> NDArray[np.float64]:
        """(3, n_shells) per-shell sums of Re(a conj b), |a|² and |b|² of two half spectra."""

        def one(i, j):
            s = self.shells(i, j).reshape(-1)
            x, y = a[i:j].reshape(-1), b[i:j].reshape(-1)
            xr, xi, yr, yi = x.real, x.imag, y.real, y.imag
            rows = (xr * yr + xi * yi, xr * xr + xi * xi, yr * yr + yi * yi)
            return np.stack([np.bincount(s, weights=_float64(w), minlength=self.n_bins) for w in rows])

        return np.sum(self.map_slabs(one), axis=0)[:, : self.n_shells]


def _float64(w: NDArray) -> NDArray[np.float64]:
    # bincount is several times slower on float32 weights than on float64
    return np.asarray(w, dtype=np.float64).reshape(-1)


def fsc_from_sums(sums: NDArray) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        fsc = sums[0] / np.sqrt(sums[1] * sums[2])
    return np.nan_to_num(fsc, nan=0.0)


def spectrum_of(volume: NDArray, overwrite: bool) -> NDArray[np.complex64]:
    """The rfftn of ``volume`` in a buffer of its own: the volume's own memory when it is a
    ``padded_volume`` and ``overwrite`` allows it, else a new buffer (the volume left alone)."""
    buffer = spectrum_buffer(volume) if overwrite else None
    if buffer is None:
        copy = padded_volume(volume.shape)
        copy[...] = volume
        buffer = spectrum_buffer(copy)
    return rfftn_in_place(buffer, volume.shape[-1])


def empty_spectrum(shape: tuple[int, ...]) -> NDArray[np.complex64]:
    return spectrum_buffer(padded_volume(shape))


def mask_spectrum_in_place(buffer: NDArray, mask: NDArray, grid: ShellGrid) -> NDArray[np.complex64]:
    """The spectrum of ``mask`` times the map whose spectrum ``buffer`` holds, written over it."""
    n = grid.shape[-1]
    real = irfftn_in_place(buffer, n)
    grid.each_slab(lambda i, j: np.multiply(real[i:j], mask[i:j], out=real[i:j]))
    return rfftn_in_place(buffer, n)


def copy_low(src: NDArray, dst: NDArray, cut2: int, grid: ShellGrid) -> None:
    """``dst`` = ``src`` with every component at |k|² >= ``cut2`` set to zero."""

    def one(i, j):
        dst[i:j] = 0
        if grid.min_radius2(i, j) < cut2:  # else the whole slab lies beyond
            np.copyto(dst[i:j], src[i:j], where=grid.radius2(i, j) < cut2)

    grid.each_slab(one)


def copy_power_beyond(src: NDArray, dst: NDArray, cut2: int, grid: ShellGrid) -> None:
    """``dst`` = |src|² where |k|² >= ``cut2``, 0 elsewhere (a real, even spectrum)."""

    def one(i, j):
        x = src[i:j]
        a2 = x.real * x.real + x.imag * x.imag
        a2[grid.radius2(i, j) < cut2] = 0
        dst[i:j].real = a2
        dst[i:j].imag = 0

    grid.each_slab(one)
