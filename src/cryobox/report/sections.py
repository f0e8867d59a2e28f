"""The report's sections as HTML: each function takes the numbers a job gathered and returns
(id, heading, inner HTML). The page around them is ``report.html``; sentences are ``report.text``."""

from __future__ import annotations

import numpy as np

from cryobox.io.fsc_files import resolution_text
from cryobox.report import plots, plots_diagnose
from cryobox.report.html import esc, figure_to_data_uri, rgb_to_data_uri
from cryobox.report.text import answer_lines, cause_cost, fmt, half_maps_text, opening_paragraph, verdict_line

__all__ = [
    "Figures",
    "answer_section",
    "dataset_section",
    "advice_section",
    "explore_section",
    "ctf_section",
    "fsc_section",
    "causes_section",
    "runs_section",
]


def _fmt(v, spec=".3g"):
    return fmt(v, spec, none="–")


class Figures:
    """Embeds figures in the page and counts them (``count``: every image the page shows)."""

    def __init__(self) -> None:
        self.count = 0

    def img(self, fig, alt: str) -> str:
        """A matplotlib figure as an embedded PNG, scaled to the page's width."""
        self.count += 1
        return f'<img class="fig" alt="{esc(alt)}" src="{figure_to_data_uri(fig)}">'

    def pixels(self, rgb: np.ndarray, alt: str) -> str:
        """An RGB image drawn pixel for pixel (never scaled down: no display moiré)."""
        self.count += 1
        h, w = rgb.shape[:2]
        return f"<img class='ctf2d' width='{w}' height='{h}' alt='{esc(alt)}' src='{rgb_to_data_uri(rgb)}'>"


def _kv_table(rows: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"


def answer_section(adv, runs: dict | None, *, resolution_a: float, warnings: list[str] = ()) -> tuple[str, str, str]:
    """The first screen: warnings, the answer in at most three lines (``report.text.answer_lines``)
    and, with runs, the verdict line."""
    inner = "".join(f"<p class='warning'>{esc(w)}</p>" for w in warnings)
    inner += "".join(
        f"<p class='answer-line'>{esc(line)}</p>" for line in answer_lines(adv, runs, resolution_a=resolution_a)
    )
    if runs:
        inner += f"<p class='verdict-line'>{esc(verdict_line(runs))}</p>"
    return "answer", "The answer", inner


def answer_full_section(adv, runs: dict | None, *, resolution_a: float) -> tuple[str, str, str]:
    """The answer in full: every box of hers and every comparison in words
    (``report.text.opening_paragraph``)."""
    return (
        "answer-full",
        "The answer in full",
        "<p class='answer'>" + esc(opening_paragraph(adv, runs, resolution_a=resolution_a)) + "</p>",
    )


def dataset_section(ins, defocus_u_a: np.ndarray, defocus_v_a: np.ndarray, figs: Figures) -> tuple[str, str, str]:
    """The `inspect` summary and the defocus histogram."""
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
    hist = plots.figure_defocus_histogram(defocus_u_a, defocus_v_a, title="defocus")
    return "dataset", "Dataset (cryobox inspect)", _kv_table(rows) + figs.img(hist, "defocus histogram")


def advice_section(
    adv, *, diameter_a: float, resolution_a: float, notes: list[str], figs: Figures
) -> tuple[str, str, str]:
    """The advice: recommendation, reasons, the candidate table (the user's rows marked) and its plot."""
    a = adv.advice
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
        + "".join(f"<p class='note'>Note: {esc(n)}.</p>" for n in notes)
        + figs.img(plots.figure_advice(a), "box advice")
    )
    return "advice", "Box-size advice (cryobox advise)", advice_html


def explore_section(data: dict, *, sample_size: int, n_particles: int) -> tuple[str, str, str]:
    """The box / defocus sliders (their numbers are computed in the page from ``data``)."""
    resolution_a, diameter_a = data["resolution_a"], data["diameter_a"]
    box_min, box_max, base_px = data["box_min_px"], data["box_max_px"], data["cost_base_px"]
    inter = (
        f"<p class='note'>Move the sliders: the CTF at the chosen defocus percentile (grey), as a {esc('box')} of "
        "that size samples it "
        "(blue; Fourier pixels 1/(box·pixel size) apart), and where it aliases (red: the CTF phase changes by more "
        "than π per Fourier pixel). "
        f"Fractions use the per-particle highest defocus of {sample_size:,} particles"
        + (f" (evenly spaced order statistics of all {n_particles:,})" if sample_size < n_particles else "")
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
    return "explore", "Explore the box: CTF sampling and aliasing", inter


def ctf_section(pictures: list, *, pixel_size_a: float, resolution_a: float, figs: Figures) -> tuple[str, str, str]:
    """CTF pictures at the given boxes: (box px, ``jobs.ctf.CtfPicture``) pairs. The 2D panel is
    drawn pixel for pixel, at least one screen pixel per Fourier pixel."""
    from matplotlib.figure import Figure

    pics = []
    for b, pic in pictures:
        alias = pic.to_dict()
        txt = (
            "no aliasing up to Nyquist"
            if alias["aliasing_free_to_nyquist"]
            else f"aliases beyond {alias['first_aliased_resolution_a']:.2f} Å"
        )
        rgb, shown = plots.ctf_panel_rgb(pic)
        prof = Figure(figsize=(8, 4.2))
        plots.plot_ctf_profile(prof.add_subplot(111), pic)
        what = "CTF²" if pic.power == 2 else "CTF"
        pics.append(
            f"<h3>{b} px ({b * pixel_size_a:.0f} Å): {esc(txt)} at the 95th-percentile defocus</h3><div class='ctfrow'>"
            f"<figure class='ctf2d'>{figs.pixels(rgb, f'CTF sampled in {b} px')}<figcaption>{esc(what)} on the {b} px "
            f"grid, {esc(shown)}; whole screen pixels per Fourier pixel, so any moiré is the box's own aliasing; "
            f"orange: {resolution_a:g} Å</figcaption></figure>" + figs.img(prof, f"CTF profile at {b} px") + "</div>"
        )
    return "ctf", "CTF and aliasing at the candidate boxes (cryobox ctf)", "".join(pics)


def causes_section(e, figs: Figures) -> tuple[str, str, str]:
    """``cryobox explain``'s answer: its paragraph, the causes with their cost in Å per box, the
    box they favour and their basis, and the signal-kept and neighbours figure."""
    boxes = [r.box_px for r in e.boxes]
    head = "".join(f"<th>{b} px</th>" for b in boxes)

    def cost(c, b) -> str:
        if not c.effect_by_box_a:
            return "–"
        text = cause_cost(c.effect_by_box_a[b])
        return text + " Å" if text.startswith("+") else text

    rows = "".join(
        f"<tr><td>{esc(c.cause)}</td>"
        + "".join(f"<td>{cost(c, b)}</td>" for b in boxes)
        + f"<td>{esc(str(c.favours_box_px) + ' px' if c.favours_box_px else '–')}</td><td>{esc(c.basis)}</td></tr>"
        for c in e.causes
    )
    how = "".join(f"<tr><td>{esc(c.cause)}</td><td class='note'>{esc(c.detail)}</td></tr>" for c in e.causes)
    pred = "".join(
        f"<tr><td>{r.box_px} px</td><td>{100 * r.signal_kept_at_resolution:.0f}%</td><td>{r.particles_kept:,}</td>"
        f"<td>{'–' if r.neighbours_fraction is None else f'{100 * r.neighbours_fraction:.0f}%'}</td>"
        f"<td>{_fmt(r.predicted_resolution_a, '.2f')}</td><td>{_fmt(r.measured_resolution_a, '.2f')}</td></tr>"
        for r in e.boxes
    )
    s = e.settings
    return (
        "causes",
        "Why the boxes differ (cryobox explain)",
        f"<table id='causes-table'><tr><th>cause (cost at {s.resolution_a:.2f} Å; + is worse)</th>{head}"
        "<th>favours</th><th>basis</th></tr>" + rows + "</table>"
        "<details class='inner'><summary>In words, how each cause is computed, per box, and the figure</summary>"
        "<p>" + esc(e.paragraph) + "</p>"
        "<table id='causes-how'><tr><th>cause</th><th>how</th></tr>" + how + "</table>"
        "<table id='explain-boxes'><tr><th>box</th><th>signal kept</th><th>particles kept</th>"
        "<th>with a neighbour in the window</th><th>predicted (Å)</th><th>measured (Å)</th></tr>"
        + pred
        + "</table>"
        + figs.img(plots.figure_explain(e), "signal kept and neighbours against box")
        + f"<p class='note'>{esc(e.model)} B = {e.bfactor_a2:.0f} Å² ({esc(e.bfactor_source)}).</p></details>",
    )


def fsc_section(curves: list, figs: Figures) -> tuple[str, str, str]:
    """FSC curves read from any format (``io.fsc_files``): a table and the overlay on one Å axis."""

    summaries = [c.summary() for c in curves]
    rows = "".join(
        f"<tr><td>{esc(c.label)}</td><td>{esc(c.kind)}</td><td>{c.box_px}</td><td>{c.pixel_size_a:.4g}</td>"
        f"<td>{esc(resolution_text(sm, interpolated=False))}</td><td>{esc(resolution_text(sm))}</td></tr>"
        for c, sm in zip(curves, summaries)
    )
    return (
        "fsc",
        "FSC results",
        "<table id='fsc-table'><tr><th>run</th><th>curve</th><th>box (px)</th><th>Å/px</th>"
        "<th>0.143, RELION rule</th><th>0.143, interpolated</th></tr>"
        + rows
        + "</table>"
        + figs.img(plots.figure_compare(curves, summaries), "FSC overlay"),
    )


def runs_section(res: dict, figs: Figures) -> tuple[str, str, str]:
    """The sweep's or judge's table, verdicts and figure (both share the sweep.json schema)."""

    vrows = "".join(
        "<tr "
        f"data-variant='{esc(v['variant'])}'><td>{esc(v['variant'])}</td><td>{esc(v['description'])}</td><td>{v['box_px']}</td>"
        f"<td>{_fmt(v['resolutions_a'], '.2f')}</td><td>{_fmt(v['interpolated_resolutions_a'], '.2f')}</td>"
        f"<td>{_fmt(v['mean_a'], '.2f')}</td><td>{_fmt(v['sd_a'], '.2f')}</td></tr>"
        for v in res["variants"]
    )
    failed = "".join(  # first in the section: every number below rests on these runs
        f"<p class='warning'><b>Not converged:</b> {esc(f['variant'])}, {esc(f['run'])}: "
        f"{esc('; '.join(f['reasons']))}.</p>"
        for f in res.get("not_converged") or []
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
    heading = (
        "Box-size sweep (cryobox sweep)" if res.get("cryobox") == "sweep" else "Runs made elsewhere (cryobox judge)"
    )
    return (
        res.get("cryobox", "sweep"),
        heading,
        (
            failed
            + intro
            + "<table class='runs-table'><tr><th>variant</th><th>what</th><th>box (px)</th><th>runs, RELION rule "
            "(Å)</th>"
            "<th>runs, interpolated (Å)</th><th>mean (Å)</th><th>SD (Å)</th></tr>" + vrows + "</table>"
            f"<p><b>Verdicts</b> ({esc(res['test'])}):</p>{verdicts}"
            + timing
            + alignment_html(res.get("alignment") or {})
            + "".join(
                f"<p class='note'>Failed: {esc(f['variant'])} repeat {f['repeat']} ({esc(str(f.get('job_id')))}): "
                f"{esc(f['error'] or '')}</p>"
                for f in res.get("failed_runs") or []
            )
            + "".join(f"<p class='note'>{esc(n)}</p>" for n in res.get("notes", []))
            + figs.img(plots.figure_sweep(res), res.get("cryobox", "sweep"))
        ),
    )


def alignment_html(a: dict) -> str:
    """How accurately (against the truth) and how reproducibly (between repeats) each variant aligned."""
    prec = a.get("run_to_run") or {}
    if not a or (not a.get("truth_known") and not prec):
        return ""

    def cell(c):
        if not c:
            return "-"
        return f"{c['mean']:.2f}" + (f" ± {c['sd']:.2f}" if c.get("sd") is not None else "")

    rows = "".join(
        f"<tr><td>{esc(r['variant'])}</td><td>{cell(r.get('median_angle_deg'))}</td><td>{cell(r.get('p90_angle_deg'))}"
        f"</td><td>{cell(r.get('median_shift_a'))}</td><td>{cell(r.get('map_resolution_0.5_a'))}</td>"
        f"<td>{_fmt((prec.get(r['variant']) or {}).get('median_angle_deg'), '.2f')}</td>"
        f"<td>{_fmt((prec.get(r['variant']) or {}).get('median_shift_a'), '.2f')}</td></tr>"
        for r in a.get("variants", [])
    )
    sentences = "".join(
        f"<p class='verdict'>{esc(c['sentence'])}</p>"
        for c in a.get("comparisons", [])
        if c["measure"] in ("median_angle_deg", "median_shift_a")
    )
    return (
        "<h3>Alignment: how well each box found the particles' poses</h3>"
        "<table class='align-table'><tr><th>variant</th><th>angular error, median (°)</th><th>90th percentile (°)</th>"
        "<th>shift error, median (Å)</th><th>map vs true map, FSC 0.5 (Å)</th><th>run-to-run angle (°)</th>"
        "<th>run-to-run shift (Å)</th></tr>" + rows + "</table>"
        f"<p class='note'>{esc(a.get('definition', ''))}. Mean ± SD over the repeats.</p>" + sentences
    )


def diagnose_section(d: dict, figs: Figures) -> tuple[str, str, str]:
    """`cryobox diagnose`: directional resolution, orientation coverage, power spectra, in words first."""
    dd = d["directional"]
    sentences = "".join(f"<p class='verdict'>{esc(s)}</p>" for s in d["summary"])
    rows = [
        ("global resolution (FSC 0.143)", f"{d['global_resolution_a']:.2f} Å"),
        ("directional resolution", f"{dd['best_a']:.2f}-{dd['worst_a']:.2f} Å (median {dd['median_a']:.2f} Å)"),
        ("cones", f"{dd['n_directions']} axes, {dd['half_angle_deg']:g}° half-angle"),
        ("cFAR", f"{dd['cfar']:.2f}" + (" (anisotropic: below 0.5)" if dd["anisotropic"] else "")),
    ]
    v = d.get("views")
    if v and v.get("scf_star") is not None:
        rows.append(
            (
                "SCF* of the viewing directions",
                f"{v['scf_star']:.2f} (SCF {v['scf']:.2f}; {v['unsampled_fraction']:.0%} of directions unsampled; "
                "1 uniform, 0.81 side views only" + ("; anisotropic: below 0.81)" if v["anisotropic"] else ")"),
            )
        )
    elif v:
        rows.append(("viewing directions", v.get("note", "")))
    for k, label in (("ctf_aliasing_onset_a", "CTF aliasing onset"), ("phase_randomisation_a", "phase randomisation")):
        if k in (d.get("marks") or {}):
            rows.append((label, f"{d['marks'][k]:.2f} Å"))
    body = (
        f"<p>Half maps {esc(d['half1'])} and {esc(d['half2'])}, {d['box_px']} px at {d['pixel_size_a']:g} Å/px; mask: "
        f"{esc(d['mask'])}.</p>"
        + sentences
        + _kv_table(rows)
        + "".join(f"<p class='note'>{esc(k)}: {esc(v)}</p>" for k, v in d.get("definitions", {}).items())
        + figs.img(plots_diagnose.figure_diagnose_directional(d), "diagnose-directional")
        + figs.img(plots_diagnose.figure_diagnose_power(d), "diagnose-power")
        + (figs.img(plots_diagnose.figure_views(d["views"]), "diagnose-views") if d.get("views") else "")
    )
    return "diagnose", "Why the FSC looks the way it does (cryobox diagnose)", body
