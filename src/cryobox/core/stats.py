"""Summary statistics reported by `inspect`, and the repeat test `sweep` uses (pure numpy/scipy)."""

from __future__ import annotations

import numpy as np

__all__ = ["STAT_NAMES", "summarize_values", "mean_sd", "compare_repeats"]

STAT_NAMES = ("min", "p5", "median", "mean", "p95", "max")


def summarize_values(values) -> dict[str, float] | None:
    """min, 5th percentile, median, mean, 95th percentile and max of finite values (None if none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    p5, med, p95 = np.percentile(v, [5, 50, 95])
    return {"min": float(v.min()), "p5": float(p5), "median": float(med), "mean": float(v.mean()), "p95": float(p95), "max": float(v.max())}


def _finite(values) -> np.ndarray:
    """The values that are neither None nor NaN / inf, as float64."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    return v[np.isfinite(v)]


def mean_sd(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; None with fewer than 2 values) of finite values."""
    v = _finite(values)
    if v.size == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1)) if v.size >= 2 else None)


def compare_repeats(a, b, *, alpha: float = 0.05) -> dict:
    """Is the difference between two sets of repeated measurements larger than their spread?

    Welch's two-sample t-test (unequal variances, two-sided) on the values of ``a`` and ``b``;
    the difference "exceeds the spread" when p < ``alpha``. Needs at least 2 values on each
    side; with identical repeats on both sides (zero spread) any non-zero difference exceeds
    it. Returns the means, the difference ``mean(a) - mean(b)``, its standard error, t, the
    Welch-Satterthwaite degrees of freedom, p and the verdict.
    """
    from scipy import stats

    x, y = _finite(a), _finite(b)
    out = {"test": f"Welch's t-test, two-sided, alpha = {alpha:g}", "n_a": int(x.size), "n_b": int(y.size),
           "mean_a": float(x.mean()) if x.size else None, "mean_b": float(y.mean()) if y.size else None,
           "difference": float(x.mean() - y.mean()) if x.size and y.size else None,
           "standard_error": None, "t": None, "df": None, "p": None}
    if x.size < 2 or y.size < 2:
        out["verdict"] = "undetermined"
        out["exceeds_spread"] = None
        out["why"] = "needs at least 2 repeats of each"
        return out
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = float(np.sqrt(va + vb))
    diff = out["difference"]
    out["standard_error"] = se
    if se == 0.0:
        exceeds = diff != 0.0
        out.update(t=None, df=None, p=0.0 if exceeds else 1.0)
        out["why"] = "the repeats are identical on both sides"
    else:
        t = diff / se
        df = (va + vb) ** 2 / ((va**2 / (x.size - 1) if va > 0 else 0.0) + (vb**2 / (y.size - 1) if vb > 0 else 0.0))
        p = float(2.0 * stats.t.sf(abs(t), df))
        exceeds = p < alpha
        out.update(t=float(t), df=float(df), p=p)
        out["why"] = f"|difference| {abs(diff):.3g} vs standard error {se:.3g} (t = {t:.2f}, df = {df:.1f}, p = {p:.3g})"
    out["exceeds_spread"] = bool(exceeds)
    out["verdict"] = "exceeds the repeats' spread" if exceeds else "within the repeats' spread"
    return out
