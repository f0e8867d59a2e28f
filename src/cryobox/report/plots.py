"""Figures. Each ``plot_*`` draws on an ``ax`` it is given; ``figure_*`` builds a whole figure.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot, no global backend), saved
atomically, and never shown.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cryobox.io.atomic import atomic_path

__all__ = [
    "save_figure",
    "save_pdf_of_images",
    "plot_defocus_histogram",
    "figure_defocus_histogram",
    "plot_advice",
    "figure_advice",
    "plot_ctf_image",
    "plot_ctf_profile",
    "figure_ctf",
    "plot_fsc",
    "figure_fsc",
    "plot_compare",
    "figure_compare",
    "plot_sweep_fsc",
    "plot_sweep_resolutions",
    "figure_sweep",
    "plot_signal_kept",
    "plot_neighbours",
    "figure_explain",
]


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 120, tight: bool = True) -> Path:
    """Save a figure atomically; the format follows the file's extension (png, pdf, svg).

    ``tight`` crops the page to what is drawn, which costs a second drawing pass; a figure laid
    out with fixed margins (``fig.subplots_adjust``) passes ``tight=False`` and is drawn once."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight" if tight else None, format=path.suffix.lstrip(".") or "png")
    return path


def save_pdf_of_images(images: list, path: str | os.PathLike) -> Path:
    """Gather PNG files into one PDF, a page each at their own size (a RELION job's logfile.pdf)."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.image import imread

    path = Path(path)
    with atomic_path(path) as tmp:
        with PdfPages(tmp) as pdf:
            for image in images:
                a = imread(image)
                h, w = a.shape[:2]
                fig = Figure(figsize=(w / 100, h / 100), dpi=100)
                ax = fig.add_axes((0, 0, 1, 1))
                ax.imshow(a)
                ax.set_axis_off()
                pdf.savefig(fig)
    return path


def _spaced(positions, min_gap: float) -> list:
    """The positions (sorted) with neighbours at least ``min_gap`` apart, first ones kept: tick
    labels that do not overlap."""
    out: list = []
    for v in sorted(positions):
        if not out or v - out[-1] >= min_gap:
            out.append(v)
    return out


def resolution_axis(ax) -> None:
    """Label the top of a 1/Å x axis with resolutions in Å (ticks at round values, never closer
    than 5% of the axis, so labels do not overlap)."""
    lo, hi = ax.get_xlim()
    top = ax.twiny()
    top.set_xlim(lo, hi)
    candidates = [50, 30, 20, 15, 10, 8, 6, 5, 4, 3.5, 3, 2.5, 2.2, 2, 1.8, 1.6, 1.5, 1.4, 1.2, 1.0]
    keep = set(_spaced([1.0 / r for r in candidates if lo < 1.0 / r <= hi], 0.05 * (hi - lo)))
    ticks = [r for r in candidates if 1.0 / r in keep]
    top.set_xticks([1.0 / r for r in ticks])
    top.set_xticklabels([f"{r:g}" for r in ticks])
    top.set_xlabel("resolution (Å)")


def plot_defocus_histogram(ax, defocus_u_a: np.ndarray, defocus_v_a: np.ndarray, *, title: str = "") -> None:
    """Histograms of defocus U, V and their mean, in µm. A defocus that varies by less than
    0.05 µm over the whole set is one bar (a simulation, or one value for all) on a 1 µm wide axis;
    U and V are drawn only where they differ from their mean (astigmatism)."""
    du = np.asarray(defocus_u_a, dtype=float) / 1e4
    dv = np.asarray(defocus_v_a, dtype=float) / 1e4
    mean = 0.5 * (du + dv)
    lo, hi = np.nanmin(np.minimum(du, dv)), np.nanmax(np.maximum(du, dv))
    ax.set_xlabel("defocus (µm, underfocus positive)")
    ax.set_ylabel("particles")
    if hi - lo < 0.05:
        centre = float(np.nanmedian(mean))
        ax.bar([centre], [du.size], width=0.04, color="0.3", label="(U + V) / 2")
        ax.set_xlim(centre - 0.5, centre + 0.5)
        ax.set_title(title or f"{du.size:,} particles, all at {centre:.2f} µm defocus (within 0.05 µm)")
        ax.legend(frameon=False)
        return
    bins = np.linspace(lo, hi, 60)
    ax.hist(mean, bins=bins, color="0.3", alpha=0.9, label="(U + V) / 2")
    if np.nanmax(np.abs(du - dv)) > 0:
        ax.hist(du, bins=bins, histtype="step", color="tab:blue", label="defocus U")
        ax.hist(dv, bins=bins, histtype="step", color="tab:orange", label="defocus V")
    for q, style, label in ((5, ":", "5th / 95th percentile"), (50, "--", "median"), (95, ":", None)):
        ax.axvline(np.percentile(mean, q), color="k", ls=style, lw=0.8, label=label)
    ax.set_title(title or f"{du.size:,} particles: defocus (5th, median, 95th percentile of mean marked)")
    ax.legend(frameon=False)


def figure_defocus_histogram(defocus_u_a, defocus_v_a, *, title: str = "") -> Figure:
    fig = Figure(figsize=(8, 4.5))
    plot_defocus_histogram(fig.add_subplot(111), defocus_u_a, defocus_v_a, title=title)
    return fig


def plot_advice(ax, advice) -> None:
    """Fractions of particles served by each candidate box, with the recommendation marked.

    ``advice`` is a ``cryobox.core.boxsize.BoxAdvice``.
    """
    c = advice.candidates
    box = np.array([x.box_px for x in c], dtype=float)
    ax.plot(
        box,
        [x.aliasing_free_fraction for x in c],
        "o-",
        color="tab:blue",
        label=f"CTF alias-free to {advice.resolution_a:g} Å",
    )
    ax.plot(
        box,
        [x.ctf2_aliasing_free_fraction for x in c],
        "s--",
        color="tab:cyan",
        label="CTF² alias-free (premultiplied data)",
    )
    ax.plot(box, [x.delocalisation_fraction for x in c], "^-", color="tab:green", label="delocalised signal fits (R&H)")
    if c and c[0].edge_loss_fraction is not None:
        ax.plot(box, [x.edge_loss_fraction for x in c], "x:", color="tab:red", label="lost at edges if dropped")
    refine, extract = advice.recommended_refine_box_px, advice.recommended_extract_box_px
    ax.axvline(refine, color="k", lw=1.5, label=f"refine box ({refine} px)")
    ax.annotate(f"refine {refine} px", (refine, 0.03), rotation=90, ha="right", va="bottom", fontsize=9)
    if extract != refine:
        ax.axvline(extract, color="0.4", lw=1.5, ls="--", label=f"extract box ({extract} px)")
        ax.annotate(
            f"extract {extract} px\n(premultiply, crop)",
            (extract, 0.03),
            rotation=90,
            ha="right",
            va="bottom",
            fontsize=9,
        )
    ax.axvline(
        advice.rosenthal_henderson_box_a / advice.pixel_size_a,
        color="tab:green",
        lw=0.8,
        ls=":",
        label="Rosenthal & Henderson box (highest defocus)",
    )
    yours = [x.box_px for x in c if getattr(x, "user_box", False)]
    for i, b in enumerate(yours):
        ax.axvline(b, color="tab:purple", lw=1.0, ls="-.", label="your boxes" if i == 0 else None)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(f"box (px at {advice.pixel_size_a:g} Å/px)")
    ax.set_ylabel("fraction of particles")
    sec = ax.secondary_xaxis("top", functions=(lambda b: b * advice.pixel_size_a, lambda a: a / advice.pixel_size_a))
    sec.set_xlabel("box (Å)")
    span = float(box.max() - box.min()) if box.size > 1 else 1.0
    ax.set_xticks(_spaced(box.tolist(), 0.018 * span))  # rotated labels ~1.8% of the axis wide: no overlap
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", framealpha=0.9, fontsize=9)


def figure_advice(advice, *, title: str = "") -> Figure:
    fig = Figure(figsize=(10, 5.5))
    ax = fig.add_subplot(111)
    plot_advice(ax, advice)
    ax.set_title(
        title or f"D = {advice.diameter_a:g} Å, target {advice.resolution_a:g} Å, {advice.n_particles:,} particles",
        pad=28,
    )
    return fig


def ctf_display_region(picture, max_pixels: int) -> tuple[slice, slice, tuple[float, float, float, float], str]:
    """The part of the centred CTF image to draw so that it spans at most ``max_pixels`` Fourier
    pixels per side: drawn at one or more screen pixels per Fourier pixel it shows no display
    moiré, only the aliasing the box really has.

    The whole image when it fits; else the quadrant kx, ky >= 0 out to 1.15 x the target ring
    (or Nyquist); else a ``max_pixels`` square centred on the target ring at 45°. Returns the row
    and column slices of ``picture.image``, the extent (kx0, kx1, ky0, ky1) in 1/Å for imshow
    and a phrase saying what is shown.
    """
    p = picture.params
    n = p.box_px
    step = 1.0 / (n * p.pixel_size_a)
    c = n // 2
    if n <= max_pixels:
        rows = cols = slice(0, n)
        what = "the whole grid"
    else:
        ring = 1.0 / picture.resolution_a if picture.resolution_a else 0.5 / p.pixel_size_a
        reach = int(np.ceil(min(1.15 * ring, 0.5 / p.pixel_size_a) / step))
        if reach + 1 <= max_pixels:
            rows = cols = slice(c, min(n, c + reach + 1))
            what = "the quadrant kx, ky ≥ 0 around the target ring"
        else:
            mid = c + int(round(ring / step / np.sqrt(2.0)))
            half = max_pixels // 2
            lo = max(0, min(n - max_pixels, mid - half))
            rows = cols = slice(lo, lo + max_pixels)
            what = "a window on the target ring at 45°"
    k0 = (rows.start - c - 0.5) * step
    k1 = (rows.stop - 1 - c + 0.5) * step
    return rows, cols, (k0, k1, k0, k1), what


def ctf_panel_rgb(picture, *, max_pixels: int = 360) -> tuple[np.ndarray, str]:
    """The box-sampled CTF as RGB pixels, one block of whole screen pixels per Fourier pixel (no
    resampling, so nothing but the box's own aliasing can show), with the target ring in orange.
    Returns the (h, w, 3) uint8 image and what part of the grid it shows."""
    rows, cols, _, what = ctf_display_region(picture, max_pixels)
    img = picture.image[rows, cols]
    vmin = 0.0 if picture.power == 2 else -1.0
    grey = np.clip((img - vmin) / (1.0 - vmin), 0.0, 1.0)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)[::-1]  # ky up
    if picture.resolution_a:
        p = picture.params
        step = 1.0 / (p.box_px * p.pixel_size_a)
        c = p.box_px // 2
        ky = (np.arange(rows.start, rows.stop) - c)[::-1, None] * step
        kx = (np.arange(cols.start, cols.stop) - c)[None, :] * step
        ring = np.abs(np.hypot(kx, ky) - 1.0 / picture.resolution_a) < 0.5 * step
        rgb[ring] = (255, 127, 14)
    scale = max(1, max_pixels // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1), what


def plot_ctf_image(ax, picture, *, max_pixels: int | None = None) -> None:
    """The CTF on the box's Fourier grid (moiré = aliasing), with a ring at the target resolution.

    Only as many Fourier pixels are drawn as the axes have screen pixels (``ctf_display_region``;
    ``max_pixels`` defaults to the axes' width at the figure's dpi), so the picture has no
    display moiré of its own."""
    p = picture.params
    nyq = 0.5 / p.pixel_size_a
    if max_pixels is None:
        width_in = ax.get_position().width * ax.figure.get_figwidth()
        max_pixels = max(32, int(width_in * 100 * 0.9))  # 100 dpi, the smallest the report and CLI save at
    rows, cols, extent, what = ctf_display_region(picture, max_pixels)
    vmin = 0.0 if picture.power == 2 else -1.0
    ax.imshow(
        picture.image[rows, cols],
        cmap="gray",
        origin="lower",
        extent=extent,
        vmin=vmin,
        vmax=1.0,
        interpolation="nearest",
    )
    t = np.linspace(0, 2 * np.pi, 361)
    if picture.resolution_a:
        r = 1.0 / picture.resolution_a
        ax.plot(r * np.cos(t), r * np.sin(t), color="tab:orange", lw=1.2, label=f"{picture.resolution_a:g} Å")
    alias = picture.first_aliased_resolution_a
    if np.isfinite(alias) and alias > 2 * p.pixel_size_a * (1 + 1e-9):
        r = 1.0 / alias
        ax.plot(r * np.cos(t), r * np.sin(t), color="tab:red", lw=1.2, ls="--", label=f"aliasing from {alias:.2f} Å")
    if rows.stop - rows.start >= p.box_px:
        ax.set_xlim(-nyq, nyq)
        ax.set_ylim(-nyq, nyq)
    else:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("kx (1/Å)")
    ax.set_ylabel("ky (1/Å)")
    name = "CTF²" if picture.power == 2 else "CTF"
    n = p.box_px
    ax.set_title(
        f"{name} sampled in a {n} px box ({n * p.pixel_size_a:.0f} Å)"
        + ("" if what == "the whole grid" else f"\n{what}"),
        fontsize=10,
    )
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)


def plot_ctf_profile(ax, picture) -> None:
    """Box-sampled CTF (spacing 1/(N p)) against a finely sampled one, along the max-defocus direction."""
    p = picture.params
    what = "CTF²" if picture.power == 2 else "CTF"
    ax.plot(picture.fine_frequencies_inv_a, picture.fine_profile, color="0.7", lw=0.8, label=f"{what}, finely sampled")
    ax.plot(
        picture.box_frequencies_inv_a,
        picture.box_profile,
        ".-",
        color="tab:blue",
        lw=0.8,
        ms=3,
        label=f"{what} on the {p.box_px} px grid",
    )
    alias = picture.first_aliased_resolution_a
    if np.isfinite(alias) and alias > 2 * p.pixel_size_a * (1 + 1e-9):
        ax.axvline(1.0 / alias, color="tab:red", ls="--", lw=1.2, label=f"first aliased: {alias:.2f} Å")
    if picture.resolution_a:
        ax.axvline(1.0 / picture.resolution_a, color="tab:orange", lw=1.2, label=f"target {picture.resolution_a:g} Å")
    ax.set_xlim(0, 0.5 / p.pixel_size_a)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel(what)
    resolution_axis(ax)
    # below the axes: a legend inside would cover the low frequencies, where the first zero is
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"defocus {max(p.defocus_u_a, p.defocus_v_a) / 1e4:.2f} µm (max of U, V)", fontsize=10)


def figure_ctf(picture) -> Figure:
    fig = Figure(figsize=(13, 5.5))
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 1.5])
    plot_ctf_image(fig.add_subplot(gs[0]), picture)
    plot_ctf_profile(fig.add_subplot(gs[1]), picture)
    return fig


def _fsc_axes_common(ax, max_freq: float) -> None:
    ax.axhline(0.143, color="0.3", lw=0.8, ls="--", label="FSC = 0.143")
    ax.axhline(0.5, color="0.6", lw=0.6, ls=":", label="FSC = 0.5")
    ax.axhline(0.0, color="0.8", lw=0.6)
    ax.set_xlim(0, max_freq)
    ax.set_ylim(-0.1, 1.02)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("Fourier shell correlation")
    ax.grid(alpha=0.25)
    resolution_axis(ax)


def plot_fsc(ax, fsc_dict: dict) -> None:
    """The curves of a `cryobox fsc` result (its --json dict): unmasked, masked, phase-randomised,
    corrected, with the 0.143 resolution marked."""
    c = fsc_dict["curves"]
    k = np.asarray(c["frequency_inv_a"])
    styles = (
        ("fsc_unmasked", "unmasked", "tab:green", "-"),
        ("fsc_masked", "masked", "tab:blue", "-"),
        ("fsc_random_masked", "phase-randomised, masked", "tab:red", "-"),
        ("fsc_corrected", "corrected", "k", "-"),
    )
    for key, label, color, ls in styles:
        if c.get(key) is not None:
            ax.plot(
                k[1:], np.asarray(c[key])[1:], color=color, ls=ls, lw=2 if key == "fsc_corrected" else 1.2, label=label
            )
    res = fsc_dict["resolutions"]["0.143"]
    if np.isfinite(res["resolution_a"]):
        ax.axvline(1 / res["resolution_a"], color="tab:orange", lw=1)
        ax.annotate(
            f"{res['resolution_a']:.2f} Å (RELION rule)\n{res['interpolated_resolution_a']:.2f} Å (interpolated)",
            (1 / res["resolution_a"], 0.6),
            xytext=(6, 0),
            textcoords="offset points",
            fontsize=9,
        )
    _fsc_axes_common(ax, float(k.max()))
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)


def figure_fsc(fsc_dict: dict, *, title: str = "") -> Figure:
    fig = Figure(figsize=(9, 5.5))
    ax = fig.add_subplot(111)
    plot_fsc(ax, fsc_dict)
    ax.set_title(title or f"{fsc_dict['box_px']} px box at {fsc_dict['pixel_size_a']:g} Å/px", pad=28)
    return fig


def plot_compare(ax, curves, summaries) -> None:
    """Several runs' FSC curves on one Å axis, each labelled with box and resolution."""
    kmax = 0.0
    for c, s in zip(curves, summaries):
        k = c.frequency_inv_a
        kmax = max(kmax, float(k.max()))
        ax.plot(
            k[1:],
            c.fsc[1:],
            lw=1.6,
            label=f"{c.label}: {c.box_px} px ({c.box_px * c.pixel_size_a:.0f} Å), "
            f"{s['resolution_0.143_a']:.2f} Å ({s['resolution_0.143_interpolated_a']:.2f} interp.)",
        )
    _fsc_axes_common(ax, kmax)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)


def figure_compare(curves, summaries, *, title: str = "") -> Figure:
    fig = Figure(figsize=(10, 6))
    ax = fig.add_subplot(111)
    plot_compare(ax, curves, summaries)
    ax.set_title(title or "FSC of each run (0.143 dashed, 0.5 dotted)", pad=28)
    return fig


_REPEAT_STYLES = ("-", "--", ":", "-.")
_SWEEP_COLORS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


def plot_sweep_fsc(ax, sweep: dict) -> None:
    """Every run's corrected masked FSC on one Å axis, one colour per variant (repeats share it)."""
    kmax = 0.0
    for i, row in enumerate(sweep["variants"]):
        color = _SWEEP_COLORS[i % len(_SWEEP_COLORS)]
        for j, run in enumerate(row["runs"]):
            c = run.get("curve")
            if not c:
                continue
            k = np.asarray(c["frequency_inv_a"], dtype=float)
            f = np.asarray(c["fsc"], dtype=float)
            kmax = max(kmax, float(k.max()))
            mean = row.get("mean_a")
            label = None
            if j == 0:
                label = f"{row['variant']}: {row['box_px']} px" + (f", {mean:.2f} Å" if mean is not None else "")
            ax.plot(k[1:], f[1:], color=color, lw=1.4, alpha=0.85, ls=_REPEAT_STYLES[j % 4], label=label)
    _fsc_axes_common(ax, kmax or 0.5)
    from matplotlib.lines import Line2D

    n_rep = max((len(row["runs"]) for row in sweep["variants"]), default=0)
    handles, labels = ax.get_legend_handles_labels()
    for j in range(min(n_rep, 4)):  # every repeat's line style has its entry
        handles.append(Line2D([], [], color="0.35", lw=1.4, ls=_REPEAT_STYLES[j]))
        labels.append(f"repeat {j + 1}" + (f", {j + 5}, ..." if n_rep > 4 and j < n_rep - 4 else ""))
    ax.legend(handles, labels, loc="lower left", fontsize=8, framealpha=0.9)


def plot_sweep_resolutions(ax, sweep: dict) -> None:
    """Resolution (interpolated FSC = 0.143, Å) per variant: each repeat, and mean +- SD."""
    rows = sweep["variants"]
    x = np.arange(len(rows))
    for i, row in enumerate(rows):
        color = _SWEEP_COLORS[i % len(_SWEEP_COLORS)]
        vals = [v for v in row["interpolated_resolutions_a"] if v is not None]
        ax.scatter(
            np.full(len(vals), i) + np.linspace(-0.08, 0.08, max(len(vals), 1))[: len(vals)],
            vals,
            color=color,
            s=22,
            zorder=3,
        )
        if row.get("mean_a") is not None:
            ax.errorbar(
                i + 0.22,
                row["mean_a"],
                yerr=row.get("sd_a") or 0.0,
                color=color,
                fmt="D",
                ms=6,
                capsize=5,
                lw=1.6,
                zorder=3,
            )
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['variant']}\n{r['box_a']:.0f} Å" for r in rows], fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("resolution at FSC = 0.143 (Å, interpolated)")
    ax.invert_yaxis()  # finer is higher
    ax.grid(alpha=0.25, axis="y")
    ax.set_title("repeats (dots) and mean ± SD (diamonds); finer is up", fontsize=10)


def figure_sweep(sweep: dict) -> Figure:
    fig = Figure(figsize=(14, 5.6))
    gs = fig.add_gridspec(1, 2, width_ratios=[1.5, 1])
    ax = fig.add_subplot(gs[0])
    plot_sweep_fsc(ax, sweep)
    ax.set_title(f"masked, corrected FSC of every run at {sweep['pixel_size_a']:g} Å/px", pad=28)
    plot_sweep_resolutions(fig.add_subplot(gs[1]), sweep)
    return fig


def plot_signal_kept(ax, explanation) -> None:
    """Signal kept (median over particles, the 10th percentile dashed) in the window as refined,
    against spatial frequency, one colour per box; the resolution weighed marked."""
    s = explanation.settings
    for i, r in enumerate(explanation.boxes):
        res = np.array([float(k) for k in r.signal_kept])
        colour = f"C{i}"
        ax.plot(1.0 / res, 100 * np.array(list(r.signal_kept.values())), color=colour, label=f"{r.box_px} px median")
        ax.plot(1.0 / res, 100 * np.array(list(r.signal_kept_p10.values())), color=colour, ls="--", lw=0.9)
    ax.axvline(1.0 / s.resolution_a, color="0.4", lw=0.8, ls=":")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("signal kept (%)")
    ax.set_ylim(0, 105)
    window = {"cryosparc": "cryoSPARC's window", "relion": "RELION's particle mask"}.get(s.program, "the box")
    ax.set_title(f"delocalised signal kept in {window} (dashed: 10th percentile)", fontsize=10)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    resolution_axis(ax)


def plot_neighbours(ax, explanation) -> None:
    """Share of particles with another picked particle in the window, against box size."""
    rows = [r for r in explanation.boxes if r.neighbours_fraction is not None]
    if not rows:
        ax.text(0.5, 0.5, "no coordinates: neighbours not counted", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    boxes = [r.box_px for r in rows]
    ax.plot(boxes, [100 * r.neighbours_fraction for r in rows], "o-", label="in the window as refined")
    ax.plot(boxes, [100 * (r.neighbours_fraction_box or 0) for r in rows], "s--", label="in the box")
    ax.set_xlabel("box (px)")
    ax.set_ylabel("particles with a neighbour (%)")
    ax.set_ylim(0, 105)
    ax.set_xticks(boxes)
    ax.set_title("neighbouring picks inside the window", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def figure_explain(explanation) -> Figure:
    fig = Figure(figsize=(11, 4.5))
    a, b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    plot_signal_kept(a, explanation)
    plot_neighbours(b, explanation)
    s = explanation.settings
    fig.suptitle(f"{s.diameter_a:g} Å particle at {s.pixel_size_a:g} Å/px, {explanation.n_particles:,} particles")
    fig.tight_layout()
    return fig
