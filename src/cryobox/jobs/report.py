"""`cryobox report`: one self-contained HTML page for a dataset (and its FSC / sweep results)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path
from cryobox.report.text import fmt, half_maps_text

__all__ = ["build_report", "defocus_sample", "MAX_SAMPLE"]

MAX_SAMPLE = 20000  # per-particle defocus values embedded in the page


def defocus_sample(defocus_max_a: np.ndarray, *, max_n: int = MAX_SAMPLE) -> np.ndarray:
    """Sorted per-particle defocus (Å); above ``max_n`` particles, ``max_n`` evenly spaced order
    statistics (so percentiles and fractions match the full set to 1/max_n)."""
    v = np.sort(np.abs(np.asarray(defocus_max_a, dtype=np.float64)))
    if v.size > max_n:
        v = v[np.round(np.linspace(0, v.size - 1, max_n)).astype(np.int64)]
    return v


def _fmt(v, spec=".3g"):
    return fmt(v, spec, none="–")


def _kv_table(rows: list[tuple[str, str]]) -> str:
    from cryobox.report.html import esc

    return '<table class="kv">' + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"


def load_runs_result(path: Path, kind: str) -> dict:
    """A sweep.json or judge.json (``kind``: "sweep" or "judge"), from the file or the folder that holds it."""
    p = Path(path)
    if p.is_dir():
        p = p / f"{kind}.json"
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{p}: not a readable {kind}.json ({exc}); give the folder `cryobox {kind} --out` wrote."
        ) from None
    if d.get("cryobox") != kind:
        raise InputError(f"{p}: not a cryobox {kind} result (no 'cryobox: {kind}' field).")
    return d


def build_report(
    particles: Path,
    *,
    out: Path,
    diameter_a: float,
    resolution_a: float,
    sweep: Path | dict | None = None,
    judge: Path | dict | None = None,
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
    from cryobox.io.fsc_files import load_curve
    from cryobox.io.particles import read_particles
    from cryobox.jobs.advise import advise_files
    from cryobox.jobs.ctf import compute_ctf_picture, parameters_from_table
    from cryobox.jobs.inspect import inspect_table
    from cryobox.report import plots
    from cryobox.report.html import esc, figure_to_data_uri, render_report, rgb_to_data_uri
    from cryobox.report.text import opening_paragraph

    t0 = time.perf_counter()
    table = read_particles(particles)
    ins = inspect_table(table)
    sw = None if sweep is None else (sweep if isinstance(sweep, dict) else load_runs_result(sweep, "sweep"))
    jd = None if judge is None else (judge if isinstance(judge, dict) else load_runs_result(judge, "judge"))
    psize_particles = float(np.median(table.data["pixel_size_a"])) if "pixel_size_a" in table.data else None
    run_notes = []
    run_boxes: tuple[int, ...] = ()
    for r in (sw, jd):
        if not r:
            continue
        if psize_particles and abs(r["pixel_size_a"] - psize_particles) > 0.01 * psize_particles:
            run_notes.append(
                f"the {r['cryobox']} runs are at {r['pixel_size_a']:g} Å/px, the particles at {psize_particles:g} "
                "Å/px: "
                "their boxes are not rows of the advice table"
            )
            continue
        run_boxes += tuple(v["box_px"] for v in r["variants"])
    adv = advise_files(
        [], tables=[table], diameter_a=diameter_a, resolution_a=resolution_a, boxes_px=tuple(boxes_px) + run_boxes
    )
    a = adv.advice
    inputs_kv = float(np.median(table.data["voltage_kv"])) if "voltage_kv" in table.data else 300.0
    inputs_cs = float(np.median(table.data["cs_mm"])) if "cs_mm" in table.data else 2.7
    curves = [load_curve(spec) for spec in (fsc or [])]
    n_fig = 0
    sections = []

    def img(fig, alt):
        nonlocal n_fig
        n_fig += 1
        return f'<img class="fig" alt="{esc(alt)}" src="{figure_to_data_uri(fig)}">'

    # 1. the dataset
    rows = [
        ("file", ins.path),
        ("format", ins.source_format),
        ("particles", _fmt(ins.n_particles)),
        ("micrographs", _fmt(ins.n_micrographs)),
        ("optics groups", _fmt(ins.n_optics_groups)),
        ("pixel size (Å/px)", _fmt(ins.pixel_size_a, ".4g")),
        ("box (px)", _fmt(ins.box_px)),
        ("voltage (kV)", _fmt(ins.voltage_kv)),
        ("Cs (mm)", _fmt(ins.cs_mm)),
        ("amplitude contrast", _fmt(ins.amplitude_contrast)),
        ("CTF premultiplied", _fmt(ins.ctf_premultiplied)),
    ]
    for name, stat in (
        ("defocus U (Å)", ins.defocus_u_a),
        ("defocus V (Å)", ins.defocus_v_a),
        ("astigmatism (Å)", ins.astigmatism_a),
        ("particles per micrograph", ins.particles_per_micrograph),
    ):
        if stat:
            rows.append(
                (
                    name,
                    "min {min:.0f} · p5 {p5:.0f} · median {median:.0f} · p95 {p95:.0f} · max {max:.0f}".format(**stat),
                )
            )
    d = table.data
    sections.append(
        (
            "dataset",
            "Dataset (cryobox inspect)",
            _kv_table(rows)
            + img(
                plots.figure_defocus_histogram(
                    d["defocus_u_a"].to_numpy(float), d["defocus_v_a"].to_numpy(float), title="defocus"
                ),
                "defocus histogram",
            ),
        )
    )

    # 2. the advice
    rec = {a.recommended_refine_box_px, a.recommended_extract_box_px}
    base_px = a.candidates[0].box_px
    head = (
        "box (px)",
        "box (Å)",
        "CTF alias-free",
        "CTF² alias-free",
        "delocalisation held",
        "edge loss (cryoSPARC drops, RELION fills)",
        "alias-free to (p95 defocus, Å)",
        f"cost per image (vs {base_px} px)",
        f"cost per volume (vs {base_px} px)",
        "cryoSPARC window, full weight / zero (Å)",
        "",
    )
    trs = []
    for c in a.candidates:
        marks = (
            (["refine"] if c.box_px == a.recommended_refine_box_px else [])
            + (["extract"] if c.box_px == a.recommended_extract_box_px and a.premultiply else [])
            + (["yours"] if c.user_box else [])
        )
        cells = [
            str(c.box_px),
            f"{c.box_a:.0f}",
            f"{100 * c.aliasing_free_fraction:.1f}%",
            f"{100 * c.ctf2_aliasing_free_fraction:.1f}%",
            f"{100 * c.delocalisation_fraction:.1f}%",
            "–" if c.edge_loss_fraction is None else f"{100 * c.edge_loss_fraction:.1f}%",
            _fmt(c.aliasing_limited_resolution_p95_a, ".2f"),
            f"{c.relative_cost_2d:.2f}x",
            f"{c.relative_cost_3d:.2f}x",
            f"{c.cryosparc_window_inner_a:.0f} / {c.cryosparc_window_outer_a:.0f}",
            ", ".join(marks),
        ]
        cls = " ".join((["rec"] if c.box_px in rec else []) + (["yours"] if c.user_box else []))
        trs.append(f'<tr class="{cls}" data-box="{c.box_px}">' + "".join(f"<td>{esc(x)}</td>" for x in cells) + "</tr>")
    window_note = (
        (
            f"<p class='note'>cryoSPARC's refinement window at its defaults (inner {0.85:g}, outer {0.99:g} of the "
            "box) "
            f"passes full weight out to the first number and none beyond the second. To keep the window of the "
            f"{a.window_reference_box_px} px box at every box, set the fractions to: "
            + "; ".join(
                f"{c.box_px} px: {c.cryosparc_inner_fraction_same_a:.3f} / {c.cryosparc_outer_fraction_same_a:.3f}"
                for c in a.candidates
                if c.user_box and c.cryosparc_outer_fraction_same_a <= 1.0
            )
            + ".</p>"
        )
        if any(c.user_box for c in a.candidates)
        else ""
    )
    advice_html = (
        f"<p>Particle diameter {diameter_a:g} Å, target {resolution_a:g} Å at {a.pixel_size_a:g} Å/px, "
        f"{adv.n_particles:,} particles. "
        f"<b>Refine in {a.recommended_refine_box_px} px</b>; <b>extract in {a.recommended_extract_box_px} px</b>"
        + (", premultiply by the CTF and crop." if a.premultiply else ".")
        + "</p>"
        + "<ul>"
        + "".join(f"<li>{esc(r)}</li>" for r in a.reasons)
        + "".join(f"<li><b>warning:</b> {esc(w)}</li>" for w in a.warnings)
        + "</ul>"
        + '<table id="advice-table"><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr>"
        + "".join(trs)
        + "</table>"
        + (
            "<p class='note'>Edge loss: particles whose box leaves their micrograph; cryoSPARC drops them, RELION "
            "fills their edges.</p>"
            if adv.edge_known
            else "<p class='note'>Edge loss unknown: the file has no coordinates with micrograph sizes.</p>"
        )
        + window_note
        + "".join(f"<p class='note'>Note: {esc(n)}.</p>" for n in run_notes)
        + img(plots.figure_advice(a), "box advice")
    )
    sections.append(("advice", "Box-size advice (cryobox advise)", advice_html))

    # 3. interactive
    df_max = np.maximum(np.abs(d["defocus_u_a"].to_numpy(float)), np.abs(d["defocus_v_a"].to_numpy(float)))
    sample = defocus_sample(df_max)
    boxes_seen = [c.box_px for c in a.candidates] + list(run_boxes)
    box_min = max(8, int(min(boxes_seen) * 0.8) // 2 * 2)
    box_max = int(max(boxes_seen) * 1.25) // 2 * 2
    data = {
        "pixel_size_a": a.pixel_size_a,
        "voltage_kv": inputs_kv,
        "cs_mm": inputs_cs,
        "amplitude_contrast": float(np.median(d["amplitude_contrast"])) if "amplitude_contrast" in d else 0.1,
        "diameter_a": diameter_a,
        "resolution_a": resolution_a,
        "defocus_sample_a": [float(v) for v in sample],
        "n_particles": int(adv.n_particles),
        "box_min_px": box_min,
        "box_max_px": box_max,
        "initial_box_px": a.recommended_refine_box_px,
        "cost_base_px": base_px,
    }
    inter = (
        f"<p class='note'>Move the sliders: the CTF at the chosen defocus percentile (grey), as a {esc('box')} of "
        "that size samples it "
        "(blue; Fourier pixels 1/(box·pixel size) apart), and where it aliases (red: the CTF phase changes by more "
        "than π per Fourier pixel). "
        f"Fractions use the per-particle highest defocus of {sample.size:,} particles"
        + (f" (evenly spaced order statistics of all {adv.n_particles:,})" if sample.size < adv.n_particles else "")
        + f", voltage {data['voltage_kv']:g} kV, Cs {data['cs_mm']:g} mm, the advisor's formulas.</p>"
        "<div class='controls'>"
        f"<label for='box-slider'>box size (px, even)</label><input type='range' id='box-slider' min='{box_min}' "
        f"max='{box_max}' step='2' value='{data['initial_box_px']}'><span id='box-value'></span>"
        "<label for='defocus-slider'>defocus percentile</label><input type='range' id='defocus-slider' min='0' "
        "max='100' step='1' value='95'><span id='defocus-value'></span>"
        "</div><div class='numbers'>"
        "<div>box<b id='box-a'></b></div><div>defocus at that percentile<b id='defocus-a'></b></div>"
        "<div>CTF alias-free to<b id='alias-limit-a'></b></div>"
        f"<div>particles alias-free at {resolution_a:g} Å<b id='alias-free-fraction'></b></div>"
        f"<div>particles whose delocalised signal fits (D = {diameter_a:g} Å)<b id='deloc-fraction'></b></div>"
        f"<div>cost per image vs {base_px} px (as in the table)<b id='cost'></b></div></div>"
        "<canvas id='ctf-canvas' width='1100' height='340'></canvas>"
    )
    sections.append(("explore", "Explore the box: CTF sampling and aliasing", inter))

    # 4. CTF pictures at candidate boxes
    pics = []
    want = [c.box_px for c in a.candidates if c.user_box] + [a.recommended_refine_box_px, a.recommended_extract_box_px]
    for b in dict.fromkeys(want):
        if len(pics) >= candidate_ctf_boxes:
            break
        params = parameters_from_table(table, percentile=95, box_px=int(b))
        pic = compute_ctf_picture(params, resolution_a=resolution_a)
        alias = pic.to_dict()
        txt = (
            "no aliasing up to Nyquist"
            if alias["aliasing_free_to_nyquist"]
            else f"aliases beyond {alias['first_aliased_resolution_a']:.2f} Å"
        )
        rgb, shown = plots.ctf_panel_rgb(pic)
        h, w = rgb.shape[:2]
        from matplotlib.figure import Figure

        prof = Figure(figsize=(8, 4.2))
        plots.plot_ctf_profile(prof.add_subplot(111), pic)
        n_fig += 1  # the pixel-exact 2D panel is a figure too (img() counts the profile)
        pics.append(
            f"<h3>{b} px ({b * a.pixel_size_a:.0f} Å): {esc(txt)} at the 95th-percentile defocus</h3><div "
            "class='ctfrow'>"
            f"<figure class='ctf2d'><img class='ctf2d' width='{w}' height='{h}' alt='CTF sampled in {b} px' "
            f"src='{rgb_to_data_uri(rgb)}'><figcaption>{esc('CTF²' if pic.power == 2 else 'CTF')} on the {b} px grid, "
            f"{esc(shown)}; whole screen pixels per Fourier pixel, so any moiré is the box's own aliasing; orange: "
            f"{resolution_a:g} Å</figcaption></figure>" + img(prof, f"CTF profile at {b} px") + "</div>"
        )
    sections.append(("ctf", "CTF and aliasing at the candidate boxes (cryobox ctf)", "".join(pics)))

    # 5. FSC results
    if curves:
        from cryobox.io.fsc_files import resolution_text

        summaries = [c.summary() for c in curves]
        rows = "".join(
            f"<tr><td>{esc(c.label)}</td><td>{esc(c.kind)}</td><td>{c.box_px}</td><td>{c.pixel_size_a:.4g}</td>"
            f"<td>{esc(resolution_text(sm, interpolated=False))}</td><td>{esc(resolution_text(sm))}</td></tr>"
            for c, sm in zip(curves, summaries)
        )
        sections.append(
            (
                "fsc",
                "FSC results",
                "<table id='fsc-table'><tr><th>run</th><th>curve</th><th>box (px)</th><th>Å/px</th>"
                "<th>0.143, RELION rule</th><th>0.143, interpolated</th></tr>"
                + rows
                + "</table>"
                + img(plots.figure_compare(curves, summaries), "FSC overlay"),
            )
        )

    # 6. the sweep and the judged runs
    for key, res in (("sweep", sw), ("judge", jd)):
        if res:
            sections.append(
                (
                    key,
                    "Box-size sweep (cryobox sweep)" if key == "sweep" else "Runs made elsewhere (cryobox judge)",
                    _runs_section(res, img, esc),
                )
            )

    sections.insert(
        0,
        (
            "answer",
            "The answer",
            "<p class='answer'>" + esc(opening_paragraph(adv, sw or jd, resolution_a=resolution_a)) + "</p>",
        ),
    )
    page = render_report(
        title=title or f"cryobox report: {Path(particles).name}",
        subtitle=f"{adv.n_particles:,} particles · {a.pixel_size_a:g} Å/px · D = {diameter_a:g} Å · target "
        f"{resolution_a:g} Å · "
        f"made {time.strftime('%Y-%m-%d %H:%M')}",
        sections=sections,
        data=data,
    )
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return {
        "path": str(out),
        "bytes": len(page.encode("utf-8")),
        "figures": n_fig,
        "data": data,
        "seconds": time.perf_counter() - t0,
    }


def _runs_section(res: dict, img, esc) -> str:
    """The sweep's or judge's table, verdicts and figure (both share the sweep.json schema)."""
    from cryobox.report import plots

    vrows = "".join(
        "<tr "
        f"data-variant='{esc(v['variant'])}'><td>{esc(v['variant'])}</td><td>{esc(v['description'])}</td><td>{v['box_px']}</td>"
        f"<td>{_fmt(v['resolutions_a'], '.2f')}</td><td>{_fmt(v['interpolated_resolutions_a'], '.2f')}</td>"
        f"<td>{_fmt(v['mean_a'], '.2f')}</td><td>{_fmt(v['sd_a'], '.2f')}</td></tr>"
        for v in res["variants"]
    )
    verdicts = "".join(f"<p class='verdict'>{esc(c['sentence'])}</p>" for c in res["comparisons"])
    if res.get("half_maps_from"):
        verdicts += "<p class='note'>Half maps: " + esc(half_maps_text(res["half_maps_from"])) + ".</p>"
    tm = res.get("timings") or {}
    timing = (
        f"<p class='note'>engine time {tm['engine_s'] / 60:.1f} min; cryobox's own work {tm['overhead_s']:.0f} s.</p>"
        if tm.get("engine_s") is not None
        else ""
    )
    if res.get("cryobox") == "sweep":
        intro = (
            f"<p>{res['n_particles_refined']:,} particles refined at every box, {res['settings']['repeats']} "
            "repeat(s) each, "
            f"{esc(res['engine'].get('engine', ''))} {esc(res['engine'].get('version', ''))}. Resolution: "
            f"{esc(res['resolution_rule'])}.</p>"
        )
    else:
        intro = (
            f"<p>{res['n_runs']} runs made elsewhere, every one given the same FSC at {res['pixel_size_a']:g} Å/px. "
            f"Mask: {esc(res.get('mask', ''))}. Resolution: {esc(res['resolution_rule'])}.</p>"
        )
    return (
        intro
        + "<table class='runs-table'><tr><th>variant</th><th>what</th><th>box (px)</th><th>runs, RELION rule (Å)</th>"
        "<th>runs, interpolated (Å)</th><th>mean (Å)</th><th>SD (Å)</th></tr>" + vrows + "</table>"
        f"<p><b>Verdicts</b> ({esc(res['test'])}):</p>{verdicts}"
        + timing
        + "".join(f"<p class='note'>{esc(n)}</p>" for n in res.get("notes", []))
        + img(plots.figure_sweep(res), res.get("cryobox", "sweep"))
    )
