"""The figures of `cryobox diagnose`: directional resolution, power spectra, the views.

They are laid out with fixed margins and drawn once (``save_figure(..., tight=False)``), and their
log axis is labelled without mathtext: drawing is most of diagnose's time on small maps."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatter, NullFormatter

from cryobox.report.plots import resolution_axis

__all__ = ["diagnose_figures", "figure_diagnose_directional", "figure_diagnose_power", "figure_views"]


def diagnose_figures(d: dict) -> dict[str, Figure]:
    """The figures of one diagnose.json dict, by file name (the views only when it has them)."""
    figures = {"directional.png": figure_diagnose_directional(d), "power.png": figure_diagnose_power(d)}
    if d.get("views") is not None:
        figures["views.png"] = figure_views(d["views"])
    return figures


def figure_diagnose_directional(d: dict) -> Figure:
    """Directional resolution: a histogram over the cone axes, and a map of resolution over the
    axes (azimuth against cos(polar angle), so equal areas of the hemisphere look equal)."""
    dd = d["directional"]
    res = np.asarray(dd["resolution_a"])
    dirs = np.asarray(dd["directions"])
    fig = Figure(figsize=(12, 4.8))
    fig.subplots_adjust(left=0.06, right=0.97, bottom=0.12, top=0.91, wspace=0.22)
    ax = fig.add_subplot(121)
    ax.hist(res, bins=30, color="#4477aa")
    ax.axvline(d["global_resolution_a"], color="k", ls="--", lw=1, label=f"global {d['global_resolution_a']:.2f} Å")
    ax.set_xlabel("resolution at FSC 0.143 (Å) in each cone")
    ax.set_ylabel("cone axes")
    ax.set_title(
        f"{dd['n_directions']} cones of {dd['half_angle_deg']:g}°: {dd['best_a']:.2f}-{dd['worst_a']:.2f} Å, "
        f"cFAR {dd['cfar']:.2f}"
    )
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(122)
    phi = np.degrees(np.arctan2(dirs[:, 1], dirs[:, 0]))
    sc = ax2.scatter(phi, dirs[:, 2], c=res, cmap="viridis_r", s=18)
    fig.colorbar(sc, ax=ax2, label="resolution (Å)")
    ax2.set_xlabel("azimuth of the cone axis (°)")
    ax2.set_ylabel("cos(polar angle) of the axis (1 = map z)")
    ax2.set_xlim(-180, 180)
    ax2.set_ylim(0, 1)
    ax2.set_title("resolution over the directions (equal-area)")
    return fig


def figure_diagnose_power(d: dict) -> Figure:
    """Power of the masked average map and of the half-map difference (noise), their ratio, and
    the FSC, against 1/Å, with the FSC's dips, ice rings, aliasing onset and phase randomisation."""
    p = d["power"]
    k = np.asarray(p["frequency_inv_a"])
    fig = Figure(figsize=(10, 7.5))
    fig.subplots_adjust(left=0.09, right=0.97, bottom=0.08, top=0.91, hspace=0.08)
    ax = fig.add_subplot(211)
    ax.semilogy(k[1:], np.asarray(p["map_power"])[1:], lw=1.6, label="map (masked average of the halves)")
    ax.semilogy(k[1:], np.asarray(p["noise_power"])[1:], lw=1.6, label="noise (masked half difference)")
    ax.set_ylabel("power per shell")
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))  # "1e-05": no mathtext to parse
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelbottom=False)  # the panel below carries the frequency labels
    ax.legend(fontsize=8, loc="upper right")
    ax2 = fig.add_subplot(212, sharex=ax)
    ax2.plot(k[1:], np.asarray(p["fsc"])[1:], lw=1.6, color="k", label="FSC (as cryobox fsc)")
    ax2.plot(
        k[1:],
        # the SSNR is that of the averaged map: the half-map FSC it predicts is SSNR / (2 + SSNR)
        np.clip(np.asarray(p["ssnr"])[1:], 0, None) / (2 + np.clip(np.asarray(p["ssnr"])[1:], 0, None)),
        lw=1.0,
        ls=":",
        color="#aa3377",
        label="SSNR / (2 + SSNR) from the spectra (the FSC they predict)",
    )
    ax2.axhline(0.143, color="grey", lw=0.8)
    for a in (ax, ax2):
        for r in p["ice_rings"]:
            a.axvspan(1 / r["spacing_a"] - k[1], 1 / r["spacing_a"] + k[1], color="#88ccee", alpha=0.35, lw=0)
        for dip in p["fsc_dips"]:
            a.axvline(k[dip["dip_shell"]], color="#cc6677", ls="--", lw=1)
        m = d.get("marks") or {}
        if "ctf_aliasing_onset_a" in m:
            a.axvline(1 / m["ctf_aliasing_onset_a"], color="#999933", lw=1.2)
        if "phase_randomisation_a" in m:
            a.axvline(1 / m["phase_randomisation_a"], color="#882255", ls=":", lw=1.2)
    handles = [
        ax2.lines[0],
        ax2.lines[1],
    ]
    if p["ice_rings"]:
        handles += [Patch(color="#88ccee", alpha=0.35, label="ice rings (hexagonal, cubic)")]
    if p["fsc_dips"]:
        handles.append(Line2D([], [], color="#cc6677", ls="--", label="FSC dips"))
    m = d.get("marks") or {}
    if "ctf_aliasing_onset_a" in m:
        handles.append(Line2D([], [], color="#999933", label=f"CTF aliasing onset ({m['ctf_aliasing_onset_a']:.2f} Å)"))
    if "phase_randomisation_a" in m:
        handles.append(
            Line2D([], [], color="#882255", ls=":", label=f"phase randomisation ({m['phase_randomisation_a']:.2f} Å)")
        )
    ax2.legend(handles=handles, fontsize=8, loc="lower left")
    ax2.set_ylim(-0.05, 1.02)
    ax2.set_xlabel("spatial frequency (1/Å)")
    ax2.set_ylabel("FSC")
    ax2.set_xlim(0, float(k[-1]))
    resolution_axis(ax)
    return fig


def figure_views(v: dict) -> Figure:
    """Viewing directions, equal-area: azimuth against cos(tilt), a view and its opposite as one."""
    h = np.asarray(v["histogram_phi_cos_tilt"], dtype=float)
    fig = Figure(figsize=(8, 4))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.9)
    ax = fig.add_subplot(111)
    im = ax.imshow(h.T, origin="lower", aspect="auto", extent=(-180, 180, 0, 1), cmap="magma")
    fig.colorbar(im, ax=ax, label="particles")
    ax.set_xlabel("rot (azimuth of the view, °)")
    ax.set_ylabel("|cos(tilt)| (1 = top view)")
    scf = "too few for an SCF"
    if v.get("scf_star") is not None:
        scf = f"SCF* {v['scf_star']:.2f} (1 uniform, 0.81 side views only)"
    ax.set_title(f"{v['n_particles']:,} particles; {scf}")
    return fig
