"""`cryobox explain`: why one box beat another — each cause with its size in Å, its sign and its
basis (computed from the file, estimated from a stated model, or not modelled, with the
experiment that would isolate it). ``explain_boxes`` is the one function ``explain``, ``advise
--json`` and ``report`` call, so they show the same numbers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from cryobox.core import explain as ex
from cryobox.core.boxsize import edge_clipped
from cryobox.errors import InputError
from cryobox.io.fsc_files import load_curve
from cryobox.jobs.inputs import AdviseInputs, gather_inputs
from cryobox.report.text import explain_paragraph

__all__ = [
    "ExplainSettings",
    "MeasuredRun",
    "BoxExplanation",
    "Cause",
    "Explanation",
    "explain_boxes",
    "explain_files",
]

DEFAULT_BFACTOR_A2 = 100.0
#: without a target or a measurement the causes are weighed at this many pixel sizes (3.5 x 1.06 Å
#: = 3.7 Å, her case)
DEFAULT_RESOLUTION_PX = 3.5
N_RESOLUTIONS = 40
KEPT_FOR_COLLECTION = 0.9


@dataclass(frozen=True)
class ExplainSettings:
    """What the explanation assumes. ``program``: ``"cryosparc"`` (its default real-space window,
    inner/outer fractions of the box, applied to the particle images before the CTF is handled;
    particles whose box crosses a micrograph edge are dropped at extraction) or ``"relion"`` (the
    images are masked by a circle of ``mask_diameter_a`` with a 5 px soft edge; edge particles are
    kept) or ``"none"`` (no window beyond the box: a reconstruction from the images as cut, as
    ``relion_reconstruct`` and ``cryobox reconstruct`` make it). ``bfactor_a2``: B of the model
    curve and of ResLog when no measured FSC gives one."""

    diameter_a: float
    boxes_px: tuple[int, ...]
    pixel_size_a: float
    resolution_a: float
    program: str = "cryosparc"
    window_inner: float = 0.85
    window_outer: float = 0.99
    mask_diameter_a: float | None = None
    bfactor_a2: float = DEFAULT_BFACTOR_A2


@dataclass(frozen=True)
class MeasuredRun:
    """A measured FSC (half maps) of one box: frequencies (1/Å) and values; or only a resolution."""

    label: str
    box_px: int
    resolution_a: float
    k_inv_a: np.ndarray | None = None
    fsc: np.ndarray | None = None


@dataclass
class BoxExplanation:
    box_px: int
    box_a: float
    signal_kept: dict[str, float]  # resolution (Å, as text) -> median fraction kept in the window as refined
    signal_kept_p10: dict[str, float]
    signal_kept_box: dict[str, float]  # the box alone (no window)
    signal_kept_at_resolution: float  # mean over particles, window as refined
    ctf_alias_free_fraction: float  # of particles, at the resolution
    ctf2_alias_free_fraction: float
    particles_kept: int
    particles_kept_fraction: float
    neighbours_fraction: float | None  # of particles with another picked particle in the window as refined
    neighbours_mean: float | None
    neighbours_fraction_box: float | None
    edge_area_fraction: float | None  # mean fraction of the box beyond the micrograph edge
    particle_volume_fraction: float
    window_radii_a: tuple[float, float] | None  # cryoSPARC: full weight to, zero at (radius, Å)
    window_fractions_same_a: tuple[float, float] | None  # inner/outer fractions giving the smallest box's window
    highest_defocus_a: float  # signal kept >= 90% and CTF alias-free at the resolution
    predicted_resolution_a: float | None = None
    # predicted from a box that keeps less signal: the measured curve is scaled up where it is
    # mostly noise, so the prediction is uncertain
    prediction_extrapolated: bool = False
    measured_resolution_a: float | None = None
    measured_label: str | None = None


@dataclass
class Cause:
    cause: str
    favours_box_px: int | None
    effect_a: float | None  # Å between the boxes it favours least and most; None: not modelled
    effect_by_box_a: dict[int, float] | None
    basis: str  # computed / estimated / not modelled
    detail: str


@dataclass
class Explanation:
    settings: ExplainSettings
    n_particles: int
    boxes: list[BoxExplanation]
    causes: list[Cause]
    paragraph: str
    model: str
    bfactor_a2: float
    bfactor_source: str
    basis_box_px: int | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {
            "settings": asdict(self.settings),
            "n_particles": self.n_particles,
            "paragraph": self.paragraph,
            "model": self.model,
            "bfactor_a2": self.bfactor_a2,
            "bfactor_source": self.bfactor_source,
            "prediction_from_box_px": self.basis_box_px,
            "boxes": [asdict(b) for b in self.boxes],
            "causes": [asdict(c) for c in self.causes],
            "notes": list(self.notes),
        }
        for c in d["causes"]:
            if c["effect_by_box_a"] is not None:
                c["effect_by_box_a"] = {str(k): v for k, v in c["effect_by_box_a"].items()}
        return d


def _defocus_grid(inputs: AdviseInputs, step_a: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean defoci on a grid of ``step_a`` Å with the number of particles at each."""
    mean = 0.5 * (np.abs(inputs.defocus_u_a) + np.abs(inputs.defocus_v_a))
    binned = np.round(mean / step_a).astype(np.int64)
    values, counts = np.unique(binned, return_counts=True)
    return values * step_a, counts.astype(np.float64)


def _one(values: np.ndarray) -> float:
    return float(np.median(values))


def _window(s: ExplainSettings, box_px: int) -> ex.Window:
    if s.program == "none":
        return ex.Window.box(box_px, s.pixel_size_a)
    if s.program == "relion":
        return ex.Window.relion_mask(box_px, s.pixel_size_a, s.mask_diameter_a or s.diameter_a)
    return ex.Window.cryosparc(box_px, s.pixel_size_a, s.window_inner, s.window_outer)


def _curves(s: ExplainSettings, inputs: AdviseInputs, k: np.ndarray, boxes: list[int]) -> dict:
    """Per box: the kept fraction per frequency (mean, median, p10) in the window as refined and in
    the box alone, from one table per window and a grid of defoci."""
    df, weights = _defocus_grid(inputs)
    kv, cs = _one(inputs.voltage_kv), _one(inputs.cs_mm)
    out = {}
    for b in boxes:
        tables = {
            "window": ex.signal_kept_table(_window(s, b), s.diameter_a),
            "box": ex.signal_kept_table(ex.Window.box(b, s.pixel_size_a), s.diameter_a),
        }
        res = {}
        for name, table in tables.items():
            mean, q = ex.kept_quantiles(table, k, defocus_a=df, weights=weights, voltage_kv=kv, cs_mm=cs)
            res[name] = {"mean": mean, "median": q[0.5], "p10": q[0.1], "table": table}
        out[b] = res
    return out


def _alias_free(inputs: AdviseInputs, box_a: float, k: float, power: int) -> float:
    df = np.maximum(np.abs(inputs.defocus_u_a), np.abs(inputs.defocus_v_a))
    shift = ex.delocalisation_shift_a(k, defocus_a=df, voltage_kv=_one(inputs.voltage_kv), cs_mm=_one(inputs.cs_mm))
    return float(np.mean(box_a >= 2 * power * shift))


def _particles(s: ExplainSettings, inputs: AdviseInputs, b: int) -> tuple[int, float | None]:
    """Particles kept at box b (cryoSPARC drops those whose box crosses an edge) and the mean
    fraction of the box beyond the edge."""
    n = int(inputs.defocus_u_a.size)
    if inputs.coord_x_px is None:
        return n, None
    x, y = inputs.coord_x_px, inputs.coord_y_px
    w, h = inputs.micrograph_width_px, inputs.micrograph_height_px
    area = float(ex.edge_area_fraction(x, y, w, h, b).mean())
    if s.program != "cryosparc":
        return n, area
    clipped = edge_clipped(x, y, micrograph_width_px=w, micrograph_height_px=h, box_px=b)
    return int(n - clipped.sum()), area


def _neighbours(s: ExplainSettings, inputs: AdviseInputs) -> dict | None:
    if inputs.coord_x_px is None or inputs.micrograph is None:
        return None
    p = s.pixel_size_a
    radii = {}
    for b in s.boxes_px:
        w = _window(s, b)
        radii[f"window{b}"] = (w.outer_a, "circle") if w.kind == "circle" else (b * p / 2, "square")
        radii[f"box{b}"] = (b * p / 2, "square")
    return ex.neighbour_counts(inputs.coord_x_px * p, inputs.coord_y_px * p, inputs.micrograph, radii)


def _resolution_grid(s: ExplainSettings) -> np.ndarray:
    """Frequencies (1/Å) of the kept-fraction curves: from 30 Å to Nyquist, the resolution weighed
    among them (so the prediction never reads a curve past its end)."""
    k = np.linspace(1.0 / 30.0, 1.0 / (2 * s.pixel_size_a), N_RESOLUTIONS)
    return np.unique(np.append(k, 1.0 / s.resolution_a))


def _factors(s, curves, kept_n, n, k, b) -> dict[str, np.ndarray]:
    """SSNR factors of box b per cause, on frequencies k (the kept-fraction curves are
    interpolated from the grid the curves were computed on)."""
    kgrid = curves["_k"]
    win = np.interp(k, kgrid, curves[b]["window"]["mean"])
    box = np.interp(k, kgrid, curves[b]["box"]["mean"])
    return {
        "signal": np.clip(win, 1e-3, 1.0) ** ex.SSNR_EXPONENT,
        "alias": np.clip(box, 1e-3, 1.0) ** ex.SSNR_EXPONENT,
        "particles": np.full_like(k, kept_n[b] / n),
    }


def explain_boxes(
    inputs: AdviseInputs,
    settings: ExplainSettings,
    *,
    measured: list[MeasuredRun] = (),
) -> Explanation:
    """Explain the boxes in ``settings.boxes_px`` for the particles in ``inputs``; ``measured``:
    FSCs (the first with a curve is the basis of the prediction) or resolutions of runs."""
    s = settings
    if len(s.boxes_px) < 1:
        raise InputError("give at least one box (`boxes_px`).")
    if min(s.boxes_px) * s.pixel_size_a <= s.diameter_a:
        raise InputError(
            f"a box of {min(s.boxes_px)} px ({min(s.boxes_px) * s.pixel_size_a:.0f} Å) does not hold the "
            f"{s.diameter_a:g} Å particle; give boxes larger than the particle (`boxes_px`)."
        )
    n = int(inputs.defocus_u_a.size)
    k_grid = _resolution_grid(s)
    all_boxes = sorted(set(s.boxes_px) | {m.box_px for m in measured})
    curves = _curves(s, inputs, k_grid, all_boxes)
    curves["_k"] = k_grid
    kept_n, edge_area = {}, {}
    for b in all_boxes:
        kept_n[b], edge_area[b] = _particles(s, inputs, b)
    neighbours = _neighbours(s, inputs)
    basis = next((m for m in measured if m.k_inv_a is not None), None)
    d0 = basis.resolution_a if basis is not None else s.resolution_a
    bfactor, bsource = s.bfactor_a2, "given with `bfactor_a2`, 100 Å² by default"
    if basis is not None:
        fitted = ex.bfactor_from_fsc(basis.k_inv_a, basis.fsc)
        if fitted is not None and 10.0 <= fitted <= 2000.0:
            bfactor, bsource = fitted, f"from the slope of ln SSNR of {basis.label}'s FSC"
    k = np.linspace(1e-4, 1.0 / (2 * s.pixel_size_a), 400)
    ideal = _ideal_ssnr(basis, s, curves, kept_n, n, k, d0, bfactor)
    factors = {b: _factors(s, curves, kept_n, n, k, b) for b in s.boxes_px}
    causes = _causes(s, inputs, factors, ideal, k, d0, bfactor, neighbours, kept_n, n)
    boxes = _box_rows(s, inputs, curves, kept_n, n, edge_area, neighbours, d0)
    for row in boxes:
        total = ideal * factors[row.box_px]["signal"] * factors[row.box_px]["particles"]
        row.predicted_resolution_a = ex.crossing_resolution_a(k, ex.fsc_from_ssnr(total))
        if basis is not None and row.box_px != basis.box_px:
            k_row = 1.0 / row.predicted_resolution_a if math.isfinite(row.predicted_resolution_a) else k[-1]
            gain = np.interp(k_row, k, factors[row.box_px]["signal"]) / np.interp(
                k_row, k, _factors(s, curves, kept_n, n, k, basis.box_px)["signal"]
            )
            row.prediction_extrapolated = bool(gain > 1.05)
        m = next((m for m in measured if m.box_px == row.box_px), None)
        if m is not None:
            row.measured_resolution_a, row.measured_label = m.resolution_a, m.label
    expl = Explanation(
        settings=s,
        n_particles=n,
        boxes=boxes,
        causes=causes,
        paragraph="",
        model=MODEL_TEXT,
        bfactor_a2=float(bfactor),
        bfactor_source=bsource,
        basis_box_px=None if basis is None else basis.box_px,
    )

    expl.paragraph = explain_paragraph(expl)
    return expl


MODEL_TEXT = (
    f"half-map SSNR(k) ∝ N · K(k)^{ex.SSNR_EXPONENT:g}, K the particle's signal kept in the window as refined (a "
    "ball of atoms of the diameter, its projected signal power ∝ thickness, moved by the CTF's delocalisation "
    "|λΔf k − Cs λ³ k³|, averaged over directions and particles; the exponent lies between 2, the signal that still "
    "matches the CTF model, and 1, all windowed signal, which both half maps share); "
    "a measured FSC at one box gives the others by these ratios; without one, SSNR ∝ N exp(−B k²/2), anchored "
    "at the target resolution (ResLog)."
)


def _ideal_ssnr(basis, s, curves, kept_n, n, k, d0, bfactor) -> np.ndarray:
    """The SSNR a box with no loss would reach: the measured one divided by its box's factors,
    or the model curve crossing 0.143 at the target resolution."""
    if basis is None:
        return ex.model_ssnr(k, resolution_a=d0, bfactor_a2=bfactor)
    meas = ex.ssnr_from_fsc(np.interp(k, basis.k_inv_a, basis.fsc, right=0.0))
    f = _factors(s, curves, kept_n, n, k, basis.box_px)
    return meas / np.clip(f["signal"] * f["particles"], 0.05, None)


def _effect(ideal, factor, k, d0) -> float:
    return ex.crossing_resolution_a(k, ex.fsc_from_ssnr(ideal * factor)) - ex.crossing_resolution_a(
        k, ex.fsc_from_ssnr(ideal)
    )


def _modelled(name, by_box, basis, detail) -> Cause:
    """A modelled cause: its cost (Å) at each box, the box it favours, and the spread between the
    boxes (∞ where a box's curve would not reach 0.143 at all)."""
    fav = min(by_box, key=lambda b: (round(by_box[b], 4), b))
    spread = max(by_box.values()) - min(by_box.values())
    return Cause(name, int(fav), float(spread), {int(b): float(v) for b, v in by_box.items()}, basis, detail)


def _causes(s, inputs, factors, ideal, k, d0, bfactor, neighbours, kept_n, n) -> list[Cause]:
    p = s.pixel_size_a
    where = {"cryosparc": "cryoSPARC's real-space window", "relion": "RELION's particle mask"}.get(s.program, "the box")
    causes = [
        _modelled(
            "signal kept (CTF delocalisation)",
            {b: _effect(ideal, factors[b]["signal"], k, d0) for b in s.boxes_px},
            "computed",
            f"the fraction of the particle's delocalised signal inside {where} and the box, per frequency, from "
            f"each particle's defocus; SSNR scales by its power {ex.SSNR_EXPONENT:g}",
        ),
        _modelled(
            "CTF aliasing (the box's Fourier sampling)",
            {b: _effect(ideal, factors[b]["alias"], k, d0) for b in s.boxes_px},
            "computed",
            "signal moved beyond the box's edge is what the box's Fourier grid cannot represent (the CTF aliases "
            "where B·p < 2|λΔf k − Cs λ³ k³|); part of the signal kept above, not added to it. Premultiplied data "
            "carry CTF², which RELION computes on the cropped grid (its --pad_ctf is disabled since 3.1): CTF² "
            "aliases where B·p < 4|λΔf k − Cs λ³ k³|",
        ),
        _modelled(
            "particles (micrograph edges)",
            {b: _effect(ideal, factors[b]["particles"], k, d0) for b in s.boxes_px},
            "computed" if inputs.coord_x_px is not None else "estimated",
            (
                f"cryoSPARC drops particles whose box crosses a micrograph edge; ResLog 1/d² = (2/B) ln N + c with B "
                f"{bfactor:.0f} Å²"
                if s.program == "cryosparc"
                else "RELION keeps particles at micrograph edges (the part outside is filled): no particles lost"
            ),
        ),
    ]
    nb = {}
    if neighbours is not None:
        nb = {b: neighbours[f"window{b}"]["fraction"] for b in s.boxes_px}
    causes.append(
        Cause(
            "neighbours in the window",
            int(min(nb, key=lambda b: (nb[b], b))) if nb else None,
            None,
            None,
            "not modelled",
            (
                "share of particles with another picked particle inside the window: "
                + ", ".join(f"{b} px {100 * v:.0f}%" for b, v in nb.items())
                if nb
                else "the file has no coordinates and micrographs to count neighbours"
            )
            + "; their density is not part of the reference, so it can pull the alignment; how much is not "
            "modelled. Experiment: refine the big box with the small box's window in Å (window fractions below), "
            "or with neighbours subtracted.",
        )
    )
    solvent = {b: _effect(ideal, ex.particle_volume_fraction(s.diameter_a, b * p), k, d0) for b in s.boxes_px}
    c5 = _modelled(
        "solvent in an unmasked FSC",
        solvent,
        "estimated",
        "noise fills the box, signal only the particle: an unmasked FSC's SSNR is scaled by the particle's volume "
        "fraction (π D³/6)/(B p)³; a mask in Å (as judge uses) removes it; a refinement that weights by the "
        "unmasked FSC pays it",
    )
    causes.append(c5)
    causes.append(_settings_cause(s))
    return causes


def _settings_cause(s: ExplainSettings) -> Cause:
    if s.program == "cryosparc":
        text = (
            f"cryoSPARC's window is a fraction of the box (inner {s.window_inner:g}, outer {s.window_outer:g}): it "
            "passes more of the micrograph in a bigger box (its signal effect is in 'signal kept', its neighbours "
            "in 'neighbours'); fractions that keep one window in Å are in the box table. Not modelled: any other "
            "box dependence of NU-refine's regularisation and noise model (its documentation ties none to the box)."
        )
    else:
        text = (
            "RELION's particle mask is set in Å (--particle_diameter) and does not grow with the box; its padding "
            "(--pad 2) costs time, not signal. Not modelled: the noise spectrum RELION estimates from the solvent "
            "area, which grows with the box."
        )
    return Cause("box-relative settings of the refinement program", None, None, None, "not modelled", text)


def _res_key(k: float) -> str:
    return f"{1.0 / k:.2f}"


def _box_rows(s, inputs, curves, kept_n, n, edge_area, neighbours, d0) -> list[BoxExplanation]:
    k = curves["_k"]
    k0 = 1.0 / d0
    smallest = min(s.boxes_px)
    kv, cs = _one(inputs.voltage_kv), _one(inputs.cs_mm)
    rows = []
    for b in s.boxes_px:
        c = curves[b]
        box_a = b * s.pixel_size_a
        radii = same = None
        if s.program == "cryosparc":
            radii = (s.window_inner * box_a / 2, s.window_outer * box_a / 2)
            same = (s.window_inner * smallest / b, s.window_outer * smallest / b)
        nb = neighbours or {}
        rows.append(
            BoxExplanation(
                box_px=int(b),
                box_a=box_a,
                signal_kept={_res_key(kk): float(v) for kk, v in zip(k, c["window"]["median"])},
                signal_kept_p10={_res_key(kk): float(v) for kk, v in zip(k, c["window"]["p10"])},
                signal_kept_box={_res_key(kk): float(v) for kk, v in zip(k, c["box"]["median"])},
                signal_kept_at_resolution=float(np.interp(k0, k, c["window"]["mean"])),
                ctf_alias_free_fraction=_alias_free(inputs, box_a, k0, 1),
                ctf2_alias_free_fraction=_alias_free(inputs, box_a, k0, 2),
                particles_kept=int(kept_n[b]),
                particles_kept_fraction=kept_n[b] / n if n else 0.0,
                neighbours_fraction=nb.get(f"window{b}", {}).get("fraction"),
                neighbours_mean=nb.get(f"window{b}", {}).get("mean"),
                neighbours_fraction_box=nb.get(f"box{b}", {}).get("fraction"),
                edge_area_fraction=edge_area[b],
                particle_volume_fraction=ex.particle_volume_fraction(s.diameter_a, box_a),
                window_radii_a=radii,
                window_fractions_same_a=same,
                highest_defocus_a=ex.highest_defocus_a(
                    c["window"]["table"], box_a, d0, voltage_kv=kv, cs_mm=cs, kept=KEPT_FOR_COLLECTION
                ),
            )
        )
    return rows


def measured_from_curves(curves) -> list[MeasuredRun]:
    """Measured runs from FSC curves (``io.fsc_files.FscCurve``): box, resolution at 0.143
    (interpolated) and the curve."""
    out = []
    for c in curves:
        k, f = np.asarray(c.frequency_inv_a, dtype=np.float64), np.asarray(c.fsc, dtype=np.float64)
        out.append(MeasuredRun(c.label, int(c.box_px), ex.crossing_resolution_a(k, f), k, f))
    return out


def measured_from_runs(result: dict) -> list[MeasuredRun]:
    """Measured runs from a judge.json or sweep.json: each variant's mean resolution at its box."""
    return [
        MeasuredRun(f"{result.get('cryobox', 'runs')} {v['variant']}", int(v["box_px"]), float(v["mean_a"]))
        for v in result.get("variants", [])
        if v.get("mean_a") is not None and v.get("box_px")
    ]


def explain_files(
    paths: list,
    *,
    diameter_a: float,
    boxes_px: tuple[int, ...],
    resolution_a: float | None = None,
    fsc: list[str] = (),
    runs: list[dict] = (),
    program: str | None = None,
    bfactor_a2: float = DEFAULT_BFACTOR_A2,
    window_inner: float = 0.85,
    window_outer: float = 0.99,
    mask_diameter_a: float | None = None,
    pixel_size_a: float | None = None,
    voltage_kv: float | None = None,
    cs_mm: float | None = None,
    micrograph_size_px: tuple[int, int] | None = None,
    optics_group: int | None = None,
    tables=None,
) -> Explanation:
    """Read particle files (as ``advise`` does), FSC files (as ``compare`` does) and judge/sweep
    results, and explain the boxes. ``resolution_a`` defaults to the first measured FSC's."""

    for name, v in (("bfactor_a2", bfactor_a2), ("diameter_a", diameter_a)):
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"`{name}` must be a positive number, got {v:g}.")
    if not 0 < window_inner <= window_outer <= 1:
        raise InputError(
            f"the window fractions must satisfy 0 < inner <= outer <= 1, got {window_inner:g} and {window_outer:g} "
            "(`window_inner`, `window_outer`)."
        )
    inputs = gather_inputs(
        paths,
        tables=tables,
        pixel_size_a=pixel_size_a,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        micrograph_size_px=micrograph_size_px,
        optics_group=optics_group,
    )
    measured = measured_from_curves([load_curve(spec) for spec in fsc])
    for result in runs:
        measured += measured_from_runs(result)
    for m in measured:
        if m.k_inv_a is not None and abs(m.k_inv_a[-1] * 2 * inputs.pixel_size_a - 1) > 0.05:
            raise InputError(
                f"{m.label}: its FSC ends at {1 / m.k_inv_a[-1]:.2f} Å, Nyquist of {1 / m.k_inv_a[-1] / 2:.3g} Å/px, "
                f"but the particles are at {inputs.pixel_size_a:g} Å/px; give the FSC of these particles "
                "(or its @BOX:PIXELSIZE)."
            )
    notes = []
    if resolution_a is None:
        resolution_a = next((m.resolution_a for m in measured if m.k_inv_a is not None), None)
    if resolution_a is None:
        resolution_a = next((m.resolution_a for m in measured), None)
    if resolution_a is None:  # no target and nothing measured: where a good map of these particles would be
        resolution_a = round(DEFAULT_RESOLUTION_PX * inputs.pixel_size_a, 2)
        notes.append(
            f"no target given: the causes are weighed at {resolution_a:g} Å ({DEFAULT_RESOLUTION_PX:g} x the pixel "
            "size); give `resolution_a` or a measured FSC (`fsc`) for yours."
        )
    if not (math.isfinite(resolution_a) and resolution_a >= 2 * inputs.pixel_size_a):
        raise InputError(
            f"`resolution_a` {resolution_a:g} Å is finer than Nyquist ({2 * inputs.pixel_size_a:g} Å at "
            f"{inputs.pixel_size_a:g} Å/px)."
        )
    settings = ExplainSettings(
        diameter_a=float(diameter_a),
        boxes_px=tuple(sorted(set(int(b) for b in boxes_px))),
        pixel_size_a=inputs.pixel_size_a,
        resolution_a=float(resolution_a),
        program=program or inputs.program or "cryosparc",
        window_inner=window_inner,
        window_outer=window_outer,
        mask_diameter_a=mask_diameter_a,
        bfactor_a2=bfactor_a2,
    )
    e = explain_boxes(inputs, settings, measured=measured)
    e.notes += notes
    return e
