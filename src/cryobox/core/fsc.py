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
Resolution (RELION's rule): N p / s for the last shell s before the FSC first drops below the
threshold; the linearly interpolated crossing is reported beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from cryobox.core.fourier import fft_workers, rfft_radius2_fourier_px, rfft_radius_fourier_px, rfft_shell_index

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
        if not np.isfinite(m).all():
            raise ValueError(f"the {name} half map holds NaN or infinite values")
        if float(m.max()) == float(m.min()):
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


_POOL = None


def _pool():
    """Two worker threads for the two half maps (created on first use, not at import)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cryobox-fsc")
    return _POOL


def fsc_curve(map1: NDArray, map2: NDArray) -> NDArray[np.float64]:
    """FSC (2D: FRC) of two cubic maps or square images, shells 0..N//2 (RELION's getFSC)."""
    a = np.asarray(map1, dtype=np.float32)
    b = np.asarray(map2, dtype=np.float32)
    _check_pair(a, b)
    n = a.shape[-1]
    w = fft_workers()
    return fsc_from_rfft(sfft.rfftn(a, workers=w), sfft.rfftn(b, workers=w), rfft_shell_index(a.shape), n // 2 + 1)


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
    ft1: NDArray,
    ft2: NDArray,
    mask: NDArray,
    beyond: NDArray,
    shells: NDArray,
    n_shells: int,
    *,
    work: dict | None = None,
) -> NDArray[np.float64]:
    """The phase-randomised masked FSC averaged over all phase draws, computed exactly.

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
    shape = m.shape
    pool = _pool()
    s = shells.reshape(-1)

    def masked_low(ft):
        low = np.where(beyond, np.complex64(0), ft)
        v = sfft.irfftn(low, s=shape, workers=1, overwrite_x=True)
        v *= m
        return sfft.rfftn(v, workers=1, overwrite_x=True)

    fl1, fl2 = pool.map(masked_low, (ft1, ft2))
    sums = shell_sums_rfft(fl1, fl2, shells, n_shells, work=work)
    del fl1, fl2
    fm = sfft.rfftn(m, workers=fft_workers())
    power = fm.real**2 + fm.imag**2
    del fm
    c_m = sfft.irfftn(power, s=shape, workers=fft_workers(), overwrite_x=True).astype(np.float32, copy=False)
    del power

    def random_power(ft):
        a2 = ft.real**2 + ft.imag**2
        a2[~beyond] = 0
        c = sfft.irfftn(a2, s=shape, workers=1, overwrite_x=True).astype(np.float32, copy=False)
        c *= c_m
        p = sfft.rfftn(c, workers=1, overwrite_x=True).real.astype(np.float64).reshape(-1)
        return np.bincount(s, weights=p, minlength=n_shells)[:n_shells] / float(np.prod(shape))

    p1, p2 = pool.map(random_power, (ft1, ft2))
    sums[1] += p1
    sums[2] += p2
    return _fsc_from_sums(sums)


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


def auto_mask(
    volume: NDArray, *, threshold: float, extend_px: float = 0.0, soft_edge_px: float = 0.0
) -> NDArray[np.float32]:
    """A solvent mask like relion_mask_create: voxels >= ``threshold`` are 1, the mask is then
    extended by ``extend_px`` (binary dilation by distance) and given a raised-cosine soft edge of
    ``soft_edge_px``. Distances are Euclidean in pixels."""
    from scipy.ndimage import distance_transform_edt

    vol = np.asarray(volume, dtype=np.float32)
    core = vol >= threshold
    if not core.any():
        raise ValueError(f"no voxel reaches the mask threshold {threshold} (map max {float(vol.max()):.4g})")
    if extend_px > 0:
        core = distance_transform_edt(~core) <= extend_px
    if soft_edge_px <= 0:
        return core.astype(np.float32)
    d = distance_transform_edt(~core)
    t = np.clip(d / soft_edge_px, 0.0, 1.0)
    return np.where(core, 1.0, 0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)


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
    Returns the mask and the threshold used."""
    from cryobox.core.fourier import filter_map

    smooth = (
        filter_map(volume, pixel_size_a=pixel_size_a, lowpass_a=lowpass_a)
        if lowpass_a > 0
        else np.asarray(volume, np.float32)
    )
    thr = float(threshold) if threshold is not None else float(smooth.mean() + 3.0 * smooth.std())
    return auto_mask(
        smooth, threshold=thr, extend_px=extend_a / pixel_size_a, soft_edge_px=soft_edge_a / pixel_size_a
    ), thr


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
    d1, d2 = content_digest(half1), content_digest(half2)
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
    unless ``force_mask``.
    """
    h1 = np.asarray(half1, dtype=np.float32)
    h2 = np.asarray(half2, dtype=np.float32)
    _check_pair(h1, h2)
    n = h1.shape[-1]
    n_shells = n // 2 + 1
    # One thread per half map, each FFT on one core: the numpy work between FFTs (masking,
    # phase randomisation) then runs on both cores too.
    pool = _pool()
    r2 = rfft_radius2_fourier_px(h1.shape)
    lut = np.floor(np.sqrt(np.arange(int(r2.max()) + 1, dtype=np.float64)) + 0.5).astype(np.intp)
    shells = np.take(lut, r2)
    ft1, ft2 = pool.map(lambda v: sfft.rfftn(v, workers=1), (h1, h2))
    work: dict = {}
    unmasked = fsc_from_rfft(ft1, ft2, shells, n_shells, work=work)
    result = FscResult(box_px=n, pixel_size_a=float(pixel_size_a), fsc_unmasked=unmasked, ndim=h1.ndim)
    if mask is None:
        return result
    m = np.asarray(mask, dtype=np.float32)
    result.mask_fraction = mask_effective_fraction(m)
    if m.shape != h1.shape:
        raise ValueError(f"mask shape {m.shape} differs from the half maps' {h1.shape}")
    if m.min() < -1e-6 or m.max() > 1 + 1e-6:
        raise ValueError(f"mask values must lie in [0, 1], got {float(m.min()):.3g}..{float(m.max()):.3g}")
    fm1, fm2 = pool.map(lambda v: sfft.rfftn(v * m, workers=1, overwrite_x=True), (h1, h2))
    masked = fsc_from_rfft(fm1, fm2, shells, n_shells, work=work)
    del fm1, fm2
    if randomise_at_a is not None:
        if not (np.isfinite(randomise_at_a) and randomise_at_a >= 2.0 * pixel_size_a):
            raise ValueError(
                f"`randomise_at_a` must be a resolution at or below Nyquist ({2.0 * pixel_size_a:g} Å), got "
                f"{randomise_at_a}"
            )
        r = int(n * pixel_size_a / randomise_at_a)
    else:
        r = first_shell_below(unmasked, randomise_fsc_at, start=1)
        if r is None:
            raise ValueError(
                f"the unmasked FSC never drops below {randomise_fsc_at}: give the phase-randomisation resolution "
                "explicitly"
            )
    # |k| >= r, as RELION's randomizePhasesBeyond (r2 >= r^2); randomise the spectra already in hand
    beyond = r2 >= r * r
    del r2
    if rng is None and seed is None:
        random_masked = expected_random_masked_fsc(ft1, ft2, m, beyond, shells, n_shells, work=work)
        del ft1, ft2
    else:
        # one stream per half map: threads give the same result for the same maps
        streams = rng.spawn(2) if rng is not None else content_streams(h1, h2, m, seed=seed)

        def randomised_masked_spectrum(job):
            ft, stream = job
            p = sfft.irfftn(_randomise_phases_rfft(ft, beyond, stream), s=h1.shape, workers=1)
            p *= m
            return sfft.rfftn(p, workers=1, overwrite_x=True)

        rm1, rm2 = pool.map(randomised_masked_spectrum, ((ft1, streams[0]), (ft2, streams[1])))
        del ft1, ft2
        random_masked = fsc_from_rfft(rm1, rm2, shells, n_shells, work=work)
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
