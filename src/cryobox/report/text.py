"""Values as short text for tables (terminal and HTML)."""

from __future__ import annotations

import math

import numpy as np

from cryobox.core.boxsize import fft_friendly_sizes, is_fft_friendly

__all__ = [
    "fmt",
    "half_maps_text",
    "verdict_sentence",
    "repeats_advice",
    "opening_paragraph",
    "advice_sentences",
    "explain_paragraph",
]


def fmt(value, spec: str = ".3g", none: str = "-") -> str:
    """A value for a table cell: ``none`` for None, ∞, yes/no, thousands separators for ints,
    ``spec`` for floats, lists joined with commas."""
    if value is None:
        return none
    if isinstance(value, list):
        return ", ".join(fmt(v, spec, none) for v in value)
    if isinstance(value, float) and not math.isfinite(value):
        return "∞"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return format(value, spec)
    return str(value)


def half_maps_text(counts: dict[str, int]) -> str:
    """Where a sweep's half maps came from, as "source (n runs); ..." (sweep.json's half_maps_from)."""
    return "; ".join(f"{k} ({v} run{'s' if v != 1 else ''})" for k, v in counts.items())


def _a(v) -> str:
    return "?" if v is None else ("∞" if not math.isfinite(v) else f"{v:.2f}")


def repeats_advice(c: dict) -> str:
    """How many repeats per variant would settle a comparison (``core.stats.compare_resolutions``)."""
    need, shell = c.get("repeats_needed"), c.get("repeats_needed_one_shell")

    def n_text(n):
        return "more than 1000" if n is None else f"about {n}"

    text = (
        f"{n_text(need)} repeats per variant would detect a difference this size with 80% power"
        f" ({n_text(shell)} for one Fourier shell, {c['shell_width_inv_a']:.4f} 1/Å)"
    )
    if c.get("sd_assumed"):
        text += ", assuming a run-to-run spread of one shell"
    return text


def verdict_sentence(c: dict, a: str, b: str) -> str:
    """One sentence for a comparison of two variants' resolutions that says what the numbers
    support: finer, coarser or undecided, with the interval, p and what would decide it."""
    da, db = c.get("mean_resolution_a"), c.get("mean_resolution_b")
    if da is None or db is None:
        return f"{a} vs {b}: undecided; a variant has no run whose FSC crossed 0.143."
    apart = abs(c["difference_a"])
    if c.get("difference") == 0 and c.get("sd_inv_a") == 0:
        return f"{a} and {b} give the same resolution in every run ({da:.2f} Å): there is no difference to test."
    ci = c.get("ci_a")
    ci_text = f"95% CI of {a} minus {b}: {_a(ci[0])} to {_a(ci[1])} Å; " if ci else ""
    stats_text = f"{ci_text}Welch's t on 1/Å, p = {c['p']:.3g}" if c.get("p") is not None else ""
    if c["verdict"] in ("finer", "coarser"):
        return f"{a} is {c['verdict']} than {b}: {da:.2f} vs {db:.2f} Å, {apart:.2f} Å apart ({stats_text})."
    if c.get("n_a", 0) < 2 or c.get("n_b", 0) < 2:
        m = c.get("measurement_sd_a")
        noise = ""
        if m:
            within = "beyond" if apart > 2.0 * m else "within"
            noise = (
                f" The FSCs' own sampling spreads the difference by {m:.2f} Å (SD), so {apart:.2f} Å is {within} "
                "measurement noise; run-to-run noise, which only repeats measure, comes on top."
            )
        return (
            f"{a} vs {b}: {da:.2f} vs {db:.2f} Å, {apart:.2f} Å apart; undecided: one run per variant cannot separate "
            f"a difference from run-to-run noise; {repeats_advice(c)}.{noise}"
        )
    eq = c.get("equivalence") or {}
    if c["verdict"] == "equivalent":
        return (
            f"{a} and {b} are equivalent within one Fourier shell ({c['shell_width_inv_a']:.4f} 1/Å): {da:.2f} vs "
            f"{db:.2f} Å ({stats_text}; two one-sided tests, p = {eq.get('p', float('nan')):.3g}): take the cheaper "
            "box."
        )
    return (
        f"{a} vs {b}: undecided, {da:.2f} vs {db:.2f} Å, {apart:.2f} Å apart ({stats_text}); neither a difference nor "
        f"an equivalence (to one Fourier shell) is shown; {repeats_advice(c)}."
    )


def _box_of(runs: dict, variant: str) -> int | None:
    return next((v.get("box_px") for v in runs.get("variants", []) if v["variant"] == variant), None)


def cause_cost(effect_a: float) -> str:
    """A cause's cost in Å at one box, for a table cell (`explain`'s table and the report's):
    "+0.48", or "no crossing" where the modelled FSC never reaches the resolution."""
    return "no crossing" if not math.isfinite(effect_a) else "+" + fmt(effect_a, ".2f")


def _other(c: dict) -> str:
    """The variant a decided comparison found coarser."""
    return c["b"] if c["finer"] == c["a"] else c["a"]


def _short(c: dict) -> str:
    """Two variants not told apart, in a few words."""
    if c.get("verdict") == "equivalent":
        return "equivalent within one Fourier shell: take the cheaper box"
    apart = f"{abs(c['difference_a']):.2f} Å apart, " if c.get("difference_a") is not None else ""
    need = c.get("repeats_needed")
    return f"{apart}undecided" + (f" (about {need} repeats per variant would decide)" if need else "")


def _comparison_text(c: dict) -> str:
    """A comparison in a few words, for the verdict line."""
    if c.get("verdict") in ("finer", "coarser"):
        return f"{c['finer']} finer than {_other(c)} by {abs(c['difference_a']):.2f} Å (p = {c['p']:.2g})"
    return f"{c['a']} vs {c['b']}: {_short(c)}"


def verdict_line(runs: dict) -> str:
    """Every comparison of a sweep or judge on one line, with what the verdict rests on."""
    n = sorted({len(v.get("interpolated_resolutions_a") or v.get("resolutions_a") or []) for v in runs["variants"]})
    rests = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    test = next((c["test"] for c in runs["comparisons"] if c.get("test")), "Welch's t-test")
    return (
        f"Verdict ({runs.get('cryobox', 'runs')}, {rests} runs per variant, {test}): "
        + "; ".join(_comparison_text(c) for c in runs["comparisons"])
        + "."
    )


def answer_lines(advice_result, runs: dict | None, *, resolution_a: float) -> list[str]:
    """The report's answer in at most three lines: the box to use and why; the recommended box and
    the user's boxes reconciled; what to do next (or why, from `explain`). Built from the same
    numbers as ``opening_paragraph``, which the page keeps in full below."""
    a = advice_result.advice
    rec = a.recommended_refine_box_px
    by = {c.box_px: c for c in a.candidates}
    physics = (
        f"{rec} px ({rec * a.pixel_size_a:.0f} Å), the smallest FFT-friendly box of at least 1.5 x the "
        f"{a.diameter_a:g} Å particle with {100 * by[rec].aliasing_free_fraction:.0f}% of particles alias-free to "
        f"{resolution_a:g} Å"
    )
    yours = [c.box_px for c in a.candidates if c.user_box]
    lines: list[str] = []
    if runs:
        failed = runs.get("not_converged") or []
        boxes = sorted({b for b in (v.get("box_px") for v in runs.get("variants", [])) if b})
        decided = [c for c in runs["comparisons"] if c.get("verdict") in ("finer", "coarser")]
        equivalent = [c for c in runs["comparisons"] if c.get("verdict") == "equivalent"]
        best = runs.get("best")
        if failed:
            lines.append(
                f"No answer yet: {len(failed)} of the runs did not converge, so their resolutions say more about the "
                "failed alignment than about the box; see the runs below."
            )
        elif best:
            beaten = [c for c in decided if c["finer"] == best]
            lines.append(
                f"Use {best} ({_box_of(runs, best)} px): finer than "
                + ", ".join(f"{_other(c)} by {abs(c['difference_a']):.2f} Å (p = {c['p']:.2g})" for c in beaten)
                + ", beyond run-to-run noise."
            )
        elif decided:  # some variants beaten, the others not told apart
            losers = {_other(c) for c in decided}
            front = [v["variant"] for v in runs["variants"] if v["variant"] not in losers]
            between = [c for c in runs["comparisons"] if c["a"] in front and c["b"] in front]
            lines.append(
                f"Drop {', '.join(sorted(losers))}: "
                + "; ".join(
                    f"{c['finer']} is finer by {abs(c['difference_a']):.2f} Å (p = {c['p']:.2g})" for c in decided
                )
                + ". Between "
                + " and ".join(front)
                + ": "
                + "; ".join(_short(c) for c in between)
                + "."
            )
        elif equivalent and not decided:
            c = equivalent[0]
            cheap = min((c["a"], c["b"]), key=lambda v: (_box_of(runs, v) or 0, v))
            lines.append(
                f"Use {cheap} ({_box_of(runs, cheap)} px): {c['a']} and {c['b']} are equivalent within one Fourier "
                "shell, and it is the cheaper box."
            )
        else:
            lines.append(
                "Undecided: "
                + "; ".join(_comparison_text(c) for c in runs["comparisons"] if c.get("verdict") != "equivalent")
                + "."
            )
        chosen = _box_of(runs, best) if best else None
        tested = " and ".join(f"{b} px" for b in boxes)
        if rec in boxes:
            lines.append(f"Physics alone recommends {physics}: one of the boxes your runs tested.")
        elif chosen is not None:
            lines.append(
                f"Physics alone recommends {physics}; your runs tested {tested}, not {rec} px: keep {chosen} px, and "
                f"refine {rec} px too (3 repeats or more) to learn whether it does better still."
            )
        else:
            lines.append(
                f"Physics alone recommends {physics}; your runs tested {tested}, not {rec} px: refine it too (3 "
                "repeats or more) to learn where it stands."
            )
        why = _why_line(getattr(advice_result, "explanation", None))
        if why:
            lines.append(why)
    else:
        lines.append(f"Refine in {physics}.")
        if yours:
            parts = []
            for b in yours:
                c = by[b]
                what = f"{100 * c.aliasing_free_fraction:.0f}% alias-free"
                if b > rec:
                    what += f", {c.relative_cost_2d / by[rec].relative_cost_2d:.1f}x the cost per image"
                if c.edge_loss_fraction:
                    what += f", {100 * c.edge_loss_fraction:.1f}% cross an edge"
                parts.append(f"{b} px: {what}")
            lines.append("Your boxes: " + "; ".join(parts) + ".")
        lines.append(
            "Next: to know whether boxes really differ, refine each at least 3 times and run `cryobox judge` on the "
            "runs."
        )
    return lines[:3]


def _why_line(e) -> str | None:
    """Why, in one line, from `explain`: whether the modelled causes predict the measured order."""
    measured = [b for b in (e.boxes if e else []) if b.measured_resolution_a is not None]
    if len(measured) != 2 or any(b.predicted_resolution_a is None for b in measured):
        return None
    lo, hi = sorted(measured, key=lambda b: b.box_px)
    pred = (
        f"predict {lo.box_px} px {_a(lo.predicted_resolution_a)} Å and {hi.box_px} px {_a(hi.predicted_resolution_a)} Å"
    )
    meas = f"measured {_a(lo.measured_resolution_a)} and {_a(hi.measured_resolution_a)} Å"
    same = (lo.predicted_resolution_a < hi.predicted_resolution_a) == (
        lo.measured_resolution_a < hi.measured_resolution_a
    )
    if same:
        return f"Why: the modelled causes (signal kept, aliasing, particles) {pred}, {meas}: each cause in Å below."
    nb = ""
    if lo.neighbours_fraction is not None and hi.neighbours_fraction is not None:
        nb = (
            f" (particles with a neighbour in the window: {100 * lo.neighbours_fraction:.0f}% at {lo.box_px} px, "
            f"{100 * hi.neighbours_fraction:.0f}% at {hi.box_px} px)"
        )
    return (
        f"Why: the modelled causes (signal kept, aliasing, particles) {pred}, but the runs {meas}: the difference "
        f"comes from what they do not model, the neighbours in the window{nb} or the refinement's box-relative "
        "settings; each cause in Å below."
    )


def opening_paragraph(advice_result, runs: dict | None, *, resolution_a: float) -> str:
    """The report's first paragraph, built from the numbers on the page: the box to refine in
    and why; the user's boxes; whether the runs (sweep or judge) differ beyond run-to-run noise;
    what to do next."""
    a = advice_result.advice
    by = {c.box_px: c for c in a.candidates}
    r = by[a.recommended_refine_box_px]
    parts = [
        f"Refine in {a.recommended_refine_box_px} px ({a.recommended_refine_box_px * a.pixel_size_a:.0f} Å): it is "
        "the smallest "
        f"FFT-friendly box of at least 1.5 x the {a.diameter_a:g} Å particle in which "
        f"{100 * r.aliasing_free_fraction:.0f}% of "
        f"particles have their CTF sampled without aliasing to {resolution_a:g} Å"
    ]
    program = getattr(advice_result, "program", None)
    if a.premultiply and program != "cryosparc":
        e = by[a.recommended_extract_box_px]
        parts[0] += (
            f"; in RELION, extract in {a.recommended_extract_box_px} px, premultiply by the CTF and crop to it, so "
            f"the signal delocalised by defocus ({100 * e.delocalisation_fraction:.0f}% held) is kept."
        )
    else:
        parts[0] += "."
    for c in a.candidates:
        if not c.user_box or c.box_px == a.recommended_refine_box_px:
            continue
        alias = f"{100 * c.aliasing_free_fraction:.0f}% of particles alias-free to {resolution_a:g} Å"
        extra = []
        if c.box_px > a.recommended_refine_box_px:
            extra.append(
                f"{c.relative_cost_2d / r.relative_cost_2d:.1f}x the cost per image of {a.recommended_refine_box_px} px"
            )
            extra.append(
                f"cryoSPARC's default window there gives full weight to {c.cryosparc_window_inner_a:.0f} Å, "
                f"{c.cryosparc_window_inner_a - a.diameter_a:.0f} Å more than the particle: it lets in more of the "
                "micrograph around it (neighbouring particles, contaminants, gradients; `cryobox explain` counts the "
                "neighbours)"
            )
        if c.edge_loss_fraction:
            extra.append(
                f"{100 * c.edge_loss_fraction:.1f}% of particles cross a micrograph edge (dropped by cryoSPARC)"
            )
        parts.append(f"Your {c.box_px} px box: {alias}" + (f"; {'; '.join(extra)}." if extra else "."))
    if runs:
        what = "sweep" if runs.get("cryobox") == "sweep" else "runs you made"
        failed = runs.get("not_converged") or []
        if failed:  # said before any verdict: the numbers below rest on runs that did not align
            parts.append(
                f"First: {len(failed)} of the {what}'s runs did not converge ("
                + "; ".join(f"{f['variant']} {f['run']}: {f['reasons'][0]}" for f in failed[:4])
                + (f"; and {len(failed) - 4} more" if len(failed) > 4 else "")
                + "), so the resolutions below say more about the failed alignment than about the box."
            )
        decided = [c for c in runs["comparisons"] if c.get("verdict") in ("finer", "coarser")]
        equivalent = [c for c in runs["comparisons"] if c.get("verdict") == "equivalent"]
        undecided = [c for c in runs["comparisons"] if c.get("verdict") not in ("finer", "coarser", "equivalent")]
        boxes = {v["variant"]: v.get("box_px") for v in runs.get("variants", [])}
        if equivalent:
            parts.append(
                f"In the {what}, "
                + "; ".join(
                    f"{c['a']} and {c['b']} are equivalent within one Fourier shell: take the cheaper, "
                    f"{min((c['a'], c['b']), key=lambda v: (boxes.get(v) or 0, v))}"
                    for c in equivalent
                )
                + "."
            )
        if decided:
            parts.append(
                f"In the {what}, "
                + "; ".join(
                    f"{c['finer']} is finer than {c['b'] if c['finer'] == c['a'] else c['a']} by "
                    f"{abs(c['difference_a']):.2f} Å "
                    f"(p = {c['p']:.2g})"
                    for c in decided
                )
                + ": beyond run-to-run noise."
            )
        if undecided:
            needs = [c.get("repeats_needed") for c in undecided]
            known = [n for n in needs if n]
            parts.append(
                f"In the {what}, "
                + "; ".join(
                    f"{c['a']} vs {c['b']} is undecided"
                    + (f" ({abs(c['difference_a']):.2f} Å apart)" if c.get("difference_a") is not None else "")
                    for c in undecided
                )
                + ": the difference is not beyond run-to-run noise with these repeats."
                + (
                    f" Next: about {max(known)} repeats per variant would decide it with 80% power."
                    if known
                    else " Next: more repeats per variant (at least 3) are needed to measure the spread."
                )
            )
        elif decided:
            best = runs.get("best")
            parts.append(
                f"Next: use {best}"
                + (f" ({next(v['box_px'] for v in runs['variants'] if v['variant'] == best)} px)." if best else ".")
            )
    else:
        parts.append(
            "Next: to know whether your boxes really differ, refine each at least 3 times (new random seeds) and run "
            "`cryobox judge` on the runs (or `cryobox sweep`)."
        )
    return " ".join(parts)


NO_PREMULTIPLY_IN_CRYOSPARC = (
    "cryoSPARC has no workflow for CTF-premultiplied particles (it would apply the CTF a second time), so "
    "premultiply + crop is a RELION route"
)


def advice_sentences(a, *, program: str | None = None) -> tuple[list[str], list[str]]:
    """The advisor's reasons and warnings, in words, from a ``core.boxsize.BoxAdvice``'s numbers.

    ``program``: ``"cryosparc"`` (a .cs input: no premultiply + crop advice, cryoSPARC cannot refine
    premultiplied particles), ``"relion"``, or None (both named)."""
    by = {c.box_px: c for c in a.candidates}
    refine_px, extract_px, p = a.recommended_refine_box_px, a.recommended_extract_box_px, a.pixel_size_a
    pct = 100.0 * a.required_fraction
    smallest = a.candidates[0].box_px
    reasons = [
        f"refine in {refine_px} px ({refine_px * p:.0f} Å): the smallest FFT-friendly box "
        f">= {a.min_refine_factor:g} x D ({a.min_refine_factor * a.diameter_a:.0f} Å) in which "
        f"{100 * by[refine_px].aliasing_free_fraction:.1f}% of particles (>= {pct:g}% required) "
        f"have their CTF sampled without aliasing to {a.resolution_a:g} Å.",
    ]
    if a.premultiply and program == "cryosparc":
        reasons.append(
            f"{extract_px} px ({extract_px * p:.0f} Å) would hold the delocalised signal (Rosenthal & Henderson, "
            f"D + 2 R(1/d)) of {100 * by[extract_px].delocalisation_fraction:.1f}% of particles, {refine_px} px of "
            f"{100 * by[refine_px].delocalisation_fraction:.1f}%; {NO_PREMULTIPLY_IN_CRYOSPARC}. In cryoSPARC: choose "
            "the box and its window fractions with `cryobox explain`, which gives the signal each keeps."
        )
    elif a.premultiply:
        reasons.append(
            f"extract in {extract_px} px ({extract_px * p:.0f} Å), premultiply by the CTF and crop "
            f"to {refine_px} px (RELION: cryobox restack --premultiply, or relion_preprocess --premultiply_ctf): "
            f"{extract_px} px holds the delocalised signal (Rosenthal & Henderson, "
            f"D + 2 R(1/d)) of {100 * by[extract_px].delocalisation_fraction:.1f}% of particles; "
            f"the refine box holds it for only {100 * by[refine_px].delocalisation_fraction:.1f}%"
            + (f" ({NO_PREMULTIPLY_IN_CRYOSPARC})." if program is None else ".")
        )
    else:
        reasons.append(
            f"extract in {extract_px} px too: it already holds the delocalised signal of "
            f"{100 * by[extract_px].delocalisation_fraction:.1f}% of particles, so premultiply + crop gains nothing."
        )
    reasons.append(
        f"cost: {refine_px} px costs {by[refine_px].relative_cost_2d:.2f}x per image and "
        f"{by[refine_px].relative_cost_3d:.2f}x per volume of the smallest candidate ({smallest} px); "
        f"the Rosenthal & Henderson box at the highest defocus is {a.rosenthal_henderson_box_a:.0f} Å "
        f"({a.rosenthal_henderson_box_a / p:.0f} px)."
    )
    warnings = []

    for c in a.candidates:
        if c.user_box and not is_fft_friendly(c.box_px):
            near = [b for b in fft_friendly_sizes(max(2, c.box_px - 16), c.box_px + 16) if b != c.box_px]
            lo = max((b for b in near if b < c.box_px), default=None)
            hi = min((b for b in near if b > c.box_px), default=None)
            warnings.append(
                f"your {c.box_px} px box is not FFT-friendly (not even, or a factor above 7): FFTs in it are slower; "
                f"the nearest friendly boxes are {' and '.join(f'{b} px' for b in (lo, hi) if b)}."
            )
    if by[extract_px].edge_loss_fraction:
        warnings.append(
            f"{100 * by[extract_px].edge_loss_fraction:.1f}% of particles lie partly outside their "
            f"micrograph at {extract_px} px: a program that drops edge particles (cryoSPARC) loses them; "
            "RELION keeps them with filled edges."
        )
    if by[refine_px].ctf2_aliasing_free_fraction < a.required_fraction and a.premultiply and program != "cryosparc":
        warnings.append(
            f"premultiplied data carry CTF^2, which is alias-free to {a.resolution_a:g} Å in {refine_px} px for only "
            f"{100 * by[refine_px].ctf2_aliasing_free_fraction:.1f}% of particles "
            f"(CTF^2 needs {a.ctf2_aliasing_free_box_a:.0f} Å at the highest defocus). RELION computes CTF^2 on the "
            "cropped grid (its CTF padding, --pad_ctf, is disabled since RELION 3.1), so beyond that onset the CTF^2 "
            "model is wrong for the rest: `cryobox explain` gives the loss in Å; a larger refine box avoids it."
        )
    return reasons, warnings


def explain_paragraph(e) -> str:
    """The answer of ``cryobox explain`` in words, from a ``jobs.explain.Explanation``'s numbers:
    what each box keeps, what physics predicts, how that meets what was measured, and the
    experiment that tests what physics does not model."""
    s = e.settings
    rows = sorted(e.boxes, key=lambda r: r.box_px)
    where = {"cryosparc": "cryoSPARC's default window", "relion": "RELION's particle mask"}.get(s.program, "the box")
    d0 = next((r.measured_resolution_a for r in rows if r.box_px == e.basis_box_px), None) or s.resolution_a
    kept = ", ".join(
        f"{r.box_px} px keeps {100 * r.signal_kept_at_resolution:.0f}%"
        + (f" of {r.particles_kept:,} particles" if r.particles_kept < e.n_particles else "")
        for r in rows
    )
    parts = [f"At {d0:.2f} Å the particle's delocalised signal inside {where}: {kept} (a {s.diameter_a:g} Å particle)."]
    pred = [(r.box_px, r.predicted_resolution_a) for r in rows if r.predicted_resolution_a is not None]
    best = min(pred, key=lambda t: (round(t[1], 3), t[0]))[0] if pred else None
    basis = f"from the FSC measured at {e.basis_box_px} px" if e.basis_box_px else "from the model curve"
    extrapolated = [r.box_px for r in rows if getattr(r, "prediction_extrapolated", False)]
    parts.append(
        f"Signal, aliasing and particles together predict ({basis}): "
        + ", ".join(f"{b} px {r:.2f} Å" for b, r in pred)
        + f", so physics favours {best} px"
        + (
            f" ({', '.join(map(str, extrapolated))} px extrapolated from a box that keeps less signal: uncertain)."
            if extrapolated
            else "."
        )
    )
    measured = [(r.box_px, r.measured_resolution_a, r.predicted_resolution_a) for r in rows if r.measured_resolution_a]
    if len(measured) >= 2:
        mbest = min(measured, key=lambda t: t[1])
        text = ", ".join(f"{b} px {m:.2f} Å" for b, m, _ in measured)
        gap = [abs(m - p) for _, m, p in measured]
        if mbest[0] != best and max(gap) > 0.0:
            other = [c for c in e.causes if c.basis == "not modelled"]
            nb = {r.box_px: r.neighbours_fraction for r in rows if r.neighbours_fraction is not None}
            nb_text = (
                " (particles with a neighbour in the window: "
                + ", ".join(f"{b} px {100 * v:.0f}%" for b, v in nb.items())
                + ")"
                if nb
                else ""
            )
            parts.append(
                f"Measured: {text}. The measured difference runs against what the modelled causes predict, so it "
                f"comes from what they do not model: {', '.join(c.cause for c in other)}{nb_text}, or from "
                "run-to-run noise."
            )
        else:
            parts.append(f"Measured: {text}; within {max(gap):.2f} Å of the prediction.")
    small = rows[0]
    if s.program == "cryosparc" and len(rows) > 1:
        big = rows[-1]
        inner, outer = big.window_fractions_same_a
        parts.append(
            f"To test it: refine {big.box_px} px with window inner {inner:.3f} and outer {outer:.3f} (the "
            f"{small.box_px} px window in Å), and repeat each box at least 3 times for `cryobox judge` to tell a "
            "real difference from run-to-run noise."
        )
    elif len(rows) > 1:
        parts.append(
            "To test it: repeat each box at least 3 times (new seeds) and run `cryobox judge` on the runs to tell a "
            "real difference from run-to-run noise."
        )
    return " ".join(parts)
