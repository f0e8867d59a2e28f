"""Fourier shell correlation and resolution, masked and phase-randomised as relion_postprocess does
(the masks: ``core.masks``; the phase randomisation: ``core.phase_random``).

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
exactly (``core.phase_random.expected_random_masked_fsc``): the same maps give the same numbers, with no
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

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from cryobox.core.fourier import rfftn_in_place
from cryobox.core.masks import AutoMaskSettings, auto_mask_from_half_maps
from cryobox.core.phase_random import (
    content_digest,
    corrected_fsc,
    expected_random_sums,
    one_draw_sums,
    streams_of_digests,
)
from cryobox.core.shells import (
    ShellGrid,
    empty_spectrum,
    fsc_from_sums,
    mask_spectrum_in_place,
    spectrum_of,
    thread_pool,
)

__all__ = [
    "fsc_curve",
    "fsc_from_rfft",
    "first_shell_below",
    "resolution_relion_rule",
    "resolution_interpolated",
    "FscResult",
    "masked_fsc_analysis",
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


def fsc_from_rfft(
    ft1: NDArray, ft2: NDArray, shells: NDArray, n_shells: int, *, work: dict | None = None
) -> NDArray[np.float64]:
    """FSC per shell from two complex64 rfftn spectra and their shell index (intp).

    Shells >= ``n_shells`` (corners beyond Nyquist) are accumulated but dropped, which is cheaper
    than masking them out. The spectrum is summed in two halves on two threads (numpy releases
    the GIL in these loops). ``work``: a dict this function fills with buffers on first use and
    reuses on later calls (fresh temporaries cost as much as the arithmetic on big maps).
    """
    return fsc_from_sums(shell_sums_rfft(ft1, ft2, shells, n_shells, work=work))


_pool = thread_pool


def fsc_curve(map1: NDArray, map2: NDArray) -> NDArray[np.float64]:
    """FSC (2D: FRC) of two cubic maps or square images, shells 0..N//2 (RELION's getFSC)."""
    a = np.asarray(map1, dtype=np.float32)
    b = np.asarray(map2, dtype=np.float32)
    _check_pair(a, b)
    grid = ShellGrid(a.shape)
    return fsc_from_sums(grid.cross_sums(spectrum_of(a, False), spectrum_of(b, False)))


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
    (``core.phase_random.expected_random_masked_fsc``): no randomness, the same maps give the same numbers. With a
    ``seed`` (or an ``rng``), one random draw as relion_postprocess makes it; the draw comes from
    ``core.phase_random.content_streams`` (the maps' and mask's content, and ``seed``), so it is still a function of
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
    m = None if mask is None else _checked_mask(mask, h1.shape)
    if masked_run:
        _check_randomise_resolutions(
            pixel_size_a, randomise_at_a=randomise_at_a, fallback_randomise_at_a=fallback_randomise_at_a
        )
    # one stream per half map, from the maps' content (read before they may be overwritten)
    one_draw = masked_run and (rng is not None or seed is not None)
    digests = (content_digest(h1), content_digest(h2)) if one_draw and rng is None else None
    n = h1.shape[-1]
    grid = ShellGrid(h1.shape)
    masked = None
    work = (empty_spectrum(h1.shape), empty_spectrum(h1.shape)) if masked_run else (None, None)
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
        masked = fsc_from_sums(grid.cross_sums(*work))
    s1 = spectrum_of(h1, overwrite_input)
    s2 = spectrum_of(h2, overwrite_input)
    unmasked = fsc_from_sums(grid.cross_sums(s1, s2))
    result = FscResult(box_px=n, pixel_size_a=float(pixel_size_a), fsc_unmasked=unmasked, ndim=h1.ndim)
    if not masked_run:
        if keep_spectra:
            result.spectra = (s1, s2)
        return result
    if auto_mask is not None:
        result.auto_mask, result.auto_mask_threshold = m, threshold
    result.mask_fraction = mask_effective_fraction(m)
    r = _randomise_shell(unmasked, n, pixel_size_a, randomise_at_a, randomise_fsc_at, fallback_randomise_at_a)
    # |k| >= r, as RELION's randomizePhasesBeyond (r2 >= r^2), on the spectra already in hand
    if not one_draw:
        random_sums = expected_random_sums(s1, s2, m, r, grid, work)
    else:
        streams = rng.spawn(2) if rng is not None else streams_of_digests(*digests, m, seed)
        random_sums = one_draw_sums(s1, s2, m, r, grid, work, streams)
    del work
    random_masked = fsc_from_sums(random_sums)
    if masked is None:  # the masked spectra are to be kept: mask the maps' spectra now
        masked = fsc_from_sums(
            grid.cross_sums(mask_spectrum_in_place(s1, m, grid), mask_spectrum_in_place(s2, m, grid))
        )
        if keep_spectra:
            result.spectra = (s1, s2)
    corrected = corrected_fsc(masked, random_masked, r)
    result.fsc_masked, result.fsc_random_masked, result.fsc_corrected, result.randomise_at_shell = (
        masked,
        random_masked,
        corrected,
        r,
    )
    _warn_about_mask(result, force_mask)
    return result


def _checked_mask(mask: NDArray, shape: tuple[int, ...]) -> NDArray[np.float32]:
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} differs from the half maps' {shape}")
    if m.min() < -1e-6 or m.max() > 1 + 1e-6:
        raise ValueError(f"mask values must lie in [0, 1], got {float(m.min()):.3g}..{float(m.max()):.3g}")
    return m


def _check_randomise_resolutions(pixel_size_a: float, **resolutions_a: float | None) -> None:
    for name, value in resolutions_a.items():
        if value is not None and not (np.isfinite(value) and value >= 2.0 * pixel_size_a):
            raise ValueError(
                f"`{name}` must be a resolution at or below Nyquist ({2.0 * pixel_size_a:g} Å), got {value}"
            )


def _randomise_shell(
    unmasked: NDArray,
    n: int,
    pixel_size_a: float,
    randomise_at_a: float | None,
    fsc_at: float,
    fallback_a: float | None,
) -> int:
    """The first shell whose phases are randomised: int(N p / d) for a given resolution d, else the
    first shell where the unmasked FSC drops below ``fsc_at`` (else the fallback resolution)."""
    if randomise_at_a is not None:
        return int(n * pixel_size_a / randomise_at_a)
    r = first_shell_below(unmasked, fsc_at, start=1)
    if r is None and fallback_a is not None:
        r = int(n * pixel_size_a / fallback_a)
    if r is None:
        raise ValueError(
            f"the unmasked FSC never drops below {fsc_at}: give the phase-randomisation resolution explicitly"
        )
    return r


def _warn_about_mask(result: FscResult, force_mask: bool) -> None:
    """relion_postprocess's checks of a masked analysis: the unmasked curve is used (unless
    ``force_mask``) when it reaches further than the corrected one; a warning when the randomised
    curve is still above 0.1 at the resolution (a mask too sharp or too tight)."""
    n, p = result.box_px, result.pixel_size_a
    _, s_corr = resolution_relion_rule(result.fsc_corrected, 0.143, box_px=n, pixel_size_a=p)
    _, s_unm = resolution_relion_rule(result.fsc_unmasked, 0.143, box_px=n, pixel_size_a=p)
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
            result.fsc_corrected = result.fsc_unmasked.copy()
    elif result.fsc_random_masked[s_corr] > 0.1:
        result.warnings.append(
            "the phase-randomised masked FSC is above 0.10 at the estimated resolution: the mask is too sharp or "
            "too tight; use a softer mask."
        )
