"""Values as short text for tables (terminal and HTML)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fmt", "half_maps_text"]


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
