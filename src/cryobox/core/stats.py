"""Summary statistics reported by `inspect` (pure numpy)."""

from __future__ import annotations

import numpy as np

__all__ = ["STAT_NAMES", "summarize_values"]

STAT_NAMES = ("min", "p5", "median", "mean", "p95", "max")


def summarize_values(values) -> dict[str, float] | None:
    """min, 5th percentile, median, mean, 95th percentile and max of finite values (None if none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    p5, med, p95 = np.percentile(v, [5, 50, 95])
    return {"min": float(v.min()), "p5": float(p5), "median": float(med), "mean": float(v.mean()), "p95": float(p95), "max": float(v.max())}
