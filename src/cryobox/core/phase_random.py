"""Phase randomisation of half maps (Chen et al. 2013, Ultramicroscopy 135:24), as relion_postprocess
makes it: the phases beyond a shell replaced by random ones, the amplitudes kept; the expected
phase-randomised masked FSC over all draws, computed exactly; one seeded draw whose random streams
come from the maps' content; and the correction of the masked FSC by the randomised one.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from cryobox.core.fourier import fft_workers, irfftn_in_place, rfft_radius_fourier_px, rfftn_in_place
from cryobox.core.shells import (
    ShellGrid,
    copy_low,
    copy_power_beyond,
    empty_spectrum,
    fsc_from_sums,
    mask_spectrum_in_place,
    thread_pool,
)

__all__ = [
    "randomise_phases_beyond",
    "expected_random_masked_fsc",
    "expected_random_sums",
    "one_draw_sums",
    "corrected_fsc",
    "content_digest",
    "content_streams",
    "streams_of_digests",
]


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
    work = (empty_spectrum(m.shape), empty_spectrum(m.shape))
    return fsc_from_sums(expected_random_sums(a, b, m, int(randomise_at_shell), grid, work))


def expected_random_sums(
    s1: NDArray, s2: NDArray, m: NDArray, r: int, grid: ShellGrid, work: tuple[NDArray, NDArray]
) -> NDArray[np.float64]:
    """(3, n_shells) expected FSC sums of the phase-randomised masked maps (see
    ``expected_random_masked_fsc``); ``s1``, ``s2`` are read, the two ``work`` buffers overwritten."""
    t1, t2 = work
    n = grid.shape[-1]
    cut2 = r * r
    copy_low(s1, t1, cut2, grid)
    copy_low(s2, t2, cut2, grid)
    sums = grid.cross_sums(mask_spectrum_in_place(t1, m, grid), mask_spectrum_in_place(t2, m, grid))
    # the mask's autocorrelation c_m = F^-1 |M|^2, in t1
    real = t1.view(np.float32)[..., :n]
    grid.each_slab(lambda i, j: np.copyto(real[i:j], m[i:j]))
    rfftn_in_place(t1, n)
    copy_power_beyond(t1, t1, 0, grid)
    c_m = irfftn_in_place(t1, n)
    for row, src in ((1, s1), (2, s2)):
        copy_power_beyond(src, t2, cut2, grid)
        c = irfftn_in_place(t2, n)
        grid.each_slab(lambda i, j, c=c: np.multiply(c[i:j], c_m[i:j], out=c[i:j]))
        spectrum = rfftn_in_place(t2, n)
        sums[row] += grid.sum_per_shell(lambda i, j, x=spectrum: x[i:j].real) / float(np.prod(grid.shape))
    return sums


def one_draw_sums(
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
    return grid.cross_sums(mask_spectrum_in_place(work[0], m, grid), mask_spectrum_in_place(work[1], m, grid))


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
    return streams_of_digests(content_digest(half1), content_digest(half2), mask, seed)


def streams_of_digests(d1: bytes, d2: bytes, mask: NDArray | None, seed: int) -> list:
    pair = sorted((d1, d2))
    key = hashlib.blake2b(pair[0] + pair[1] + content_digest(mask) + str(int(seed)).encode(), digest_size=16)
    streams = np.random.default_rng(int.from_bytes(key.digest(), "little")).spawn(2)
    return streams if d1 <= d2 else streams[::-1]
