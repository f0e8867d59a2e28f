"""Box-size physics: delocalisation, CTF aliasing, FFT-friendly sizes and the box advisor.

References
----------
- Rosenthal P.B. & Henderson R. (2003) J. Mol. Biol. 333:721-745: the signal of a particle of
  diameter D is spread by the CTF over D + 2 lambda dF / d at resolution d, so a box of that size
  keeps the delocalised signal (here with Cs included: D + 2 max_{k <= 1/d} R(k), R(k) =
  |lambda df k - Cs lambda^3 k^3|).
- CTF aliasing: on the Fourier grid of a box of B px at pixel size p (spacing 1 / (B p)) the CTF
  phase chi(k) changes by |d chi / d k| / (B p) per Fourier pixel, with d chi / d k =
  2 pi (lambda df k - Cs lambda^3 k^3); it aliases where that exceeds pi, i.e. where
  B p < 2 R(k). CTF^2 (CTF-premultiplied data) oscillates twice as fast: B p < 4 R(k).

Per particle, the defocus used is the larger of defocus U and V: the CTF oscillates fastest
along that direction, so a box that samples it there samples it everywhere. All functions
are pure numpy and vectorised over particles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryobox.core.optics import electron_wavelength_a, max_local_oscillation_a

__all__ = [
    "rosenthal_henderson_box_a",
    "aliasing_free_box_a",
    "aliasing_limited_resolution_a",
    "box_origins",
    "edge_clipped",
    "cryosparc_window_diameters_a",
    "is_fft_friendly",
    "fft_friendly_sizes",
    "next_fft_friendly_size",
    "BoxCandidate",
    "BoxAdvice",
    "advise_box",
]


def _check_positive(name: str, value: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return arr


def rosenthal_henderson_box_a(
    diameter_a: ArrayLike,
    resolution_a: ArrayLike,
    *,
    defocus_a: ArrayLike,
    voltage_kv: ArrayLike,
    cs_mm: ArrayLike = 0.0,
) -> NDArray[np.float64] | float:
    """Box (Å) that holds a particle's signal delocalised by the CTF (Rosenthal & Henderson 2003).

    B = D + 2 max_{k <= 1/d} |lambda dF k - Cs lambda^3 k^3|; with ``cs_mm=0`` this is the
    classic B = D + 2 lambda dF / d. Broadcasts over all arguments.
    """
    d = _check_positive("`diameter_a`", diameter_a)
    res = _check_positive("`resolution_a`", resolution_a)
    out = d + 2.0 * max_local_oscillation_a(1.0 / res, defocus_a=np.abs(defocus_a), voltage_kv=voltage_kv, cs_mm=cs_mm)
    return float(out) if np.ndim(out) == 0 else out


def aliasing_free_box_a(
    resolution_a: ArrayLike,
    *,
    defocus_a: ArrayLike,
    voltage_kv: ArrayLike,
    cs_mm: ArrayLike,
    ctf_power: int = 1,
) -> NDArray[np.float64] | float:
    """Smallest box (Å) whose Fourier grid samples the CTF (``ctf_power=2``: CTF^2) without
    aliasing at every frequency up to 1 / ``resolution_a``: 2 * power * max_{k <= 1/d} R(k)."""
    if ctf_power not in (1, 2):
        raise ValueError(f"ctf_power must be 1 (CTF) or 2 (CTF^2), got {ctf_power}")
    res = _check_positive("`resolution_a`", resolution_a)
    out = (
        2.0
        * ctf_power
        * max_local_oscillation_a(1.0 / res, defocus_a=np.abs(defocus_a), voltage_kv=voltage_kv, cs_mm=cs_mm)
    )
    return float(out) if np.ndim(out) == 0 else out


def aliasing_limited_resolution_a(
    box_px: ArrayLike,
    pixel_size_a: ArrayLike,
    *,
    defocus_a: ArrayLike,
    voltage_kv: ArrayLike,
    cs_mm: ArrayLike,
    ctf_power: int = 1,
) -> NDArray[np.float64] | float:
    """Finest resolution (Å) to which a box samples the CTF without aliasing.

    The largest K such that 2 * power * R(k) <= B p for every k <= K, capped at Nyquist (2 p).
    Found by bisection on the monotone max_{k <= K} R(k); broadcasts over all arguments.
    """
    if ctf_power not in (1, 2):
        raise ValueError(f"ctf_power must be 1 (CTF) or 2 (CTF^2), got {ctf_power}")
    box_a = _check_positive("`box_px`", box_px) * _check_positive("`pixel_size_a`", pixel_size_a)
    nyquist = 0.5 / np.asarray(pixel_size_a, dtype=np.float64)
    df = np.abs(np.asarray(defocus_a, dtype=np.float64))
    shape = np.broadcast_shapes(box_a.shape, nyquist.shape, df.shape, np.shape(voltage_kv), np.shape(cs_mm))
    lo = np.zeros(shape)
    hi = np.broadcast_to(nyquist, shape).astype(np.float64)

    def ok(k):
        need = 2.0 * ctf_power * max_local_oscillation_a(k, defocus_a=df, voltage_kv=voltage_kv, cs_mm=cs_mm)
        return need <= box_a

    fits_at_nyquist = ok(hi)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    k_limit = np.where(fits_at_nyquist, np.broadcast_to(nyquist, shape), lo)
    with np.errstate(divide="ignore"):
        out = np.where(k_limit > 0, 1.0 / k_limit, np.inf)
    return float(out) if out.ndim == 0 else out


def box_origins(coord_px: ArrayLike, box_px: int) -> NDArray[np.int64]:
    """First pixel of each box along one axis: int(coord) - N//2. RELION truncates the
    coordinate, and the box centre is pixel N//2 (RELION and cryoSPARC)."""
    return np.trunc(np.asarray(coord_px, dtype=np.float64)).astype(np.int64) - int(box_px) // 2


def edge_clipped(
    coord_x_px: ArrayLike,
    coord_y_px: ArrayLike,
    *,
    micrograph_width_px: ArrayLike,
    micrograph_height_px: ArrayLike,
    box_px: int,
) -> NDArray[np.bool_]:
    """True where a box of ``box_px`` centred on the coordinate leaves its micrograph.

    The box spans [int(x) - N//2, int(x) - N//2 + N) on each axis (``box_origins``), exactly the
    box ``cryobox extract`` and relion_preprocess cut. Programs that drop such particles
    (cryoSPARC) lose them.
    """
    n = int(box_px)
    x0 = box_origins(coord_x_px, n)
    y0 = box_origins(coord_y_px, n)
    return (
        (x0 < 0) | (y0 < 0) | (x0 + n > np.asarray(micrograph_width_px)) | (y0 + n > np.asarray(micrograph_height_px))
    )


_SMALL_PRIMES = (2, 3, 5, 7)


def is_fft_friendly(n: int) -> bool:
    """True for even sizes whose only prime factors are 2, 3, 5 and 7."""
    n = int(n)
    if n < 2 or n % 2:
        return False
    for p in _SMALL_PRIMES:
        while n % p == 0:
            n //= p
    return n == 1


def fft_friendly_sizes(min_px: int, max_px: int) -> list[int]:
    """All FFT-friendly (even, 7-smooth) sizes in [min_px, max_px]."""
    return [n for n in range(max(2, int(min_px)), int(max_px) + 1) if is_fft_friendly(n)]


def next_fft_friendly_size(n: float) -> int:
    """The smallest FFT-friendly size >= n."""
    m = max(2, int(np.ceil(n)))
    while not is_fft_friendly(m):
        m += 1
    return m


@dataclass(frozen=True)
class BoxCandidate:
    """One candidate box and what it does for a particle set."""

    box_px: int
    box_a: float
    aliasing_free_fraction: float
    ctf2_aliasing_free_fraction: float
    aliasing_limited_resolution_p95_a: float
    ctf2_aliasing_limited_resolution_p95_a: float
    delocalisation_fraction: float
    edge_loss_fraction: float | None
    relative_cost_2d: float
    relative_cost_3d: float
    user_box: bool = False
    cryosparc_window_inner_a: float = float("nan")
    cryosparc_window_outer_a: float = float("nan")
    cryosparc_inner_fraction_same_a: float = float("nan")
    cryosparc_outer_fraction_same_a: float = float("nan")


# cryoSPARC's real-space window of particle images in refinement (Homogeneous / Non-uniform
# Refinement, "Window dataset (real-space)": parameters prepare_window_inner_radius and
# prepare_window_outer_radius, fractions of the box's half-width; defaults 0.85 and 0.99: full
# weight inside the inner radius, a soft cosine fall to 0 at the outer one. cryoSPARC guide, job
# reference for Homogeneous Refinement; the cryoSPARC forum, "Exact meaning of Window inner radius
# and Window outer radius in refinement" (2020), confirms they window the particle images.)
CRYOSPARC_WINDOW_INNER = 0.85
CRYOSPARC_WINDOW_OUTER = 0.99


def cryosparc_window_diameters_a(
    box_px: int,
    pixel_size_a: float,
    *,
    inner_fraction: float = CRYOSPARC_WINDOW_INNER,
    outer_fraction: float = CRYOSPARC_WINDOW_OUTER,
) -> tuple[float, float]:
    """Diameters (Å) of the full-weight disc and of the window's outer edge that cryoSPARC's
    real-space window gives at ``box_px`` (px) and ``pixel_size_a`` (Å/px): fraction x box in Å."""
    box_a = float(box_px) * float(pixel_size_a)
    return inner_fraction * box_a, outer_fraction * box_a


@dataclass(frozen=True)
class BoxAdvice:
    """The advisor's answer: per-candidate table, key boxes and a recommendation with reasons."""

    diameter_a: float
    resolution_a: float
    pixel_size_a: float
    n_particles: int
    wavelength_a: float
    defocus_max_a: float
    defocus_p95_a: float
    rosenthal_henderson_box_a: float
    aliasing_free_box_a: float
    ctf2_aliasing_free_box_a: float
    recommended_refine_box_px: int
    recommended_extract_box_px: int
    premultiply: bool
    candidates: list[BoxCandidate]
    reasons: list[str] = field(default_factory=list)  # sentences, added by report.text.advice_sentences
    warnings: list[str] = field(default_factory=list)
    window_reference_box_px: int | None = None
    min_refine_factor: float = 1.5
    required_fraction: float = 0.99


def _fraction_at_most(sorted_values: NDArray, threshold: float) -> float:
    if sorted_values.size == 0:
        return float("nan")
    return float(np.searchsorted(sorted_values, threshold, side="right") / sorted_values.size)


def _thin(sizes: list[int], keep: set[int], min_ratio: float) -> list[int]:
    out: list[int] = []
    for n in sizes:
        if n in keep or not out or n >= out[-1] * min_ratio:
            out.append(n)
    return out


def advise_box(
    *,
    diameter_a: float,
    resolution_a: float,
    pixel_size_a: float,
    defocus_u_a: ArrayLike,
    defocus_v_a: ArrayLike,
    voltage_kv: ArrayLike,
    cs_mm: ArrayLike,
    coord_x_px: ArrayLike | None = None,
    coord_y_px: ArrayLike | None = None,
    micrograph_width_px: ArrayLike | None = None,
    micrograph_height_px: ArrayLike | None = None,
    min_refine_factor: float = 1.5,
    required_fraction: float = 0.99,
    min_candidate_step: float = 1.04,
    user_boxes_px: tuple[int, ...] = (),
) -> BoxAdvice:
    """Candidate boxes for a particle set and the recommended refine and extract boxes.

    Parameters are per particle (arrays of one length; scalars broadcast): defocus U/V (Å),
    voltage (kV), Cs (mm); one pixel size (Å/px) for the set. Coordinates (px) and micrograph
    sizes (px) are optional; with them the advisor reports edge losses.

    Candidates are FFT-friendly even sizes from about 1.2 D to past the larger of the
    Rosenthal & Henderson box and the CTF-aliasing-free box (at the highest defocus), thinned to
    steps of at least ``min_candidate_step``. The refine box is the smallest FFT-friendly box
    >= ``min_refine_factor`` x D whose CTF is alias-free to the target for at least
    ``required_fraction`` of the particles. The extract box is the smallest FFT-friendly box
    holding the delocalised signal of ``required_fraction`` of the particles; when it is larger
    than the refine box, extract there, premultiply by the CTF and crop to the refine box.

    ``user_boxes_px`` (px, any size >= 2, odd or not FFT-friendly included) are always in the
    table and marked ``user_box``. Every row also gives the diameters (Å) of cryoSPARC's default
    real-space window at that box (``cryosparc_window_diameters_a``) and the inner / outer fractions
    that would give every box the window in Å of the reference box: the smaller of the smallest
    user box and the refine box (``window_reference_box_px``).
    """
    diameter_a, resolution_a, pixel_size_a = _checked_targets(diameter_a, resolution_a, pixel_size_a)
    n, df_max, kv, cs = _per_particle(
        defocus_u_a, defocus_v_a, voltage_kv, cs_mm, coord_x_px, coord_y_px, micrograph_width_px, micrograph_height_px
    )
    k_target = 1.0 / resolution_a

    def uniform_or_array(a):  # one optics setting (the usual case) -> a scalar: less work per particle
        return float(a[0]) if a.size and a.min() == a.max() else a

    # Per-particle needs in Å, sorted once: a candidate's fraction is one searchsorted.
    osc = max_local_oscillation_a(
        k_target, defocus_a=df_max, voltage_kv=uniform_or_array(kv), cs_mm=uniform_or_array(cs)
    )
    osc_sorted = np.sort(osc)  # the three needs are increasing maps of osc: one sort serves all
    need_ctf = 2.0 * osc_sorted
    need_ctf2 = 4.0 * osc_sorted
    need_deloc = diameter_a + 2.0 * osc_sorted

    i_max = int(np.argmax(df_max))
    rh_box = float(diameter_a + 2.0 * osc[i_max])
    alias_box = float(2.0 * osc[i_max])
    alias2_box = float(4.0 * osc[i_max])
    p95, kv95, cs95 = float(np.percentile(df_max, 95)), float(np.median(kv)), float(np.median(cs))

    # Edge clipping needs per-particle positions; sorted "smallest box that clips" makes each
    # candidate one searchsorted too.
    pos = _edge_positions(n, coord_x_px, coord_y_px, micrograph_width_px, micrograph_height_px)
    clip_box = np.sort(_smallest_clipping_even_box(*pos)) if pos is not None else None

    friendly_lo = next_fft_friendly_size(1.2 * diameter_a / pixel_size_a)
    refine_floor = next_fft_friendly_size(min_refine_factor * diameter_a / pixel_size_a)

    def smallest_box_with(sorted_need_a: NDArray, start_px: int) -> int:
        need_a = float(np.quantile(sorted_need_a, required_fraction, method="higher"))
        return next_fft_friendly_size(max(start_px, need_a / pixel_size_a - 1e-9))

    refine_px = smallest_box_with(need_ctf, refine_floor)
    deloc_px = smallest_box_with(need_deloc, 2)
    extract_px = max(refine_px, deloc_px)
    premultiply = extract_px > refine_px

    top_px = next_fft_friendly_size(max(rh_box, alias_box, min_refine_factor * diameter_a) / pixel_size_a)
    top_px = next_fft_friendly_size(top_px * min_candidate_step + 1)
    top_px = max(top_px, extract_px)
    keep = {refine_floor, refine_px, extract_px, next_fft_friendly_size(rh_box / pixel_size_a)}
    user = sorted({int(b) for b in user_boxes_px})
    if user and user[0] < 2:
        raise ValueError(f"user boxes must be at least 2 px, got {user[0]}")
    sizes = sorted(set(_thin(fft_friendly_sizes(friendly_lo, top_px), keep, min_candidate_step)) | set(user))
    window_ref = min(user + [refine_px])  # the smallest box shown: its window fits in every larger one
    ref_inner_a, ref_outer_a = cryosparc_window_diameters_a(window_ref, pixel_size_a)

    res_p95, res2_p95 = (
        aliasing_limited_resolution_a(
            np.asarray(sizes, dtype=np.float64), pixel_size_a, defocus_a=p95, voltage_kv=kv95, cs_mm=cs95, ctf_power=k
        )
        for k in (1, 2)
    )
    candidates = _candidates(
        sizes, user, pixel_size_a, (need_ctf, need_ctf2, need_deloc), clip_box, pos, (res_p95, res2_p95),
        (ref_inner_a, ref_outer_a),
    )  # fmt: skip

    return BoxAdvice(
        diameter_a=diameter_a,
        resolution_a=resolution_a,
        pixel_size_a=pixel_size_a,
        n_particles=n,
        wavelength_a=float(electron_wavelength_a(kv95)),
        defocus_max_a=float(df_max[i_max]),
        defocus_p95_a=p95,
        rosenthal_henderson_box_a=rh_box,
        aliasing_free_box_a=alias_box,
        ctf2_aliasing_free_box_a=alias2_box,
        recommended_refine_box_px=int(refine_px),
        recommended_extract_box_px=int(extract_px),
        premultiply=bool(premultiply),
        candidates=candidates,
        window_reference_box_px=int(window_ref),
        min_refine_factor=float(min_refine_factor),
        required_fraction=float(required_fraction),
    )


def _checked_targets(diameter_a, resolution_a, pixel_size_a) -> tuple[float, float, float]:
    """The particle diameter, target resolution and pixel size (Å), positive, the target no finer
    than Nyquist (ValueError naming the parameter otherwise)."""
    diameter_a = float(_check_positive("`diameter_a`", diameter_a))
    resolution_a = float(_check_positive("`resolution_a`", resolution_a))
    pixel_size_a = float(_check_positive("`pixel_size_a`", pixel_size_a))
    if resolution_a < 2.0 * pixel_size_a:
        raise ValueError(
            f"target resolution {resolution_a} Å is finer than Nyquist ({2 * pixel_size_a:.3f} Å at "
            f"{pixel_size_a} Å/px)"
        )
    return diameter_a, resolution_a, pixel_size_a


def _per_particle(defocus_u_a, defocus_v_a, voltage_kv, cs_mm, *positions):
    """The number of particles (all arrays broadcast to one length; ValueError for none), and
    each particle's larger defocus (Å), voltage (kV) and Cs (mm) as arrays of that length."""
    du = np.abs(np.asarray(defocus_u_a, dtype=np.float64))
    dv = np.abs(np.asarray(defocus_v_a, dtype=np.float64))
    per_particle = [du, dv, voltage_kv, cs_mm] + [v for v in positions if v is not None]
    n = int(np.broadcast(*[np.asarray(v) for v in per_particle]).size)
    if n == 0:
        raise ValueError("no particles to advise on")
    df_max = np.broadcast_to(np.maximum(du, dv), (n,))
    kv = np.broadcast_to(np.asarray(voltage_kv, dtype=np.float64), (n,))
    cs = np.broadcast_to(np.asarray(cs_mm, dtype=np.float64), (n,))
    return n, df_max, kv, cs


def _edge_positions(n: int, coord_x_px, coord_y_px, micrograph_width_px, micrograph_height_px):
    """Every particle's (x, y) and its micrograph's (width, height) in px, broadcast to ``n``;
    None unless all are known (then edge losses are counted)."""
    if coord_x_px is None or micrograph_width_px is None:
        return None
    x, y, w, h = (
        np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
        for v in (coord_x_px, coord_y_px, micrograph_width_px, micrograph_height_px)
    )
    known = np.isfinite(x) & np.isfinite(y) & np.isfinite(w) & np.isfinite(h) & (w > 0) & (h > 0)
    return (x, y, w, h) if known.all() else None


def _candidates(sizes, user, pixel_size_a, needs, clip_box, pos, res_p95s, ref_window_a) -> list:
    """One ``BoxCandidate`` per size: the fractions of particles whose needs (sorted, in Å: CTF,
    CTF^2, delocalisation) the box meets, edge losses, the 95th-percentile aliasing limits, costs,
    and cryoSPARC's window at the box and the fractions that keep the reference box's window."""
    need_ctf, need_ctf2, need_deloc = needs
    res_p95, res2_p95 = res_p95s
    ref_inner_a, ref_outer_a = ref_window_a
    base = float(sizes[0])
    candidates = []
    for i, b in enumerate(sizes):
        box_a = b * pixel_size_a
        edge = None
        if clip_box is not None and b % 2 == 0:
            # Particles clip when the box reaches their limit: count those with limit <= b.
            edge = _fraction_at_most(clip_box, b)
        elif clip_box is not None:  # an odd user box: count directly
            x, y, w, h = pos
            edge = float(edge_clipped(x, y, micrograph_width_px=w, micrograph_height_px=h, box_px=b).mean())
        inner_a, outer_a = cryosparc_window_diameters_a(b, pixel_size_a)
        candidates.append(
            BoxCandidate(
                box_px=int(b),
                box_a=box_a,
                aliasing_free_fraction=_fraction_at_most(need_ctf, box_a),
                ctf2_aliasing_free_fraction=_fraction_at_most(need_ctf2, box_a),
                aliasing_limited_resolution_p95_a=float(res_p95[i]),
                ctf2_aliasing_limited_resolution_p95_a=float(res2_p95[i]),
                delocalisation_fraction=_fraction_at_most(need_deloc, box_a),
                edge_loss_fraction=edge,
                relative_cost_2d=(b / base) ** 2,
                relative_cost_3d=(b / base) ** 3,
                user_box=b in user,
                cryosparc_window_inner_a=inner_a,
                cryosparc_window_outer_a=outer_a,
                cryosparc_inner_fraction_same_a=ref_inner_a / box_a,
                cryosparc_outer_fraction_same_a=ref_outer_a / box_a,
            )
        )

    return candidates


def _smallest_clipping_even_box(x, y, w, h) -> NDArray[np.float64]:
    """Per particle, the smallest even box (px) that leaves the micrograph (see ``edge_clipped``).

    For an even box N the span is [r - N/2, r + N/2) with r = int(coord); it clips when
    N/2 > r or r + N/2 > size, i.e. N > 2 r or N > 2 (size - r). The smallest even N clipping is
    2 * (min(r, size - r) + 1) when r >= 0 (and 0 when the coordinate is already outside).
    """
    rx = np.trunc(x)
    ry = np.trunc(y)
    margin = np.minimum.reduce([rx, ry, w - rx, h - ry])
    return np.where(margin < 0, 0.0, 2.0 * (np.floor(margin) + 1.0))
