"""Did each run of a sweep or judge converge? The signs, and what the verdicts must then say.

Against the truth when it is known (a simulation: the median angular error of the run's poses),
otherwise from the run's own signs: the engine stopped at its iteration limit, the FSC never
reaches 0.5, or the poses of repeats of one variant disagree. A run flagged here is listed first
in every output, and each verdict that rests on it carries the caveat.
"""

from __future__ import annotations

__all__ = ["NOT_CONVERGED_ANGLE_DEG", "convergence_flags", "mark_unconverged"]

# a run whose poses are further than this from the truth (median over particles), or from a
# repeat's, did not find the structure's orientations (the issue asks a converged demo for under 10°)
NOT_CONVERGED_ANGLE_DEG = 20.0


def _max_fsc(run: dict) -> float | None:
    """The FSC's highest value from shell 3 on (shells 1-2 correlate through the mask's shape
    alone, even for unrelated half maps)."""
    fsc = ((run.get("curve") or {}).get("fsc") or [])[3:]
    return max(fsc) if fsc else None


def convergence_flags(runs: dict[str, list[dict]], between_runs: list[dict] | None = None) -> list[dict]:
    """Per run that shows a sign of not having converged: ``variant``, ``run`` (its name or
    repeat) and ``reasons`` (sentences). ``runs``: variant -> the runs' records (sweep/judge
    results; ``truth`` when known); ``between_runs``: the alignment summary's pairs of runs."""
    reasons: dict[tuple[str, str], list[str]] = {}

    def name(r: dict) -> str:
        return str(r.get("run") or f"repeat {r.get('repeat')}")

    for variant, rs in runs.items():
        for r in rs:
            why = []
            truth = (r.get("truth") or {}).get("median_angle_deg")
            if truth is not None:
                if truth > NOT_CONVERGED_ANGLE_DEG:
                    why.append(
                        f"its poses are {truth:.0f}° from the truth (median over particles; converged runs lie "
                        f"within {NOT_CONVERGED_ANGLE_DEG:.0f}°)"
                    )
            elif r.get("converged") is False:
                why.append(
                    f"the engine stopped at its iteration limit (iteration {r.get('iteration')}) before it converged"
                )
            top = _max_fsc(r)
            if top is not None and top < 0.5:
                why.append(f"its FSC never reaches 0.5 beyond shell 2 (at most {top:.2f}): the half maps hardly agree")
            if why:
                reasons[(variant, name(r))] = why
    for p in between_runs or []:
        if p.get("same_variant") and p.get("median_angle_deg", 0.0) > NOT_CONVERGED_ANGLE_DEG:
            variant = p["variants"][0]
            for who, other in ((p["a"], p["b"]), (p["b"], p["a"])):
                run = who[len(variant) + 1 :] if who.startswith(variant + " ") else who
                reasons.setdefault((variant, run), []).append(
                    f"its poses differ from {other}'s by {p['median_angle_deg']:.0f}° (median over particles)"
                )
    return [{"variant": v, "run": r, "reasons": why} for (v, r), why in reasons.items()]


def mark_unconverged(summary: dict, flags: list[dict]) -> dict:
    """Put ``flags`` into a sweep/judge summary (``not_converged``) and the caveat into every
    comparison that rests on a flagged run (its ``sentence`` and ``caveat``)."""
    summary["not_converged"] = flags
    flagged: dict[str, int] = {}
    for f in flags:
        flagged[f["variant"]] = flagged.get(f["variant"], 0) + 1
    for c in summary.get("comparisons") or []:
        n = flagged.get(c.get("a"), 0) + flagged.get(c.get("b"), 0)
        if not n:
            continue
        note = (
            f"{n} of the {c.get('runs_used', n)} runs it rests on did not converge (see above): the difference may "
            "be the alignment's failure, not the box's"
        )
        c["runs_not_converged"] = n
        c["caveat"] = f"{c['caveat']}; {note}" if c.get("caveat") else note
        c["sentence"] = c["sentence"].rstrip() + f" Caveat: {note}."
    if flags and summary.get("best"):
        summary["best"] = None  # a verdict that rests on runs that failed to align names no best
    return summary
