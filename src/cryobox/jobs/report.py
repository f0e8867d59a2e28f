"""`cryobox report`: one self-contained HTML page for a dataset (and its FSC / sweep results)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path
from cryobox.io.fsc_files import load_curve
from cryobox.io.particles import read_particles
from cryobox.jobs.advise import advise_files
from cryobox.jobs.ctf import compute_ctf_picture, parameters_from_table
from cryobox.jobs.explain import measured_from_curves, measured_from_runs
from cryobox.jobs.inspect import inspect_table
from cryobox.jobs.outputs import check_outputs
from cryobox.report.html import render_report

__all__ = ["build_report", "defocus_sample", "MAX_SAMPLE"]

MAX_SAMPLE = 20000  # per-particle defocus values embedded in the page


def defocus_sample(defocus_max_a: np.ndarray, *, max_n: int = MAX_SAMPLE) -> np.ndarray:
    """Sorted per-particle defocus (Å); above ``max_n`` particles, ``max_n`` evenly spaced order
    statistics (so percentiles and fractions match the full set to 1/max_n)."""
    v = np.sort(np.abs(np.asarray(defocus_max_a, dtype=np.float64)))
    if v.size > max_n:
        v = v[np.round(np.linspace(0, v.size - 1, max_n)).astype(np.int64)]
    return v


def load_runs_result(path: Path, kind: str) -> dict:
    """A sweep.json, judge.json or diagnose.json (``kind``), from the file or the folder that holds it."""
    p = Path(path)
    if p.is_dir():
        p = p / f"{kind}.json"
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{p}: not a readable {kind}.json ({exc}); give the folder `cryobox {kind} --out` wrote."
        ) from None
    if not isinstance(d, dict) or d.get("cryobox") != kind:
        raise InputError(f"{p}: not a cryobox {kind} result (no 'cryobox: {kind}' field).")
    return d


def _same_grid(curve, pixel_size_a: float) -> bool:
    """An FSC curve on the particles' pixel size (curves of other runs are shown, not explained)."""
    return abs(curve.pixel_size_a - pixel_size_a) <= 0.01 * pixel_size_a


def build_report(
    particles: Path,
    *,
    out: Path,
    diameter_a: float,
    resolution_a: float,
    sweep: Path | dict | None = None,
    judge: Path | dict | None = None,
    diagnose: Path | dict | None = None,
    fsc: list | None = None,
    boxes_px: tuple[int, ...] = (),
    title: str | None = None,
    candidate_ctf_boxes: int = 4,
) -> dict:
    """Gather inspect, advise, CTF pictures, FSC, sweep and judge results and write one HTML file.

    ``fsc`` takes run specs as `cryobox compare` does (``[LABEL=]PATH[@BOX:PIXELSIZE]``: cryobox
    JSON/STAR, postprocess.star, run_model.star, cryoSPARC text). The user's boxes (``boxes_px``,
    the file's own box and the boxes of the sweep or judge runs) are rows of the advice table,
    marked. The page opens with a paragraph built from its numbers.
    """
    # the sections draw with matplotlib: imported when a report is made, not with the job modules
    from cryobox.report.sections import (
        Figures,
        advice_section,
        answer_full_section,
        answer_section,
        causes_section,
        ctf_section,
        dataset_section,
        diagnose_section,
        explore_section,
        fsc_section,
        runs_section,
    )

    t0 = time.perf_counter()
    ins_paths = [particles]
    for p, kind in ((sweep, "sweep"), (judge, "judge"), (diagnose, "diagnose")):
        if isinstance(p, (str, Path)):  # a folder stands for the result file in it
            ins_paths += [Path(p), Path(p) / f"{kind}.json"]
    ins_paths += [str(spec).split("=", 1)[-1].split("@", 1)[0] for spec in fsc or ()]
    check_outputs([out], ins_paths, names=["out"])
    table = read_particles(particles)
    table.require(purpose="the report")  # a file with no rows says so (its medians would be NaN)
    sw, jd, dg = (
        r if r is None or isinstance(r, dict) else load_runs_result(r, kind)
        for r, kind in ((sweep, "sweep"), (judge, "judge"), (diagnose, "diagnose"))
    )
    psize_particles = float(np.median(table.data["pixel_size_a"])) if "pixel_size_a" in table.data else None
    run_boxes, run_notes = _run_boxes((sw, jd), psize_particles)
    curves = [load_curve(spec) for spec in (fsc or [])]
    measured = measured_from_curves(c for c in curves if psize_particles is None or _same_grid(c, psize_particles))
    for r in (sw, jd):
        if r and r["variants"] and any(v["box_px"] in run_boxes for v in r["variants"]):
            measured += measured_from_runs(r)
    adv = advise_files(
        [],
        tables=[table],
        diameter_a=diameter_a,
        resolution_a=resolution_a,
        boxes_px=tuple(boxes_px) + run_boxes,
        measured=measured,
    )
    a = adv.advice
    d = table.data
    df_max = np.maximum(np.abs(d["defocus_u_a"].to_numpy(float)), np.abs(d["defocus_v_a"].to_numpy(float)))
    sample = defocus_sample(df_max)
    data = _explorer_data(table, adv, sample, run_boxes, diameter_a=diameter_a, resolution_a=resolution_a)
    want = [c.box_px for c in a.candidates if c.user_box] + [a.recommended_refine_box_px, a.recommended_extract_box_px]
    pictures = [
        (b, compute_ctf_picture(parameters_from_table(table, percentile=95, box_px=int(b)), resolution_a=resolution_a))
        for b in list(dict.fromkeys(want))[:candidate_ctf_boxes]
    ]
    runs = sw or jd
    warnings = [f"Pixel size: {n}." for n in run_notes]
    if runs and runs.get("not_converged"):
        warnings.append(
            f"{len(runs['not_converged'])} run(s) did not converge: every verdict below rests on them (see the runs)."
        )
    figs = Figures()
    top = [answer_section(adv, runs, resolution_a=resolution_a, warnings=warnings)]
    if adv.explanation is not None:
        top.append(causes_section(adv.explanation, figs))
    more = [answer_full_section(adv, runs, resolution_a=resolution_a)]
    more += [runs_section(res, figs) for res in (sw, jd) if res]
    if curves:
        more.append(fsc_section(curves, figs))
    if dg:
        more.append(diagnose_section(dg, figs))
    more += [
        advice_section(adv, diameter_a=diameter_a, resolution_a=resolution_a, notes=run_notes, figs=figs),
        explore_section(data, sample_size=sample.size, n_particles=adv.n_particles),
        ctf_section(pictures, pixel_size_a=a.pixel_size_a, resolution_a=resolution_a, figs=figs),
        dataset_section(inspect_table(table), d["defocus_u_a"].to_numpy(float), d["defocus_v_a"].to_numpy(float), figs),
    ]
    page = render_report(
        title=title or f"cryobox report: {Path(particles).name}",
        subtitle=f"{adv.n_particles:,} particles · {a.pixel_size_a:g} Å/px · D = {diameter_a:g} Å · target "
        f"{resolution_a:g} Å · "
        f"made {time.strftime('%Y-%m-%d %H:%M')}",
        top=top,
        more=more,
        data=data,
    )
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return {
        "path": str(out),
        "bytes": len(page.encode("utf-8")),
        "figures": figs.count,
        "data": data,
        "seconds": time.perf_counter() - t0,
    }


def _run_boxes(results, psize_particles: float | None) -> tuple[tuple[int, ...], list[str]]:
    """The boxes of the sweep's or judge's runs that become rows of the advice table, and a note
    for each result at another pixel size than the particles' (its boxes are left out)."""
    boxes: tuple[int, ...] = ()
    notes = []
    for r in results:
        if not r:
            continue
        if psize_particles and abs(r["pixel_size_a"] - psize_particles) > 0.01 * psize_particles:
            notes.append(
                f"the {r['cryobox']} runs are at {r['pixel_size_a']:g} Å/px, the particles at {psize_particles:g} "
                "Å/px: their boxes are not rows of the advice table"
            )
            continue
        boxes += tuple(v["box_px"] for v in r["variants"])
    return boxes, notes


def _explorer_data(
    table, adv, sample: np.ndarray, run_boxes: tuple[int, ...], *, diameter_a: float, resolution_a: float
) -> dict:
    """What the page's box explorer computes from in the browser (its slider's range and start,
    the optics and a defocus sample)."""
    a, d = adv.advice, table.data
    boxes_seen = [c.box_px for c in a.candidates] + list(run_boxes)
    return {
        "pixel_size_a": a.pixel_size_a,
        "voltage_kv": float(np.median(d["voltage_kv"])) if "voltage_kv" in d else 300.0,
        "cs_mm": float(np.median(d["cs_mm"])) if "cs_mm" in d else 2.7,
        "amplitude_contrast": float(np.median(d["amplitude_contrast"])) if "amplitude_contrast" in d else 0.1,
        "diameter_a": diameter_a,
        "resolution_a": resolution_a,
        "defocus_sample_a": [float(v) for v in sample],
        "n_particles": int(adv.n_particles),
        "box_min_px": max(8, int(min(boxes_seen) * 0.8) // 2 * 2),
        "box_max_px": int(max(boxes_seen) * 1.25) // 2 * 2,
        "initial_box_px": a.recommended_refine_box_px,
        "cost_base_px": a.candidates[0].box_px,  # the table's baseline, so the slider's cost agrees with it
    }
