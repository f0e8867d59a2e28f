"""`cryobox diagnose`: why the FSC looks the way it does.

Reads two half maps (and a mask, or builds the same auto mask as `cryobox fsc --auto-mask`),
computes the global FSC as `cryobox fsc` does, then, on the same masked half maps:

1. directional resolution: conical FSCs around ``n_directions`` axes spread over a hemisphere,
   each axis's resolution at 0.143, their spread, and cFAR;
2. with particles (poses): the viewing-direction distribution, its SCF and SCF*;
3. power spectra: the masked average map (signal + noise/2), the half-map difference (noise), and
   their ratio, with the FSC's dips, the ice-ring bands and (with defocus and box) the
   CTF-aliasing onset and the phase-randomisation shell marked;
4. a few sentences built from those numbers.

Writes diagnose.json and the figures into ``out``.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.jsonio import write_json
from cryobox.report.drawing import ForkedFigures, render_png, save_png

# The numerical modules (scipy's transforms, the particle readers) are imported inside the functions,
# after `run_diagnose` has forked the child that draws the figures: the child's import of matplotlib
# then overlaps the parent's imports and work instead of preceding them (docs/benchmarks.md: diagnose
# within twice the time of `cryobox fsc`).

__all__ = ["run_diagnose", "CFAR_ANISOTROPIC", "SCF_ANISOTROPIC"]

#: cryoSPARC's Orientation Diagnostics treats a cFAR below 0.5 as anisotropic
CFAR_ANISOTROPIC = 0.5
#: and cryobox calls a map mildly anisotropic below this cFAR
CFAR_MILD = 0.7
#: worst over best directional resolution at or above which the map is anisotropic, or mildly so
SPREAD_ANISOTROPIC = 1.25
SPREAD_MILD = 1.10
#: SCF* below which cryoSPARC calls the viewing directions anisotropic: 0.81, about the SCF of side
#: views only, 8/π² (Baldwin & Lyumkis 2020)
SCF_ANISOTROPIC = 0.81


def _resolution(curve: np.ndarray, box: int, pixel_a: float, threshold: float = 0.143) -> tuple[float, bool]:
    """Interpolated resolution at ``threshold``; (Nyquist, True) when the curve never falls below it."""
    from cryobox.core.fsc import first_shell_below, resolution_interpolated

    limited = first_shell_below(curve, threshold) is None
    return float(resolution_interpolated(curve, threshold, box_px=box, pixel_size_a=pixel_a)), limited


def run_diagnose(
    half1: Path,
    half2: Path,
    *,
    out: Path,
    mask: Path | None = None,
    auto_mask: bool = True,
    particles: Path | None = None,
    box_px: int | None = None,
    n_directions: int = 500,
    half_angle_deg: float = 20.0,
    pixel_size_a: float | None = None,
    plot: bool = True,
    log=None,
) -> dict:
    """Run the diagnosis (see the module docstring); returns the diagnose.json dict."""

    if not 10 <= n_directions <= 20000:
        raise InputError(
            f"`n_directions` must be between 10 and 20,000, got {n_directions}: cones of at least 5° overlap well "
            "before 20,000 axes, so more add nothing but memory."
        )
    if not 5 <= half_angle_deg <= 60:
        raise InputError(f"`half_angle_deg` must be between 5 and 60 degrees, got {half_angle_deg:g}.")
    out = Path(out)
    t0 = time.perf_counter()
    settings = {
        "half1": str(half1),
        "half2": str(half2),
        "mask": str(mask),
        "auto_mask": auto_mask,
        "particles": str(particles),
        "box_px": box_px,
        "n_directions": n_directions,
        "half_angle_deg": half_angle_deg,
    }
    # the figures' process starts now: it imports matplotlib while this one computes
    drawer = ForkedFigures("cryobox.report.plots_diagnose", "diagnose_figures") if plot else nullcontext()
    with drawer:
        return _diagnose(half1, half2, out=out, mask=mask, auto_mask=auto_mask, particles=particles, box_px=box_px,
                         n_directions=n_directions, half_angle_deg=half_angle_deg, pixel_size_a=pixel_size_a,
                         drawer=drawer if plot else None, settings=settings, t0=t0)  # fmt: skip


def _diagnose(half1, half2, *, out, mask, auto_mask, particles, box_px, n_directions, half_angle_deg, pixel_size_a,
              drawer, settings, t0) -> dict:  # fmt: skip
    from cryobox.core import diagnose as dg
    from cryobox.core.fourier import rfft_shell_index
    from cryobox.jobs.fsc import run_fsc
    from cryobox.jobs.outputs import OutputFolder

    table, views = _checked_particles(particles, half1)  # read and checked before any work
    with OutputFolder(
        out,
        job="diagnose",
        settings=settings,
        inputs=[p for p in (half1, half2, mask, particles) if p is not None],
        outputs=[out / "mask.mrc"],
        owns=("diagnose.json", "directional.png", "power.png", "views.png", "mask.mrc"),
    ):
        job = run_fsc(
            half1,
            half2,
            mask=mask,
            auto=auto_mask and mask is None,
            mask_out=out / "mask.mrc",
            pixel_size_a=pixel_size_a,
            keep_spectra=True,
        )
        res = job.result
        box, pixel_a = res.box_px, res.pixel_size_a
        f1, f2 = res.spectra  # the masked half maps' spectra, as the FSC computed them
        res.spectra = None
        shells = rfft_shell_index((box,) * 3)
        n_shells = box // 2 + 1
        freq = np.arange(n_shells) / (box * pixel_a)
        t_fsc = time.perf_counter() - t0

        # 1. directional resolution (the mask and the global curve of `cryobox fsc`)
        t1 = time.perf_counter()
        masked = res.fsc_masked if res.fsc_masked is not None else res.fsc_unmasked
        dr = dg.conical_resolution(
            f1, f2, shells, box, pixel_a, n_directions=n_directions, half_angle_deg=half_angle_deg, fill=masked
        )
        t_cones = time.perf_counter() - t1
        g_res, g_lim = _resolution(res.final, box, pixel_a)
        directional = _directional(dr, n_directions=n_directions, half_angle_deg=half_angle_deg)

        # 3. power spectra
        power = _power(f1, f2, shells, n_shells, freq, res.final, pixel_a)

        # 2. and the box: views, aliasing, phase randomisation
        marks: dict = {}
        if res.randomise_at_shell:
            marks["phase_randomisation_a"] = float(1.0 / freq[res.randomise_at_shell])
        if table is not None:
            true_pixel_a = float(table.data["pixel_size_a"].iloc[0]) if "pixel_size_a" in table.data else pixel_a
            marks.update(_aliasing(table, box_px or _table_box(table), true_pixel_a))
        elif box_px is not None:
            marks["box_px"] = box_px

        summary = _sentences(directional, power, views, marks, g_res, g_lim)
        result = _result(
            half1, half2, job, box=box, pixel_a=pixel_a, g_res=g_res, g_lim=g_lim, directional=directional, power=power,
            views=views, marks=marks, summary=summary,
            timings={"fsc_s": t_fsc, "cones_s": t_cones, "total_s": time.perf_counter() - t0},
        )  # fmt: skip
        write_json(out / "diagnose.json", result, indent=1)
        if drawer is not None:
            pngs = drawer.draw(result)
            if pngs is None:  # no child to draw them: here, the same figures
                from cryobox.report.plots_diagnose import diagnose_figures

                pngs = render_png(diagnose_figures(result))
            for name, data in pngs.items():
                save_png(data, out / name)
    return result


def _checked_particles(particles: Path | None, half1: Path):
    """The refinement's particles and their views, refused when their pixel size is not the
    maps' (a false aliasing sentence would follow); (None, None) without particles."""
    if particles is None:
        return None, None
    from cryobox.io.mrc import read_mrc_pixel_size
    from cryobox.io.particles import read_particles

    table = read_particles(particles)
    views = _views(table)
    map_pixel_a = read_mrc_pixel_size(half1)
    if map_pixel_a and "pixel_size_a" in table.data and len(table):
        particles_pixel_a = float(np.median(table.data["pixel_size_a"]))
        if abs(particles_pixel_a - map_pixel_a) > 0.01 * map_pixel_a:
            raise InputError(
                f"{particles}: the particles are at {particles_pixel_a:g} Å/px but {half1} at {map_pixel_a:g} Å/px; "
                "give the particles of the refinement that made these maps (`particles`)."
            )
    return table, views


def _directional(dr: dict, *, n_directions: int, half_angle_deg: float) -> dict:
    """diagnose.json's ``directional``: every cone's resolution, and the summary over the
    directions reported (a cone that held too few voxels at its crossing is not), with the
    anisotropy thresholds applied."""
    from cryobox.core import diagnose as dg

    dirs, cones, all_res, limited = dr["directions"], dr["curves"], dr["resolution_a"], dr["limited_by_nyquist"]
    reported = dr["reported"]
    # only directions whose cone held enough voxels at their crossing speak for themselves
    use = reported if reported.any() else np.ones_like(reported)
    dir_res, dir_axes = all_res[use], dirs[use]
    return {
        "n_directions": int(n_directions),
        "half_angle_deg": half_angle_deg,
        "directions": dirs.round(5).tolist(),
        "resolution_a": all_res.round(4).tolist(),
        "limited_by_nyquist": limited.tolist(),
        "reported": reported.tolist(),
        "n_reported": int(reported.sum()),
        "min_cone_voxels": dg.MIN_CONE_VOXELS,
        "best_a": float(dir_res.min()),
        "worst_a": float(dir_res.max()),
        "median_a": float(np.median(dir_res)),
        "iqr_a": [float(np.percentile(dir_res, 25)), float(np.percentile(dir_res, 75))],
        "worst_direction": dir_axes[int(np.argmax(dir_res))].round(4).tolist(),
        "cfar": dr["cfar"],
        "cfar_min_over_mean": dr["cfar_min_over_mean"],
        "anisotropic": bool(
            dr["cfar"] < CFAR_ANISOTROPIC or float(dir_res.max() / dir_res.min()) >= SPREAD_ANISOTROPIC
        ),
        "mildly_anisotropic": bool(dr["cfar"] < CFAR_MILD or float(dir_res.max() / dir_res.min()) >= SPREAD_MILD),
        "spread": float(dir_res.max() / dir_res.min()),
        "curves_mean": cones.mean(axis=0).round(5).tolist(),
        "curves_min": cones.min(axis=0).round(5).tolist(),
        "curves_max": cones.max(axis=0).round(5).tolist(),
    }


def _power(f1, f2, shells, n_shells: int, freq, final, pixel_a: float) -> dict:
    """diagnose.json's ``power``: the map's and the noise's power per shell (the transform is
    linear: the average's and the difference's spectra come from the halves' without two more
    FFTs), their ratio and SSNR, the FSC's dips with their likely cause, and the ice rings."""
    from cryobox.core import diagnose as dg

    avg = 0.5 * (f1 + f2)
    diff = 0.5 * (f1 - f2)
    p_avg = dg.radial_power(avg, shells, n_shells)
    p_noise = dg.radial_power(diff, shells, n_shells)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p_noise > 0, p_avg / p_noise, np.nan)
    # the dips that matter: the curve climbs back to the threshold region after them (a "hill")
    dips = [d for d in dg.fsc_dips(final) if d["peak_fsc"] >= 0.143]
    for d in dips:
        d["dip_a"] = float(1.0 / freq[d["dip_shell"]])
        d["peak_a"] = float(1.0 / freq[d["peak_shell"]])
        d.update(_dip_cause(d["dip_shell"], p_avg, p_noise))
    ice = _ice_rings(freq, p_avg, p_noise, final, pixel_a)
    return {
        "frequency_inv_a": freq.round(6).tolist(),
        "fsc": np.asarray(final).round(5).tolist(),
        "map_power": p_avg.tolist(),
        "noise_power": p_noise.tolist(),
        "ratio": np.nan_to_num(ratio, nan=0.0).tolist(),
        "ssnr": np.nan_to_num(np.clip(ratio - 1.0, 0.0, None), nan=0.0).tolist(),
        "fsc_dips": dips,
        "ice_rings": ice,
    }


def _result(
    half1, half2, job, *, box, pixel_a, g_res, g_lim, directional, power, views, marks, summary, timings
) -> dict:
    """The diagnose.json dict, with the definitions of what it reports."""
    return {
        "cryobox": "diagnose",
        "version": 1,
        "half1": str(half1),
        "half2": str(half2),
        "mask": job.mask or "none (unmasked)",
        "box_px": box,
        "pixel_size_a": pixel_a,
        "global_resolution_a": g_res,
        "global_limited_by_nyquist": g_lim,
        "directional": directional,
        "power": power,
        "views": views,
        "marks": marks,
        "summary": summary,
        "notes": job.notes,
        "timings": timings,
        "definitions": {
            "cfar": "area under each conical FSC (clipped to [0, 1], first shell to Nyquist, over 1/Å); the "
            "smallest area over the largest (cryoSPARC's Orientation Diagnostics; < 0.5 anisotropic); "
            "cfar_min_over_mean: the smallest over the mean",
            "scf": "S(k): views whose central planes pass within half a voxel of direction k on the shell of "
            "radius R voxels; SCF = 1 / (<S> <1/S>), <1/S> over sampled k; SCF* = SCF / (1 + (q/p) <S> SCF / 2), "
            "q the unsampled fraction, p = 1 - q (Baldwin & Lyumkis, Prog. Biophys. Mol. Biol. 2020; as in the "
            "authors' CommandLineSCF): 1 uniform, 8/π² = 0.81 side views only, ~0 top views only; cryoSPARC "
            "calls SCF* < 0.81 anisotropic",
            "ssnr": "map power / noise power - 1 per shell: the SNR of the averaged map (map: masked average of "
            "the half maps; noise: masked half difference); the FSC it predicts is SSNR / (2 + SSNR)",
        },
    }


def _dip_cause(shell: int, p_avg: np.ndarray, p_noise: np.ndarray, reach: int = 2) -> dict:
    """Whether a dip sits where the map's own power has a local minimum, or where the noise rises."""
    lo, hi = max(1, shell - reach), min(p_avg.size - 1, shell + reach)
    window = p_avg[lo : hi + 1]
    near_min = bool(window.size and np.argmin(window) + lo in range(shell - reach, shell + reach + 1))
    around = np.r_[p_avg[max(1, lo - 3) : lo], p_avg[hi + 1 : hi + 4]]
    signal_min = bool(near_min and around.size and window.min() < 0.8 * np.median(around))
    noise_around = np.r_[p_noise[max(1, lo - 3) : lo], p_noise[hi + 1 : hi + 4]]
    noise_rise = bool(noise_around.size and p_noise[lo : hi + 1].max() > 1.25 * np.median(noise_around))
    return {"map_power_minimum": signal_min, "noise_rises": noise_rise}


def _ice_rings(freq, p_avg, p_noise, fsc, pixel_a) -> list[dict]:
    from cryobox.core.diagnose import ICE_RINGS_A

    out = []
    for spacing, label in ICE_RINGS_A:
        k = 1.0 / spacing
        if k > freq[-1]:
            continue
        s = int(round(k / freq[1]))
        band = slice(max(1, s - 1), s + 2)
        side = np.r_[np.arange(max(1, s - 6), max(1, s - 2)), np.arange(s + 3, min(freq.size, s + 7))]
        if side.size == 0:
            continue
        excess = float(np.mean(p_avg[band]) / np.median(p_avg[side])) if np.median(p_avg[side]) > 0 else 1.0
        fsc_step = float(np.mean(np.asarray(fsc)[band]) - np.median(np.asarray(fsc)[side]))
        out.append({"spacing_a": spacing, "ice": label, "shell": s, "power_excess": excess, "fsc_change": fsc_step})
    return out


def _table_box(table) -> int | None:
    d = table.data
    return int(d["box_px"].iloc[0]) if "box_px" in d and len(d) else None


def _views(table) -> dict:
    from cryobox.core.diagnose import SCF_MIN_VIEWS, sampling_compensation_factor, viewing_directions

    table.require(purpose="the orientation coverage")  # a file with no rows says so
    d = table.data
    if "angle_rot_deg" not in d or "angle_tilt_deg" not in d:
        raise InputError(
            f"{table.path}: no poses (rlnAngleRot, rlnAngleTilt / alignments3D/pose); give the data STAR of a "
            "refinement (run_data.star) or a cryoSPARC .cs with 3D alignments for the orientation coverage."
        )
    v = viewing_directions(d["angle_rot_deg"].to_numpy(float), d["angle_tilt_deg"].to_numpy(float))
    hemi = np.where(v[:, 2:3] < 0, -v, v)  # a view and its opposite fill the same central plane
    hist, _, _ = np.histogram2d(
        np.arctan2(hemi[:, 1], hemi[:, 0]), hemi[:, 2], bins=(72, 18), range=((-np.pi, np.pi), (0.0, 1.0))
    )
    out = {
        "n_particles": int(len(v)),
        "scf": None,
        "scf_star": None,
        "anisotropic": None,
        "unsampled_fraction": None,
        "fourier_radius_voxels": None,
        "n_views_used": None,
        "histogram_phi_cos_tilt": hist.astype(int).tolist(),
    }
    if len(v) < SCF_MIN_VIEWS:
        out["note"] = f"{len(v)} particles: too few for an SCF (at least {SCF_MIN_VIEWS})"
        return out
    scf = sampling_compensation_factor(v)
    out.update(
        scf=scf["scf"],
        scf_star=scf["scf_star"],
        anisotropic=bool(scf["scf_star"] < SCF_ANISOTROPIC),
        unsampled_fraction=scf["unsampled_fraction"],
        fourier_radius_voxels=scf["fourier_radius"],
        n_views_used=scf["n_views_used"],
    )
    return out


def _aliasing(table, box: int | None, pixel_a: float) -> dict:
    from cryobox.core.boxsize import aliasing_limited_resolution_a

    d = table.data
    need = ("defocus_u_a", "defocus_v_a", "voltage_kv", "cs_mm")
    if box is None or any(c not in d for c in need):
        return {}
    df = float(np.percentile(np.maximum(d["defocus_u_a"], d["defocus_v_a"]), 95))
    kv, cs = float(d["voltage_kv"].iloc[0]), float(d["cs_mm"].iloc[0])
    onset = aliasing_limited_resolution_a(box, pixel_a, defocus_a=df, voltage_kv=kv, cs_mm=cs)
    return {"box_px": int(box), "defocus_95th_a": df, "ctf_aliasing_onset_a": float(onset)}


def _sentences(directional: dict, power: dict, views: dict | None, marks: dict, g_res: float, g_lim: bool) -> list:
    """A few sentences, each built from the numbers above it."""
    out = []
    lo, hi, c = directional["best_a"], directional["worst_a"], directional["cfar"]
    w = np.asarray(directional["worst_direction"], dtype=float)
    tilt = float(np.degrees(np.arccos(min(1.0, abs(w[2])))))
    worst = f"worst along ({w[0]:.2f}, {w[1]:.2f}, {w[2]:.2f}) (x, y, z), {tilt:.0f}° from z"
    rule = (
        f"anisotropic below cFAR {CFAR_ANISOTROPIC} or at a worst/best ratio of {SPREAD_ANISOTROPIC}, mildly so below "
        f"{CFAR_MILD} or at {SPREAD_MILD}"
    )
    numbers = f"directional resolution {lo:.1f}-{hi:.1f} Å (ratio {hi / lo:.2f}), cFAR {c:.2f}"
    n_rep, n_all = directional.get("n_reported"), directional.get("n_directions")
    if n_rep is not None and n_rep < n_all:
        numbers += (
            f" ({n_rep} of {n_all} directions: the others' cones hold fewer than "
            f"{directional['min_cone_voxels']} Fourier voxels at their crossing"
            + ("; none does, so all are shown)" if n_rep == 0 else ")")
        )
    views_show = bool(views is not None and views.get("scf_star") is not None and views.get("anisotropic"))
    if directional["anisotropic"] or directional.get("mildly_anisotropic"):
        how = "anisotropic" if directional["anisotropic"] else "mildly anisotropic"
        cause = (
            f"; the viewing directions show why: SCF* {views['scf_star']:.2f} (preferred orientation)"
            if views_show
            else (
                "; the views do not show preferred orientation (SCF* {:.2f}), so look elsewhere (flexibility, "
                "alignment, the mask)".format(views["scf_star"])
                if views is not None and views.get("scf_star") is not None
                else "; the maps alone do not tell why: give the refinement's particle file to see its views"
            )
        )
        out.append(f"{numbers}: {how} ({rule}); {worst}{cause}.")
    else:
        out.append(f"{numbers}: no sign of anisotropy ({rule}).")
    if views is not None and views["scf_star"] is not None:
        s, q = views["scf_star"], views["unsampled_fraction"]
        gap = f", {q:.0%} of Fourier directions never sampled" if q > 0 else ""
        if views["anisotropic"]:
            out.append(
                f"the viewing directions give SCF* {s:.2f} (below {SCF_ANISOTROPIC}{gap}): some directions of Fourier "
                "space are sampled much less than others (preferred orientation)."
            )
        else:
            out.append(f"the viewing directions give SCF* {s:.2f} (1 uniform, 0.81 side views only): coverage is fine.")
    elif views is not None:
        out.append(f"the viewing directions: {views['note']}.")
    for d in power["fsc_dips"]:
        where = f"the FSC dips at {d['dip_a']:.1f} Å and rises again to {d['peak_fsc']:.2f} at {d['peak_a']:.1f} Å"
        if d["map_power_minimum"] and not d["noise_rises"]:
            out.append(
                f"{where}, where the map's own power has a minimum (little signal at that scale), not where the "
                "noise rises."
            )
        elif d["noise_rises"]:
            out.append(
                f"{where}, where the noise power rises (an artefact or a ring in the noise, not a lack of signal)."
            )
        else:
            out.append(f"{where}; neither the map's power nor the noise shows a feature there.")
    ice = [r for r in power["ice_rings"] if r["power_excess"] > 1.3 or abs(r["fsc_change"]) > 0.1]
    if power["ice_rings"] and not ice:
        out.append("nothing unusual at the ice-ring bands (3.90-1.92 Å).")
    for r in ice:
        out.append(
            f"at the ice ring {r['spacing_a']:.2f} Å ({r['ice']}) the map's power is {r['power_excess']:.2f}x its "
            f"neighbours' and the FSC changes by {r['fsc_change']:+.2f}: crystalline ice may contribute."
        )
    if "ctf_aliasing_onset_a" in marks:
        a = marks["ctf_aliasing_onset_a"]
        out.append(
            f"the {marks['box_px']} px box samples the CTF without aliasing to {a:.2f} Å at the 95th-percentile "
            f"defocus ({marks['defocus_95th_a'] / 1e4:.2f} µm); "
            + (
                f"the map ({g_res:.2f} Å) is finer, so CTF aliasing can limit it: a bigger box, or premultiply + crop."
                if a > g_res
                else f"the map ({g_res:.2f} Å) is coarser, so aliasing does not limit it."
            )
        )
    return out
