"""Why one box beats another: each cause as a factor on the spectral signal-to-noise ratio, and
its effect on the resolution in Å.

The model (every piece is stated in docs/commands/explain.md with its source):

- **Signal kept** (``signal_kept_table``). The CTF moves the signal of spatial frequency k by
  ±s(k) along its direction, s(k) = |λ Δf k − Cs λ³ k³| (Å): the local frequency of the CTF's
  phase χ(k) = π λ Δf k² − π/2 Cs λ³ k⁴ is dχ/dk / 2π. The particle's signal is that of a ball
  of atoms of diameter D centred in the box, whose projected signal power is proportional to its
  thickness, p(x) ∝ √(R² − |x|²) (or a uniform disc); the fraction of it that a window w (the box,
  a soft circular window, a mask) keeps after the shift is ∫ p(x − s u) w(x) dx / ∫ p(x) dx,
  averaged over directions u. It is tabulated once per window against s, then looked up per
  particle (by mean defocus) and frequency.
- **CTF aliasing.** A box of B px at p Å/px samples the CTF without aliasing while
  B p ≥ 2 s(k) (CTF) or B p ≥ 4 s(k) (CTF², what premultiplied particles carry): the signal of a
  frequency beyond that onset lies beyond the box's edge, which the signal-kept curve of the box
  already counts; CTF² aliasing on a cropped grid is a loss of its own.
- **Prediction.** In a reconstruction the part of a frequency's signal that matches the CTF
  model is scaled by the kept fraction K (power K²); the rest of the windowed signal no longer
  matches the model but is the same in both half maps, so the FSC counts it too (power up to K).
  The FSC's SSNR therefore scales by K^γ with 1 ≤ γ ≤ 2; ``SSNR_EXPONENT`` = 1.5 is the value
  that simulated data give (benchmarks/explain_prediction.py, docs/commands/explain.md), and by
  the number of particles N (SSNR ∝ N K^γ). A measured FSC (half maps: SSNR = FSC / (1 − FSC))
  at one box gives the others through those ratios; without one, SSNR(k) ∝ N exp(−B k² / 2),
  which is the ResLog relation 1/d² = (2/B) ln N + c (Rosenthal & Henderson 2003).
- **Solvent in an unmasked FSC.** Noise spreads over the whole box, the particle's signal over its
  volume: the unmasked FSC's SSNR is the masked one times the particle's volume fraction
  (π D³ / 6) / (B p)³.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.typing import ArrayLike, NDArray

from cryobox.core.optics import electron_wavelength_a

#: γ in SSNR ∝ N K^γ (see the module docstring): between the coherent-signal bound 2 and the
#: reproducible-power bound 1; 1.5 as measured on simulated balls (benchmarks/explain_prediction.py)
SSNR_EXPONENT = 1.5

__all__ = [
    "SSNR_EXPONENT",
    "Window",
    "delocalisation_shift_a",
    "window_image",
    "particle_profile",
    "signal_kept_table",
    "kept_fraction",
    "kept_quantiles",
    "ssnr_from_fsc",
    "fsc_from_ssnr",
    "crossing_resolution_a",
    "model_ssnr",
    "bfactor_from_fsc",
    "reslog_resolution_a",
    "particle_volume_fraction",
    "neighbour_counts",
    "edge_area_fraction",
    "highest_defocus_a",
]


@dataclass(frozen=True)
class Window:
    """A real-space window applied to particle images, in Å.

    ``kind``: ``"box"`` (the square box itself), ``"circle"`` (full weight to ``inner_a``,
    raised-cosine fall to zero at ``outer_a``: cryoSPARC's window with radii = fraction × box / 2,
    RELION's particle mask with a soft edge). ``box_a``: the box edge (Å); every window is cut by it.
    """

    kind: str
    box_a: float
    inner_a: float = 0.0  # radius (Å) of full weight
    outer_a: float = 0.0  # radius (Å) where the weight reaches 0

    @staticmethod
    def box(box_px: int, pixel_size_a: float) -> Window:
        return Window("box", box_px * pixel_size_a)

    @staticmethod
    def cryosparc(box_px: int, pixel_size_a: float, inner: float = 0.85, outer: float = 0.99) -> Window:
        """cryoSPARC's refinement window: radii ``inner`` and ``outer`` × box / 2 (defaults 0.85, 0.99)."""
        b = box_px * pixel_size_a
        return Window("circle", b, inner * b / 2, outer * b / 2)

    @staticmethod
    def relion_mask(box_px: int, pixel_size_a: float, mask_diameter_a: float, edge_px: float = 5.0) -> Window:
        """RELION's particle mask on the images: a circle of ``--particle_diameter`` with a soft
        edge of ``edge_px`` pixels (RELION's ``--maskedge`` default, 5 px), inside the box."""
        b = box_px * pixel_size_a
        r = mask_diameter_a / 2
        return Window("circle", b, r, r + edge_px * pixel_size_a)


def delocalisation_shift_a(k_inv_a: ArrayLike, *, defocus_a: ArrayLike, voltage_kv: float, cs_mm: float) -> NDArray:
    """|λ Δf k − Cs λ³ k³| (Å): how far the CTF moves the signal of frequency ``k_inv_a`` (1/Å)."""
    lam = float(electron_wavelength_a(voltage_kv))
    k = np.asarray(k_inv_a, dtype=np.float64)
    return np.abs(lam * np.asarray(defocus_a, dtype=np.float64) * k - cs_mm * 1e7 * lam**3 * k**3)


def window_image(window: Window, step_a: float, n: int) -> NDArray[np.float64]:
    """The window on an n × n grid of ``step_a`` Å, centred at n // 2."""
    x = (np.arange(n) - n // 2) * step_a
    xx, yy = np.meshgrid(x, x, indexing="xy")
    half = window.box_a / 2
    inside = (np.abs(xx) < half) & (np.abs(yy) < half)
    if window.kind == "box":
        return inside.astype(np.float64)
    r = np.hypot(xx, yy)
    width = max(window.outer_a - window.inner_a, 1e-9)
    t = np.clip((r - window.inner_a) / width, 0.0, 1.0)
    return inside * 0.5 * (1.0 + np.cos(np.pi * t))


def particle_profile(r_a: NDArray, diameter_a: float, profile: str = "ball") -> NDArray[np.float64]:
    """Where a particle's high-resolution signal lies in projection, at radius ``r_a`` (Å) from
    its centre: ``"ball"``, the projection of a ball of atoms, whose signal power is proportional
    to its thickness √(R² − r²); ``"disc"``, a uniform disc."""
    r = diameter_a / 2
    if profile == "disc":
        return (r_a <= r).astype(np.float64)
    if profile == "ball":
        return np.sqrt(np.clip(r * r - r_a * r_a, 0.0, None))
    raise ValueError(f"profile must be 'ball' or 'disc', got {profile!r}")


def signal_kept_table(
    window: Window,
    diameter_a: float,
    *,
    profile: str = "ball",
    max_shift_a: float | None = None,
    n_directions: int = 36,
) -> tuple[NDArray, NDArray]:
    """The fraction of a particle's signal (``particle_profile``, diameter ``diameter_a``) that
    ``window`` keeps when the particle's image is moved by s Å, averaged over directions:
    (shifts in Å, fractions).

    Computed by one FFT correlation of the disc with the window on a grid of about D / 100 Å,
    then sampled on circles of radius s (bilinear); the fraction at s = 0 is the window's weight
    over the disc.
    """
    r = diameter_a / 2
    reach = max(window.box_a * math.sqrt(0.5) + r, window.outer_a + r)
    max_shift_a = reach if max_shift_a is None else max_shift_a
    step = min(diameter_a, window.box_a) / 100.0
    n = int(2 ** math.ceil(math.log2(2 * (reach + max_shift_a) / step + 4)))
    x = (np.arange(n) - n // 2) * step
    xx, yy = np.meshgrid(x, x, indexing="xy")
    disc = particle_profile(np.hypot(xx, yy), diameter_a, profile)
    w = window_image(window, step, n)
    # C(y) = sum_x disc(x - y) w(x): the window's weight on the disc moved by y
    c = sfft.irfft2(sfft.rfft2(w) * np.conj(sfft.rfft2(disc)), s=(n, n))
    c = np.roll(c, (n // 2, n // 2), axis=(0, 1)) / disc.sum()
    shifts = np.arange(0.0, max_shift_a + step, step / 2)
    theta = (np.arange(n_directions) + 0.5) * (2 * np.pi / n_directions)
    pixel_a = shifts[:, None] * np.cos(theta)[None, :] / step + n // 2
    py = shifts[:, None] * np.sin(theta)[None, :] / step + n // 2
    x0, y0 = np.floor(pixel_a).astype(int), np.floor(py).astype(int)
    fx, fy = pixel_a - x0, py - y0
    x0, y0 = np.clip(x0, 0, n - 2), np.clip(y0, 0, n - 2)
    vals = (
        c[y0, x0] * (1 - fx) * (1 - fy)
        + c[y0, x0 + 1] * fx * (1 - fy)
        + c[y0 + 1, x0] * (1 - fx) * fy
        + c[y0 + 1, x0 + 1] * fx * fy
    )
    return shifts, np.clip(vals.mean(axis=1), 0.0, 1.0)


def kept_fraction(table: tuple[NDArray, NDArray], shift_a: ArrayLike) -> NDArray:
    """Look a shift (Å) up in a ``signal_kept_table`` (beyond its end: 0)."""
    s, f = table
    return np.interp(np.asarray(shift_a, dtype=np.float64), s, f, right=0.0)


def kept_quantiles(
    table: tuple[NDArray, NDArray],
    k_inv_a: NDArray,
    *,
    defocus_a: NDArray,
    weights: NDArray,
    voltage_kv: float,
    cs_mm: float,
    quantiles=(0.5, 0.1),
) -> tuple[NDArray, dict[float, NDArray]]:
    """Per frequency: the particle-weighted mean kept fraction and its quantiles over particles.

    ``defocus_a``: a grid of (mean) defoci with ``weights`` the number of particles at each (the
    work grows with the grid, not with the number of particles)."""
    s = delocalisation_shift_a(k_inv_a[:, None], defocus_a=defocus_a[None, :], voltage_kv=voltage_kv, cs_mm=cs_mm)
    f = kept_fraction(table, s)  # (n_k, n_defocus)
    w = np.asarray(weights, dtype=np.float64)
    mean = (f * w).sum(axis=1) / w.sum()
    out = {}
    for q in quantiles:
        order = np.argsort(f, axis=1)
        fs = np.take_along_axis(f, order, axis=1)
        cw = np.cumsum(w[order], axis=1) / w.sum()
        idx = np.argmax(cw >= q - 1e-12, axis=1)
        out[q] = fs[np.arange(len(k_inv_a)), idx]
    return mean, out


def ssnr_from_fsc(fsc: ArrayLike) -> NDArray:
    """Half-map spectral SNR from an FSC: FSC / (1 − FSC), clipped to [0, 1e6]."""
    f = np.clip(np.asarray(fsc, dtype=np.float64), 0.0, 1.0 - 1e-6)
    return np.clip(f / (1.0 - f), 0.0, 1e6)


def fsc_from_ssnr(ssnr: ArrayLike) -> NDArray:
    s = np.asarray(ssnr, dtype=np.float64)
    return s / (1.0 + s)


def crossing_resolution_a(k_inv_a: ArrayLike, fsc: ArrayLike, threshold: float = 0.143) -> float:
    """The resolution (Å) where a curve first falls below ``threshold`` after its first shell,
    interpolated linearly between shells; the last frequency when it never does; ∞ when it never
    rises above it."""
    k = np.asarray(k_inv_a, dtype=np.float64)
    f = np.asarray(fsc, dtype=np.float64)
    if f.size < 2 or f[1] < threshold:
        return math.inf
    below = np.nonzero(f[1:] < threshold)[0]
    if below.size == 0:
        return float(1.0 / k[-1])
    i = int(below[0]) + 1
    if f[i - 1] == f[i]:
        return float(1.0 / k[i])
    t = (f[i - 1] - threshold) / (f[i - 1] - f[i])
    kc = k[i - 1] + t * (k[i] - k[i - 1])
    return float(1.0 / kc)


def model_ssnr(k_inv_a: ArrayLike, *, resolution_a: float, bfactor_a2: float, threshold: float = 0.143) -> NDArray:
    """SSNR(k) = A exp(−B k² / 2), with A so that the FSC crosses ``threshold`` at ``resolution_a``."""
    k = np.asarray(k_inv_a, dtype=np.float64)
    s0 = threshold / (1 - threshold)
    return s0 * np.exp(-bfactor_a2 / 2.0 * (k**2 - 1.0 / resolution_a**2))


def bfactor_from_fsc(k_inv_a: ArrayLike, fsc: ArrayLike) -> float | None:
    """B (Å²) from the slope of ln SSNR against k² where the FSC lies between 0.9 and 0.143
    (ln SSNR = c − B k² / 2); None when fewer than 3 shells qualify or the slope is not negative."""
    k = np.asarray(k_inv_a, dtype=np.float64)
    f = np.asarray(fsc, dtype=np.float64)
    use = (f < 0.9) & (f > 0.143) & (k > 0)
    if use.sum() < 3:
        return None
    slope = np.polyfit(k[use] ** 2, np.log(ssnr_from_fsc(f[use])), 1)[0]
    return float(-2.0 * slope) if slope < 0 else None


def reslog_resolution_a(resolution_a: float, n_from: float, n_to: float, bfactor_a2: float) -> float:
    """ResLog (Rosenthal & Henderson 2003): 1/d² = (2/B) ln N + c, so going from ``n_from`` to
    ``n_to`` particles moves 1/d² by (2/B) ln(n_to / n_from)."""
    inv2 = 1.0 / resolution_a**2 + 2.0 / bfactor_a2 * math.log(n_to / n_from)
    return float(1.0 / math.sqrt(inv2)) if inv2 > 0 else math.inf


def particle_volume_fraction(diameter_a: float, box_a: float) -> float:
    """A ball of ``diameter_a`` as a fraction of a cubic box of edge ``box_a``."""
    return float(min(1.0, math.pi / 6 * diameter_a**3 / box_a**3))


def neighbour_counts(x_a: NDArray, y_a: NDArray, group: NDArray, radii_a: dict, *, max_queries: int = 200_000) -> dict:
    """Per named region, over particles: the fraction that has another picked particle whose
    centre lies in it, and the mean number of such neighbours.

    ``radii_a``: name -> (radius in Å, metric), metric ``"circle"`` (Euclidean) or ``"square"``
    (the box: |dx|, |dy| < radius). Particles of different ``group`` (micrograph, an integer id)
    never count. With more than ``max_queries`` particles, every n-th micrograph (by id) is
    counted, each whole (deterministic, exact within each); one k-d tree over those particles with
    their micrographs set apart."""
    from scipy.spatial import cKDTree

    x, y = np.asarray(x_a, dtype=np.float64), np.asarray(y_a, dtype=np.float64)
    g = np.asarray(group)
    if g.dtype.kind not in "iu":
        g = np.unique(g, return_inverse=True)[1]
    step = max(1, math.ceil(len(x) / max_queries))
    if step > 1:
        use = g % step == 0
        x, y, g = x[use], y[use], g[use]
    span = float(max(np.ptp(x) if x.size else 0.0, np.ptp(y) if y.size else 0.0)) + 4 * max(
        r for r, _ in radii_a.values()
    )
    pts = np.column_stack([x + g * span * 2.0, y])
    tree = cKDTree(pts)
    out = {}
    for name, (r, metric) in radii_a.items():
        counts = tree.query_ball_point(pts, r, p=np.inf if metric == "square" else 2.0, return_length=True, workers=-1)
        counts = np.asarray(counts) - 1  # itself
        out[name] = {"fraction": float((counts > 0).mean()) if len(counts) else 0.0, "mean": float(counts.mean())}
    return out


def edge_area_fraction(
    x_px: NDArray, y_px: NDArray, width_px: NDArray, height_px: NDArray, box_px: int
) -> NDArray[np.float64]:
    """Per particle: the fraction of its box (centred on the coordinate) that lies beyond the
    micrograph's edge."""
    half = box_px / 2.0
    ox = np.clip(np.minimum(x_px + half, width_px) - np.maximum(x_px - half, 0.0), 0.0, box_px)
    oy = np.clip(np.minimum(y_px + half, height_px) - np.maximum(y_px - half, 0.0), 0.0, box_px)
    return 1.0 - ox * oy / float(box_px * box_px)


def highest_defocus_a(
    table: tuple[NDArray, NDArray],
    box_a: float,
    resolution_a: float,
    *,
    voltage_kv: float,
    cs_mm: float,
    kept: float = 0.9,
) -> float:
    """The highest defocus (Å) at which the signal kept at ``resolution_a`` is at least ``kept``
    and the CTF is sampled without aliasing in a box of ``box_a`` Å."""
    s, f = table
    ok = np.nonzero(f >= kept)[0]
    s_kept = float(s[ok[-1]]) if ok.size else 0.0
    s_lim = min(s_kept, box_a / 2.0)
    lam = float(electron_wavelength_a(voltage_kv))
    k = 1.0 / resolution_a
    return float((s_lim + cs_mm * 1e7 * lam**3 * k**3) / (lam * k))
