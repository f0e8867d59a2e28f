"""Why the FSC looks the way it does: directional resolution (conical FSC, cFAR), orientation
coverage (SCF, SCF*), power spectra, ice rings. Pure numpy; maps in, numbers out.

**Conical FSC.** For an axis d, the FSC over the Fourier voxels within a double cone of half-angle
α around ±d (the FSC is Friedel-symmetric, so a cone and its opposite are one cone). Cones are
computed together: every voxel of the half maps' spectra is put in one of about 5,000 equal-area
direction bins of the hemisphere (rings of constant polar angle, 2° wide, each cut into as many
bins as fit), and each shell's three FSC sums are accumulated per bin in one pass. A cone's sums
are then the sums of the bins whose centres lie within α of its axis: one matrix product for all
axes. The cone's edge is therefore known to within a bin (about 1°), which is the price of doing
500 cones in about the time of two FSCs.

**cFAR** (conical FSC area ratio, cryoSPARC's Orientation Diagnostics): the area under each
cone's FSC curve (clipped to [0, 1], from the first shell to Nyquist, against spatial frequency),
and the ratio of the smallest area to the largest. 1 for an isotropic map; cryoSPARC treats values
below 0.5 as anisotropic. The smallest area over the mean area is given beside it.

**SCF and SCF*** (sampling compensation factor; Baldwin & Lyumkis, Prog. Biophys. Mol. Biol.
150, 160-183, 2020): the projection of a particle seen along n fills the central plane ⊥ n of
Fourier space, so on a Fourier shell of radius R voxels a direction k is sampled by the views
whose planes pass within half a voxel of it, |k·n| R < 1/2: S(k) counts them. With the averages
⟨S⟩ over all directions and ⟨1/S⟩ over the sampled ones (S > 0), and q the fraction of directions
never sampled (p = 1 - q):

    SCF  = 1 / (⟨S⟩ ⟨1/S⟩)
    SCF* = SCF / (1 + (q/p) ⟨S⟩ SCF / 2)

1 for uniform views; 8/π² = 0.81 for side views only (views on one great circle, S ∝ 1/sin θ,
nothing unsampled); SCF* near 0 for top views only (all but a band of directions unsampled). The
formulas, the half-voxel band, the default radius R = 50 and the use of at most 10,000 views are
those of the authors' own program (CommandLineSCF, github.com/LyumkisLab); SCF* is what cryoSPARC
reports, and it calls values below 0.81 anisotropic. Here S is counted on min(2πR², 5,000)
directions of a hemisphere (S(k) = S(-k)); with fewer than 5,000 views R is lowered to views/100,
so that uniform views still put 50 in each direction's band.

**Ice.** Crystalline ice scatters in rings at fixed spacings: hexagonal ice (Ih) 3.90 (100), 3.67
(002), 3.44 (101), 2.67 (102), 2.25 (110), 2.07 (103), 1.92 Å (112); cubic ice (Ic) 3.67 (111),
2.25 (220), 1.92 Å (311) (lattice constants of ice Ih a = 4.51, c = 7.35 Å and of ice Ic a = 6.36 Å;
e.g. Dowell & Rinfret, Nature 188, 1144, 1960; the same list as AUSPEX, Thorn et al., Acta Cryst.
D73, 729, 2017).
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryobox.core.fourier import fft_workers, rfft_shell_index
from cryobox.core.fsc import first_shell_below, fsc_from_rfft, resolution_interpolated

__all__ = [
    "ICE_RINGS_A",
    "hemisphere_directions",
    "direction_bins",
    "conical_fsc",
    "cfar",
    "conical_resolution",
    "directional_resolution",
    "viewing_directions",
    "sampling_compensation_factor",
    "SCF_MIN_VIEWS",
    "MIN_CONE_VOXELS",
    "radial_power",
    "fsc_dips",
]

#: (spacing Å, label): hexagonal (Ih) and cubic (Ic) ice reflections (see the module docstring)
ICE_RINGS_A = (
    (3.90, "Ih (100)"),
    (3.67, "Ih (002) / Ic (111)"),
    (3.44, "Ih (101)"),
    (2.67, "Ih (102)"),
    (2.25, "Ih (110) / Ic (220)"),
    (2.07, "Ih (103)"),
    (1.92, "Ih (112) / Ic (311)"),
)


def hemisphere_directions(n: int) -> NDArray[np.float64]:
    """(n, 3) unit vectors (x, y, z) spread evenly over the hemisphere z >= 0 (a Fibonacci
    lattice; each stands for itself and its opposite)."""
    if n < 1:
        raise ValueError(f"`n_directions` must be at least 1, got {n}")
    i = np.arange(n, dtype=np.float64) + 0.5
    z = 1.0 - i / n  # uniform in z on [0, 1]: equal area
    phi = np.pi * (1.0 + 5.0**0.5) * i
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _ring_layout(ring_deg: float) -> tuple[NDArray, NDArray, NDArray]:
    """Equal-area-ish bins of the hemisphere: rings of polar angle ``ring_deg`` wide, each cut
    into round(2π sin θ / Δθ) bins. Returns per ring its bin count and first bin, and the (n, 3)
    bin centres."""
    dt = np.deg2rad(ring_deg)
    n_rings = int(np.ceil((np.pi / 2) / dt))
    theta_c = (np.arange(n_rings) + 0.5) * dt
    counts = np.maximum(1, np.round(2 * np.pi * np.sin(theta_c) / dt)).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    centres = []
    for t, c in zip(theta_c, counts):
        phi = -np.pi + (np.arange(c) + 0.5) * 2 * np.pi / c
        centres.append(np.stack([np.sin(t) * np.cos(phi), np.sin(t) * np.sin(phi), np.full(c, np.cos(t))], axis=1))
    return counts, first, np.concatenate(centres)


def direction_bins(shape: tuple[int, int, int], ring_deg: float = 2.0) -> tuple[NDArray[np.intp], NDArray]:
    """For an rfftn spectrum of a cubic map of ``shape`` (z, y, x): each voxel's direction bin
    (its wave vector folded onto z >= 0), and the bins' unit-vector centres (x, y, z)."""
    n = shape[-1]
    counts, first, centres = _ring_layout(ring_deg)
    kz = (np.fft.fftfreq(n) * n).astype(np.float32)
    ky = (np.fft.fftfreq(n) * n).astype(np.float32)
    kx = (np.fft.rfftfreq(n) * n).astype(np.float32)
    y, x = ky[:, None], kx[None, :]
    rho2 = x * x + y * y
    out = np.empty((n, n, kx.size), dtype=np.intp)
    step = np.float32(np.deg2rad(ring_deg))
    for i, z in enumerate(kz):  # plane by plane in float32: no map-sized float64 temporaries
        r = np.sqrt(rho2 + z * z)
        if i == 0:
            r[0, 0] = 1.0
        sign = np.float32(-1.0 if z < 0 else 1.0)  # fold onto the upper hemisphere (a cone is its opposite too)
        theta = np.arccos(np.clip(np.abs(z) / r, 0.0, 1.0))
        ring = np.minimum((theta / step).astype(np.intp), counts.size - 1)
        phi = np.arctan2(y * sign, x * sign) + np.float32(np.pi)
        nb = counts[ring]
        k = np.minimum((phi / np.float32(2 * np.pi) * nb).astype(np.intp), nb - 1)
        out[i] = first[ring] + k
    return out, centres


def conical_fsc(
    ft1: NDArray,
    ft2: NDArray,
    shells: NDArray,
    n_shells: int,
    bins: NDArray,
    centres: NDArray,
    directions: ArrayLike,
    *,
    half_angle_deg: float = 20.0,
    fill: ArrayLike | None = None,
    min_voxels: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FSC in a double cone around each direction (see the module docstring).

    ``ft1``, ``ft2``: rfftn spectra of the (masked) half maps; ``shells``: their shell index;
    ``bins``, ``centres``: from ``direction_bins``; ``directions``: (m, 3) unit axes. Returns the
    (m, n_shells) conical FSCs (shell 0 set to 1) and the (m, n_shells) number of Fourier voxels
    behind each value. A cone holds few voxels at the lowest shells (none, for a narrow one);
    where it holds fewer than ``min_voxels`` (default ``MIN_CONE_VOXELS``) its FSC is too noisy to
    read a crossing from, and the value is ``fill`` (the global FSC, say) or NaN.
    """
    min_voxels = MIN_CONE_VOXELS if min_voxels is None else int(min_voxels)
    if not 0 < half_angle_deg < 90:
        raise ValueError(f"`half_angle_deg` must be between 0 and 90 degrees, got {half_angle_deg}")
    s = shells.reshape(-1)
    keep = s < n_shells
    a = np.asarray(ft1).reshape(-1)[keep]
    b = np.asarray(ft2).reshape(-1)[keep]
    idx = bins.reshape(-1)[keep] * n_shells + s[keep]
    nb = centres.shape[0]
    size = nb * n_shells
    num = np.bincount(idx, weights=(a.real * b.real + a.imag * b.imag), minlength=size).reshape(nb, n_shells)
    d1 = np.bincount(idx, weights=(a.real * a.real + a.imag * a.imag), minlength=size).reshape(nb, n_shells)
    d2 = np.bincount(idx, weights=(b.real * b.real + b.imag * b.imag), minlength=size).reshape(nb, n_shells)
    cnt = np.bincount(idx, minlength=size).reshape(nb, n_shells).astype(np.float64)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    member = (np.abs(d @ centres.T) >= np.cos(np.deg2rad(half_angle_deg))).astype(np.float64)
    cn, c1, c2, cc = member @ num, member @ d1, member @ d2, member @ cnt
    with np.errstate(divide="ignore", invalid="ignore"):
        fsc = cn / np.sqrt(c1 * c2)
    fsc = np.nan_to_num(fsc, nan=0.0)
    empty = cc < min_voxels
    fsc[empty] = np.nan if fill is None else np.broadcast_to(np.asarray(fill, dtype=np.float64), fsc.shape)[empty]
    fsc[:, 0] = 1.0
    return fsc, cc


def cfar(curves: NDArray, frequency_inv_a: NDArray) -> dict:
    """Areas under the conical FSC curves (clipped to [0, 1], shell 1 to Nyquist, over 1/Å) and
    cFAR = smallest area / largest area (and smallest / mean, beside it)."""

    c = np.asarray(curves, dtype=np.float64)
    with warnings.catch_warnings():  # a shell where every cone is NaN stays NaN here, then 1 below
        warnings.simplefilter("ignore", RuntimeWarning)
        c = np.where(np.isnan(c), np.nanmean(c, axis=0, keepdims=True), c)  # too few voxels: the cones' mean
    c = np.clip(np.nan_to_num(c, nan=1.0), 0.0, 1.0)[:, 1:]
    f = np.asarray(frequency_inv_a, dtype=np.float64)[1:]
    areas = np.trapezoid(c, f, axis=1) if hasattr(np, "trapezoid") else np.trapz(c, f, axis=1)
    mean, top = float(areas.mean()), float(areas.max())
    return {
        "areas": areas,
        "cfar": float(areas.min() / top) if top > 0 else 0.0,
        "min_over_mean": float(areas.min() / mean) if mean > 0 else 0.0,
    }


def conical_resolution(
    ft1: NDArray,
    ft2: NDArray,
    shells: NDArray,
    box_px: int,
    pixel_size_a: float,
    *,
    n_directions: int = 500,
    half_angle_deg: float = 20.0,
    threshold: float = 0.143,
    fill: ArrayLike | None = None,
) -> dict:
    """``directional_resolution`` on the rfftn spectra of the (masked) half maps and their shell
    index (``core.fourier.rfft_shell_index``), for callers that use the spectra again."""

    n_shells = box_px // 2 + 1
    if fill is None:
        fill = fsc_from_rfft(ft1, ft2, shells, n_shells)
        fill[0] = 1.0
    bins, centres = direction_bins((box_px,) * 3)
    dirs = hemisphere_directions(n_directions)
    curves, voxels = conical_fsc(
        ft1, ft2, shells, n_shells, bins, centres, dirs, half_angle_deg=half_angle_deg, fill=fill
    )
    # resolution_interpolated reads Nyquist where a curve never falls below the threshold
    res = np.array([resolution_interpolated(c, threshold, box_px=box_px, pixel_size_a=pixel_size_a) for c in curves])
    crossing = [first_shell_below(c, threshold) for c in curves]
    limited = np.array([c is None for c in crossing], dtype=bool)
    # a direction is its own only where its cone held enough voxels at its crossing (elsewhere the
    # curve there is ``fill``, the global one)
    at = np.array([n_shells - 1 if c is None else c for c in crossing], dtype=np.intp)
    reported = voxels[np.arange(len(curves)), at] >= MIN_CONE_VOXELS
    freq = np.arange(n_shells) / (box_px * pixel_size_a)
    area = cfar(curves, freq)
    return {
        "directions": dirs,
        "curves": curves,
        "voxels": voxels,
        "resolution_a": res,
        "limited_by_nyquist": limited,
        "reported": reported,
        "frequency_inv_a": freq,
        "cfar": area["cfar"],
        "cfar_min_over_mean": area["min_over_mean"],
        "areas": area["areas"],
    }


def directional_resolution(
    half1: ArrayLike,
    half2: ArrayLike,
    pixel_size_a: float,
    *,
    mask: ArrayLike | None = None,
    n_directions: int = 500,
    half_angle_deg: float = 20.0,
    threshold: float = 0.143,
    fill: ArrayLike | None = None,
) -> dict:
    """Directional resolution of a pair of half maps: conical FSCs around ``n_directions`` axes of a
    hemisphere, each axis's resolution (Å) at ``threshold``, and the cFAR.

    ``mask``: multiplied into both halves first (as ``cryobox fsc`` does). ``fill``: the curve for
    cones too thin at a shell (default: the global FSC of the masked halves). Returns
    ``directions`` (n, 3), ``curves`` (n, shells), ``voxels`` (n, shells), ``resolution_a`` (n),
    ``limited_by_nyquist`` (n; those read 2 × pixel size), ``frequency_inv_a``, ``cfar``,
    ``cfar_min_over_mean`` and ``areas``.
    """
    import scipy.fft as sfft

    h1 = np.asarray(half1)
    h2 = np.asarray(half2)
    if h1.shape != h2.shape or h1.ndim != 3 or len(set(h1.shape)) != 1:
        raise ValueError(f"the half maps must be cubes of one size, got {h1.shape} and {h2.shape}")
    if not pixel_size_a > 0:
        raise ValueError(f"`pixel_size_a` must be positive, got {pixel_size_a}")
    m = 1.0 if mask is None else np.asarray(mask, dtype=np.float32)
    w = fft_workers()
    return conical_resolution(
        sfft.rfftn(h1 * m, workers=w),
        sfft.rfftn(h2 * m, workers=w),
        rfft_shell_index(h1.shape),
        h1.shape[0],
        pixel_size_a,
        n_directions=n_directions,
        half_angle_deg=half_angle_deg,
        threshold=threshold,
        fill=fill,
    )


def viewing_directions(rot_deg: ArrayLike, tilt_deg: ArrayLike) -> NDArray[np.float64]:
    """(n, 3) unit viewing directions in the map's frame from RELION's rot and tilt (the third
    row of the rotation matrix: (sin tilt cos rot, sin tilt sin rot, cos tilt); psi spins the
    image in its plane and does not move the direction)."""
    r = np.deg2rad(np.asarray(rot_deg, dtype=np.float64))
    t = np.deg2rad(np.asarray(tilt_deg, dtype=np.float64))
    return np.stack([np.sin(t) * np.cos(r), np.sin(t) * np.sin(r), np.cos(t)], axis=1)


#: the fewest views for which an SCF is computed: R = views / 100 must be at least one voxel
SCF_MIN_VIEWS = 100
# the fewest Fourier voxels a cone's shell must hold for its FSC to be read: over n voxels an FSC
# near the 0.143 threshold scatters by about (1 - 0.143^2) / sqrt(2 n), 0.1 at n = 50
MIN_CONE_VOXELS = 50


def sampling_compensation_factor(
    views: ArrayLike,
    *,
    fourier_radius: float | None = None,
    max_views: int = 10_000,
    seed: int = 0,
) -> dict:
    """SCF and SCF* of a set of viewing directions (Baldwin & Lyumkis 2020; see the module docstring).

    ``fourier_radius``: R, the shell (voxels) on which the sampling is counted; default 50, lowered
    to views / 100 for fewer than 5,000 views. At most ``max_views`` views are used (a seeded random
    subset). Returns ``scf``, ``scf_star``, the counts ``sampling`` on the ``directions``, the
    fraction of directions never sampled and the radius used.
    """
    v = np.asarray(views, dtype=np.float64).reshape(-1, 3)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    if v.shape[0] > max_views:
        v = v[np.random.default_rng(seed).choice(v.shape[0], max_views, replace=False)]
    if v.shape[0] < SCF_MIN_VIEWS:
        raise ValueError(f"an SCF needs at least {SCF_MIN_VIEWS} views, not {v.shape[0]}")
    r = float(fourier_radius) if fourier_radius is not None else min(50.0, v.shape[0] / 100.0)
    if r < 1:
        raise ValueError(f"the Fourier radius must be at least 1 voxel, not {r:g}")
    k = hemisphere_directions(min(int(2 * np.pi * r * r), 5000))
    counts = np.zeros(k.shape[0])
    for start in range(0, v.shape[0], 5_000):
        counts += (np.abs(v[start : start + 5_000] @ k.T) * r < 0.5).sum(axis=0)
    sampled = counts > 0
    p = float(sampled.mean())
    q = 1.0 - p
    mean_s = float(counts.mean())
    scf = float(1.0 / (mean_s * (1.0 / counts[sampled]).mean()))
    scf_star = scf / (1.0 + (q / p) * mean_s * scf / 2.0)
    return {
        "scf": scf,
        "scf_star": float(scf_star),
        "sampling": counts,
        "directions": k,
        "unsampled_fraction": q,
        "fourier_radius": r,
        "n_views_used": int(v.shape[0]),
    }


def radial_power(volume_ft: NDArray, shells: NDArray, n_shells: int) -> NDArray[np.float64]:
    """Mean |F|² per shell of an rfftn spectrum (each rfft voxel once, as the FSC counts them)."""
    s = shells.reshape(-1)
    f = np.asarray(volume_ft).reshape(-1)
    keep = s < n_shells
    p = np.bincount(s[keep], weights=(f.real[keep] ** 2 + f.imag[keep] ** 2), minlength=n_shells)
    n = np.bincount(s[keep], minlength=n_shells)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, p / np.maximum(n, 1), 0.0)


def fsc_dips(fsc: ArrayLike, *, min_rise: float = 0.05, start: int = 2) -> list[dict]:
    """Shells where the FSC falls to a local minimum and then rises again by at least
    ``min_rise`` (a "hill" after the dip): the dip's shell and the peak's shell after it."""
    c = np.asarray(fsc, dtype=np.float64)
    out = []
    i = start
    while i < c.size - 1:
        if c[i] < c[i - 1] and c[i] <= c[i + 1]:
            j = i + 1
            while j + 1 < c.size and c[j + 1] >= c[j]:
                j += 1
            if c[j] - c[i] >= min_rise:
                out.append({"dip_shell": int(i), "peak_shell": int(j), "dip_fsc": float(c[i]), "peak_fsc": float(c[j])})
            i = j + 1
        else:
            i += 1
    return out
