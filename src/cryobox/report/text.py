"""Values as short text for tables (terminal and HTML)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fmt", "half_maps_text", "verdict_sentence", "repeats_advice"]


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

    text = (f"{n_text(need)} repeats per variant would detect a difference this size with 80% power"
            f" ({n_text(shell)} for one Fourier shell, {c['shell_width_inv_a']:.4f} 1/Å)")
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
    ci = c.get("ci_a")
    ci_text = f"95% CI of {a} minus {b}: {_a(ci[0])} to {_a(ci[1])} Å; " if ci else ""
    stats_text = f"{ci_text}Welch's t on 1/Å, p = {c['p']:.3g}" if c.get("p") is not None else ""
    if c["verdict"] in ("finer", "coarser"):
        return f"{a} is {c['verdict']} than {b}: {da:.2f} vs {db:.2f} Å, {apart:.2f} Å apart ({stats_text})."
    if c.get("n_a", 0) < 2 or c.get("n_b", 0) < 2:
        return (f"{a} vs {b}: {da:.2f} vs {db:.2f} Å, {apart:.2f} Å apart; undecided: one run per variant cannot separate "
                f"a difference from run-to-run noise; {repeats_advice(c)}.")
    power = c.get("power")
    power_text = f"; this test had {power:.0%} power for a difference this size" if power is not None else ""
    return (f"{a} vs {b}: undecided, {da:.2f} vs {db:.2f} Å, {apart:.2f} Å apart ({stats_text}){power_text}; "
            f"{repeats_advice(c)}.")
