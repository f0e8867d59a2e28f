"""Fourier grids, shells, filters, rescaling and windowing for images (..., N, N) and volumes (N, N, N).

Layout: ``scipy.fft.rfftn`` over the last 2 or 3 axes, zero frequency at index 0 (internally);
``ifftshift`` before and ``fftshift`` after wherever a centred layout is needed. The real-space
centre of a box is pixel N//2 on each axis, for even and odd N. Every function returns new arrays
and leaves its input alone, except ``irfft2_inplace``, ``rfftn_in_place`` and ``irfftn_in_place``,
which overwrite what they are given (their names say so).

In-place transforms of volumes: a real array of shape (..., N) laid out inside the complex64
buffer of its own half spectrum, (..., N//2 + 1) (``padded_volume``), is transformed in that
buffer: the real transform along the last axis slab by slab (a few MB of temporaries), then the
complex transforms along the other axes in place. A 576³ map and its spectrum then take 0.77 GB
together instead of 1.5 GB, and no full-size temporary is made. The numbers are those of
``scipy.fft.rfftn`` / ``irfftn`` (the same pocketfft transforms, axis by axis).

``scipy.fft`` is imported inside the functions that use it: importing it costs about 0.17 s (its
array-API layer pulls in numpy.f2py), which plain extraction, that needs no FFT, should not pay.
"""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "fft_workers",
    "set_fft_workers",
    "rfft_radius_fourier_px",
    "rfft_radius2_fourier_px",
    "rfft_shell_index",
    "lowpass_rfft",
    "highpass_rfft",
    "bfactor_rfft",
    "filter_map",
    "fourier_rescale",
    "window",
    "irfft2_inplace",
    "padded_volume",
    "spectrum_buffer",
    "rfftn_in_place",
    "irfftn_in_place",
    "slab_ranges",
    "LowpassSlabs",
]


_FFT_WORKERS: int | None = None


def set_fft_workers(n: int | None) -> None:
    """Fix the scipy.fft thread count (None: all cores). Worker processes set 1."""
    global _FFT_WORKERS
    _FFT_WORKERS = None if n is None else max(1, int(n))


def fft_workers() -> int:
    """Threads for scipy.fft: all cores this process may use (unless set_fft_workers says)."""
    if _FFT_WORKERS is not None:
        return _FFT_WORKERS
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def irfft2_inplace(ft: NDArray, shape: tuple[int, int]) -> NDArray[np.float32]:
    """``irfft2`` of a half spectrum (..., ny, nx//2+1) that may be overwritten: a complex inverse
    along y in place, then the real inverse along x. The same numbers as ``scipy.fft.irfft2``,
    about 40 % faster on micrograph-sized arrays (pocketfft's 2D c2r path copies and transposes)."""
    import scipy.fft as sfft  # imported here: see the module docstring

    ny, nx = shape
    half = sfft.ifft(ft, n=ny, axis=-2, workers=fft_workers(), overwrite_x=True)
    return sfft.irfft(half, n=nx, axis=-1, workers=fft_workers(), overwrite_x=True).astype(np.float32, copy=False)


def padded_volume(shape: tuple[int, ...]) -> NDArray[np.float32]:
    """An uninitialised float32 array of ``shape`` that lives inside the complex64 buffer of its
    own rfftn, (..., N//2 + 1), so that ``rfftn_in_place`` can transform it where it is. Read a
    map into it (``io.mrc.read_map_into``) to hold the map and its spectrum in one buffer."""
    shape = tuple(int(n) for n in shape)
    buffer = np.empty(shape[:-1] + (shape[-1] // 2 + 1,), np.complex64)
    return buffer.view(np.float32)[..., : shape[-1]]


def spectrum_buffer(volume: NDArray) -> NDArray[np.complex64] | None:
    """The complex64 buffer a ``padded_volume`` lives in; None for any other array."""
    base = getattr(volume, "base", None)
    if not (isinstance(base, np.ndarray) and volume.dtype == np.float32 and base.dtype == np.complex64):
        return None
    shape = volume.shape
    if base.shape != shape[:-1] + (shape[-1] // 2 + 1,) or not base.flags.c_contiguous:
        return None
    same_start = volume.__array_interface__["data"][0] == base.__array_interface__["data"][0]
    return base if same_start and volume.strides == base.view(np.float32).strides else None


def slab_ranges(n: int, plane_elements: int, *, target: int = 1 << 22) -> list[tuple[int, int]]:
    """(start, stop) slabs along axis 0 of about ``target`` elements each (planes of ``plane_elements``)."""
    step = max(1, target // max(1, plane_elements))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def rfftn_in_place(buffer: NDArray[np.complex64], n_last: int, *, workers: int | None = None) -> NDArray[np.complex64]:
    """The rfftn of the real array held in ``buffer.view(float32)[..., :n_last]``, written over it
    (``buffer``, returned). The same numbers as ``scipy.fft.rfftn`` on that array."""
    import scipy.fft as sfft  # imported here: see the module docstring

    w = fft_workers() if workers is None else workers
    real = buffer.view(np.float32)[..., :n_last]
    for i, j in slab_ranges(buffer.shape[0], real[0].size):
        buffer[i:j] = sfft.rfft(real[i:j], axis=-1, workers=w)  # plane i's reals are read before it is written
    if buffer.ndim > 1:
        out = sfft.fftn(buffer, axes=tuple(range(buffer.ndim - 1)), workers=w, overwrite_x=True)
        if out is not buffer and not np.shares_memory(out, buffer):  # pragma: no cover - scipy without in-place c2c
            buffer[...] = out
    return buffer


def irfftn_in_place(buffer: NDArray[np.complex64], n_last: int, *, workers: int | None = None) -> NDArray[np.float32]:
    """The irfftn of the half spectrum ``buffer``, written over it: returns the real array
    ``buffer.view(float32)[..., :n_last]``. The same numbers as ``scipy.fft.irfftn(buffer, s=...)``."""
    import scipy.fft as sfft  # imported here: see the module docstring

    w = fft_workers() if workers is None else workers
    if buffer.ndim > 1:
        out = sfft.ifftn(buffer, axes=tuple(range(buffer.ndim - 1)), workers=w, overwrite_x=True)
        if out is not buffer and not np.shares_memory(out, buffer):  # pragma: no cover - scipy without in-place c2c
            buffer[...] = out
    real = buffer.view(np.float32)[..., :n_last]
    for i, j in slab_ranges(buffer.shape[0], real[0].size):
        real[i:j] = sfft.irfft(buffer[i:j], n=n_last, axis=-1, workers=w)
    return real


def rfft_radius_fourier_px(shape: tuple[int, ...]) -> NDArray[np.float32]:
    """|k| in Fourier pixels on the rfftn grid of a real array of ``shape`` (2D or 3D, cubic or not).

    Each axis uses its own integer frequencies (fftfreq(n) * n); the last axis is the half axis.
    Shells are meaningful for cubic boxes (RELION's convention); returns float32 of shape
    ``shape[:-1] + (shape[-1] // 2 + 1,)``.
    """
    axes = []
    for i, n in enumerate(shape):
        f = np.fft.rfftfreq(n) * n if i == len(shape) - 1 else np.fft.fftfreq(n) * n
        view = [1] * len(shape)
        view[i] = f.size
        axes.append((f.astype(np.float32) ** 2).reshape(view))
    r2 = axes[0]
    for a in axes[1:]:
        r2 = r2 + a
    return np.sqrt(r2)


def rfft_radius2_fourier_px(shape: tuple[int, ...]) -> NDArray[np.int32]:
    """|k|^2 in Fourier pixels (integer) on the rfftn grid of a real array of ``shape``."""
    r2 = None
    for i, n in enumerate(shape):
        f = np.fft.rfftfreq(n) * n if i == len(shape) - 1 else np.fft.fftfreq(n) * n
        view = [1] * len(shape)
        view[i] = f.size
        sq = (np.rint(f).astype(np.int32) ** 2).reshape(view)
        r2 = sq if r2 is None else r2 + sq
    return r2


def rfft_shell_index(shape: tuple[int, ...]) -> NDArray[np.intp]:
    """Shell of each rfftn element: round(|k|) in Fourier pixels, as RELION bins (ROUND(sqrt(r2))).

    Computed from the integer |k|^2 through a look-up table (one pass, no float temporaries).
    """
    r2 = rfft_radius2_fourier_px(shape)
    lut = np.floor(np.sqrt(np.arange(int(r2.max()) + 1, dtype=np.float64)) + 0.5).astype(np.intp)
    return np.take(lut, r2)


def _raised_cosine_weights(
    radius_fourier_px: NDArray,
    box_px: int,
    shell: float,
    edge_width_shells: int,
    *,
    high: bool,
    radius_max: float | None = None,
) -> NDArray:
    """RELION's lowPassFilterMap edge: between (shell -/+ width/2) / N the weight goes 1 -> 0
    (low-pass) or 0 -> 1 (high-pass) as a raised cosine; radius in Fourier pixels, edges in 1/pixel.
    ``radius_max``: the whole grid's largest radius, when ``radius_fourier_px`` is a slab of it."""
    half = edge_width_shells // 2
    res = radius_fourier_px / box_px
    top = float(radius_fourier_px.max()) if radius_max is None else float(radius_max)
    edge_low = max(0.0, (shell - half) / box_px)
    edge_high = min(top / box_px + 1.0, (shell + half) / box_px)
    width = edge_high - edge_low
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip((res - edge_low) / width, 0.0, 1.0) if width > 0 else (res > edge_low).astype(np.float32)
    w = 0.5 + 0.5 * np.cos(np.pi * t)  # 1 at edge_low, 0 at edge_high
    return (1.0 - w if high else w).astype(np.float32)


def lowpass_rfft(
    ft: NDArray, *, box_px: int, pixel_size_a: float, resolution_a: float, edge_width_shells: int = 2
) -> NDArray:
    """Low-pass an rfftn spectrum at ``resolution_a`` with RELION's raised-cosine edge.

    The filter shell is round(N p / d); the edge spans ``edge_width_shells`` shells around it
    (RELION's --filter_edge_width, default 2).
    """
    shell = float(np.floor(box_px * pixel_size_a / resolution_a + 0.5))
    return ft * _raised_cosine_weights(
        rfft_radius_fourier_px(_real_shape(ft, box_px)), box_px, shell, edge_width_shells, high=False
    )


class LowpassSlabs:
    """A map low-passed with RELION's raised cosine (``filter_map(..., lowpass_a=...)``), read a
    slab of planes at a time and never held whole.

    A low-pass at d Å keeps only the frequencies below about N p / d on every axis: the spectrum
    is kept as that small block (|k| < ``band`` on every axis, ``band`` the filter's last non-zero
    shell + 1: 85 x 85 x 43 complex values for 15 Å in a 576 px box at 1.06 Å/px), made by
    transforming the map's last axis slab by slab and the other axes only on the kept columns and
    rows; each slab of the filtered map is then the inverse of the block on the last axis' lines of
    that slab. The largest arrays are two of N x N x ``band`` complex values (0.11 GB each for that
    576³ case), against a map-sized buffer and two full transforms before.
    ``source(i, j)``: planes i..j of the map (float32). The same numbers as
    ``filter_map`` to float32 rounding."""

    def __init__(self, source, shape, *, pixel_size_a: float, resolution_a: float, edge_width_shells: int = 2):
        import scipy.fft as sfft  # imported here: see the module docstring

        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) != 3 or len(set(self.shape)) != 1:
            raise ValueError(f"LowpassSlabs needs a cubic 3D map, got shape {self.shape}")
        n = self.shape[-1]
        w = fft_workers()
        shell = float(np.floor(n * pixel_size_a / resolution_a + 0.5))
        top = float(np.sqrt(3.0) * (n // 2))
        beyond = min(top / n + 1.0, (shell + edge_width_shells // 2) / n) * n  # weight 0 from here on
        band = int(min(n // 2 + 1, np.floor(beyond) + 1))  # |k| < band on every axis holds all non-zero weights
        self.band = band
        freqs = np.rint(np.fft.fftfreq(n) * n).astype(np.int64)
        keep = np.flatnonzero(np.abs(freqs) < band)  # the kept rows of a full (non-half) axis
        self._keep = keep
        # the last axis: real transform of each slab, kept columns only
        cols = np.empty((n, n, band), np.complex64)
        for i, j in slab_ranges(n, n * n):
            cols[i:j] = sfft.rfft(source(i, j), axis=-1, workers=w)[..., :band]
        rows = sfft.fft(cols, axis=1, workers=w)[:, keep, :]
        del cols
        block = sfft.fft(rows, axis=0, workers=w)[keep, :, :]
        del rows
        k0 = freqs[keep].astype(np.float32)
        k2 = np.arange(band, dtype=np.float32)
        r = np.sqrt(k0[:, None, None] ** 2 + k0[None, :, None] ** 2 + k2[None, None, :] ** 2)
        block *= _raised_cosine_weights(r, n, shell, edge_width_shells, high=False, radius_max=top)
        # the filtered map's mean and mean square, from its spectrum (Parseval): no pass over it
        power = block.real.astype(np.float64) ** 2 + block.imag.astype(np.float64) ** 2
        twice = np.full(band, 2.0)
        twice[0] = 1.0
        if n % 2 == 0 and band == n // 2 + 1:
            twice[-1] = 1.0  # the last axis' Nyquist column is held once
        self.mean = float(block[0, 0, 0].real) / n**3
        self.mean_square = float((power * twice).sum()) / n**6
        # back along the first two axes, onto the full grid (zeros elsewhere)
        full0 = np.zeros((n, keep.size, band), np.complex64)
        full0[keep] = block
        rows = sfft.ifft(full0, axis=0, workers=w)
        del full0
        full1 = np.zeros((n, n, band), np.complex64)
        full1[:, keep, :] = rows
        del rows
        self._lines = sfft.ifft(full1, axis=1, workers=w, overwrite_x=True)

    def __call__(self, i: int, j: int) -> NDArray[np.float32]:
        """Planes i..j of the low-passed map."""
        import scipy.fft as sfft  # imported here: see the module docstring

        n = self.shape[-1]
        return sfft.irfft(self._lines[i:j], n=n, axis=-1, workers=fft_workers()).astype(np.float32, copy=False)


def highpass_rfft(
    ft: NDArray, *, box_px: int, pixel_size_a: float, resolution_a: float, edge_width_shells: int = 2
) -> NDArray:
    """High-pass an rfftn spectrum at ``resolution_a`` (RELION's raised-cosine edge, see lowpass_rfft)."""
    shell = float(np.floor(box_px * pixel_size_a / resolution_a + 0.5))
    return ft * _raised_cosine_weights(
        rfft_radius_fourier_px(_real_shape(ft, box_px)), box_px, shell, edge_width_shells, high=True
    )


def bfactor_rfft(ft: NDArray, *, box_px: int, pixel_size_a: float, bfactor_a2: float) -> NDArray:
    """Multiply by exp(-B k^2 / 4), k in 1/Å (negative B sharpens), as RELION's applyBFactorToMap."""
    k = rfft_radius_fourier_px(_real_shape(ft, box_px)) / (box_px * pixel_size_a)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by the caller (not finite)
        return ft * np.exp(-0.25 * bfactor_a2 * k * k).astype(np.float32)


def _real_shape(ft: NDArray, box_px: int) -> tuple[int, ...]:
    return tuple(ft.shape[:-1]) + (box_px,)


def filter_map(
    volume: NDArray,
    *,
    pixel_size_a: float,
    lowpass_a: float | None = None,
    highpass_a: float | None = None,
    bfactor_a2: float = 0.0,
    edge_width_shells: int = 2,
) -> NDArray[np.float32]:
    """Low-/high-pass (RELION raised cosine) and B-factor a cubic map or image; returns float32."""
    import scipy.fft as sfft  # imported here: see the module docstring

    vol = np.asarray(volume, dtype=np.float32)
    n = vol.shape[-1]
    if any(s != n for s in vol.shape):
        raise ValueError(f"filtering needs a cubic (square) box, got shape {vol.shape}")
    if lowpass_a is not None and highpass_a is not None and highpass_a <= lowpass_a:
        raise ValueError(f"high-pass ({highpass_a} Å) must be a lower resolution than low-pass ({lowpass_a} Å)")
    ft = sfft.rfftn(vol, workers=fft_workers())
    if lowpass_a is not None:
        ft = lowpass_rfft(
            ft, box_px=n, pixel_size_a=pixel_size_a, resolution_a=lowpass_a, edge_width_shells=edge_width_shells
        )
    if highpass_a is not None:
        ft = highpass_rfft(
            ft, box_px=n, pixel_size_a=pixel_size_a, resolution_a=highpass_a, edge_width_shells=edge_width_shells
        )
    if bfactor_a2:
        ft = bfactor_rfft(ft, box_px=n, pixel_size_a=pixel_size_a, bfactor_a2=bfactor_a2)
    return sfft.irfftn(ft, s=vol.shape, workers=fft_workers()).astype(np.float32)


def fourier_rescale(volume: NDArray, new_box_px: int, *, pixel_size_a: float) -> tuple[NDArray[np.float32], float]:
    """Fourier crop (downsample) or pad (upsample) a cubic map/image from N to n px per axis.

    Keeps |k| below the new Nyquist, preserves the real-space values (mean and the value at the
    box centre N//2 -> n//2) and returns ``(rescaled, achieved pixel size = p * N / n)``.
    """
    import scipy.fft as sfft  # imported here: see the module docstring

    vol = np.asarray(volume, dtype=np.float32)
    n_old = vol.shape[-1]
    if any(s != n_old for s in vol.shape):
        raise ValueError(f"rescaling needs a cubic (square) box, got shape {vol.shape}")
    n_new = int(new_box_px)
    if n_new < 2:
        raise ValueError(f"`new_box_px` must be at least 2 px, got {new_box_px}")
    if n_new == n_old:
        return vol.copy(), float(pixel_size_a)
    axes = tuple(range(vol.ndim))
    ft = sfft.fftshift(sfft.fftn(sfft.ifftshift(vol, axes=axes), workers=fft_workers()), axes=axes)
    out = np.zeros((n_new,) * vol.ndim, dtype=np.complex64)
    m = min(n_old, n_new)
    src = tuple(slice(n_old // 2 - m // 2, n_old // 2 - m // 2 + m) for _ in axes)
    dst = tuple(slice(n_new // 2 - m // 2, n_new // 2 - m // 2 + m) for _ in axes)
    out[dst] = ft[src]
    # An even grid's Nyquist plane (-m/2) stands for both +-m/2; taking the real part of the
    # inverse transform is the Hermitian average, which splits (padding) or folds (cropping) it
    # correctly, so no special case is needed.
    img = sfft.fftshift(sfft.ifftn(sfft.ifftshift(out, axes=axes), workers=fft_workers()), axes=axes).real
    img *= (n_new / n_old) ** vol.ndim
    return img.astype(np.float32), float(pixel_size_a) * n_old / n_new


def window(volume: NDArray, new_box_px: int, *, ndim: int | None = None, fill: float = 0.0) -> NDArray:
    """Centred crop or pad (with ``fill``) of the last ``ndim`` axes to ``new_box_px`` px.

    The centre pixel N//2 of the input lands on n//2 of the output (RELION's windowing), for
    even and odd sizes. ``ndim`` defaults to the array's own (2 for an image, 3 for a volume);
    give ``ndim=2`` for a stack of images (n, N, N).
    """
    arr = np.asarray(volume)
    if ndim is None:
        ndim = 3 if arr.ndim == 3 else 2
    if ndim not in (2, 3) or arr.ndim < ndim:
        raise ValueError(f"window works on the last 2 or 3 axes; got ndim={ndim} for shape {arr.shape}")
    n_old = arr.shape[-1]
    n_new = int(new_box_px)
    shape = arr.shape[:-ndim] + (n_new,) * ndim
    out = np.zeros(shape, dtype=arr.dtype) if fill == 0 else np.full(shape, fill, dtype=arr.dtype)
    off = n_new // 2 - n_old // 2  # where input pixel 0 lands in the output
    src, dst = [], []
    for _ in range(ndim):
        s0 = max(0, -off)
        d0 = max(0, off)
        length = min(n_old - s0, n_new - d0)
        src.append(slice(s0, s0 + length))
        dst.append(slice(d0, d0 + length))
    lead = (Ellipsis,)
    out[lead + tuple(dst)] = arr[lead + tuple(src)]
    return out


def resample_to(volume: NDArray, from_a: float, to_a: float) -> tuple[NDArray[np.float32], float]:
    """A cubic map (or square image) at ``from_a`` Å/px Fourier-resampled to about ``to_a`` Å/px:
    the box becomes round(N from / to) px (at least 2), and the pixel size achieved, from * N / n,
    is returned beside it. Unchanged (as float32) when the two agree to 1e-4."""
    vol = np.asarray(volume)
    if abs(from_a - to_a) <= 1e-4 * to_a:
        return vol.astype(np.float32, copy=False), float(from_a)
    new_n = max(2, int(round(vol.shape[-1] * from_a / to_a)))
    return fourier_rescale(vol, new_n, pixel_size_a=from_a)
