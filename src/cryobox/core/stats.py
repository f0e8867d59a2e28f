"""Summary statistics reported by `inspect`, and the repeat test `sweep` uses (pure numpy/scipy)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "STAT_NAMES",
    "summarize_values",
    "mean_sd",
    "compare_repeats",
    "power_two_sample",
    "two_sided_t_power",
    "equivalence_test",
    "repeats_for_power",
    "pooled_sd",
    "compare_resolutions",
]

STAT_NAMES = ("min", "p5", "median", "mean", "p95", "max")


def summarize_values(values) -> dict[str, float] | None:
    """min, 5th percentile, median, mean, 95th percentile and max of finite values (None if none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    p5, med, p95 = np.percentile(v, [5, 50, 95])
    return {
        "min": float(v.min()),
        "p5": float(p5),
        "median": float(med),
        "mean": float(v.mean()),
        "p95": float(p95),
        "max": float(v.max()),
    }


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

    Welch's two-sample t-test (unequal variances, two-sided) on the values of ``a`` and ``b``, in
    whatever unit they come in. Needs at least 2 finite values on each side; with identical
    repeats on both sides (zero spread) any non-zero difference counts as beyond it.

    Returns the means, ``difference = mean(a) - mean(b)``, its standard error, t, the
    Welch-Satterthwaite degrees of freedom, p, the 95% (``1 - alpha``) confidence interval of the
    difference (``ci_low``, ``ci_high``), ``exceeds_spread`` (p < alpha; None when untestable) and
    ``verdict``: "higher" or "lower" (a relative to b) when p < alpha, else "undecided" — never
    "no difference", which a test without power cannot show.
    """
    from scipy import stats

    x, y = _finite(a), _finite(b)
    out = {
        "test": f"Welch's t-test, two-sided, alpha = {alpha:g}",
        "alpha": alpha,
        "n_a": int(x.size),
        "n_b": int(y.size),
        "mean_a": float(x.mean()) if x.size else None,
        "mean_b": float(y.mean()) if y.size else None,
        "difference": float(x.mean() - y.mean()) if x.size and y.size else None,
        "standard_error": None,
        "t": None,
        "df": None,
        "p": None,
        "ci_low": None,
        "ci_high": None,
    }
    if x.size < 2 or y.size < 2:
        out["verdict"] = "undecided"
        out["exceeds_spread"] = None
        out["why"] = "needs at least 2 repeats of each to measure the run-to-run spread"
        return out
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = float(np.sqrt(va + vb))
    diff = out["difference"]
    out["standard_error"] = se
    if se == 0.0:
        exceeds = diff != 0.0
        out.update(t=None, df=None, p=0.0 if exceeds else 1.0, ci_low=diff, ci_high=diff)
        out["why"] = "the repeats are identical on both sides"
    else:
        t = diff / se
        df = (va + vb) ** 2 / ((va**2 / (x.size - 1) if va > 0 else 0.0) + (vb**2 / (y.size - 1) if vb > 0 else 0.0))
        p = float(2.0 * stats.t.sf(abs(t), df))
        half = float(stats.t.ppf(1.0 - alpha / 2.0, df)) * se
        exceeds = p < alpha
        out.update(t=float(t), df=float(df), p=p, ci_low=diff - half, ci_high=diff + half)
        out["why"] = f"t = {t:.2f}, df = {df:.1f}, p = {p:.3g}"
    out["exceeds_spread"] = bool(exceeds)
    out["verdict"] = ("higher" if diff > 0 else "lower") if exceeds else "undecided"
    return out


def power_two_sample(difference: float, sd: float, n_per_group, *, alpha: float = 0.05):
    """Power of a two-sided two-sample t-test with ``n_per_group`` values on each side.

    Exact for equal variances and equal group sizes (Student's t, where Welch's test with equal n
    and equal spread is nearly the same): the probability that |T| exceeds the critical value,
    T following the noncentral t distribution with 2n - 2 degrees of freedom and noncentrality
    ``difference / (sd * sqrt(2 / n))`` (Cohen 1988, ch. 2). ``sd`` is the run-to-run standard
    deviation of one repeat, in the unit of ``difference``. ``n_per_group`` may be an array
    (then so is the result); n < 2 gives NaN.
    """
    from scipy import stats

    n = np.asarray(n_per_group, dtype=np.float64)
    if sd <= 0:
        power = np.full(n.shape, 1.0 if difference != 0 else alpha)
    else:
        df = np.maximum(2 * n - 2, 1)
        ncp = abs(difference) / (sd * np.sqrt(2.0 / np.maximum(n, 1)))
        crit = stats.t.ppf(1.0 - alpha / 2.0, df)
        with np.errstate(all="ignore"):
            power = np.asarray(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp), dtype=np.float64)
        # scipy's noncentral t returns NaN for some (df, ncp), e.g. df = 2 at ncp 50: integrate there
        bad = ~np.isfinite(power) & (n >= 2)
        if bad.any():
            flat = np.broadcast_to(power, n.shape).copy().ravel()
            for i in np.flatnonzero(bad.ravel()):
                flat[i] = two_sided_t_power(
                    float(np.broadcast_to(crit, n.shape).ravel()[i]),
                    float(np.broadcast_to(df, n.shape).ravel()[i]),
                    float(np.broadcast_to(ncp, n.shape).ravel()[i]),
                )
            power = flat.reshape(n.shape)
    power = np.where(n >= 2, power, np.nan)
    return float(power) if power.ndim == 0 else power


def two_sided_t_power(crit: float, df: float, ncp: float) -> float:
    """P(|T| > crit) for T noncentral t (``df``, ``ncp``), by direct integration over the
    chi-square variable: T = (Z + ncp) / sqrt(V / df), so
    P(T > c) = E_V[Phi(ncp - c sqrt(V/df))] and P(T < -c) = E_V[Phi(-ncp - c sqrt(V/df))]."""
    from scipy import integrate, stats

    def integrand(v: float) -> float:
        s = crit * np.sqrt(v / df)
        return (stats.norm.cdf(ncp - s) + stats.norm.cdf(-ncp - s)) * stats.chi2.pdf(v, df)

    value, _ = integrate.quad(integrand, 0.0, np.inf, limit=200)
    return float(min(1.0, max(0.0, value)))


def repeats_for_power(
    difference: float, sd: float, *, power: float = 0.8, alpha: float = 0.05, max_n: int = 1000
) -> int | None:
    """The smallest number of repeats per variant that detects ``difference`` with ``power``
    (two-sided two-sample t-test at ``alpha``, see ``power_two_sample``); None above ``max_n``."""
    if difference is None or not (np.isfinite(difference) and np.isfinite(sd)) or difference == 0:
        return None
    if sd <= 0:
        return 2

    def enough(n: int) -> bool:
        return bool(power_two_sample(difference, sd, n, alpha=alpha) >= power)

    # the power grows with n: doubling, then bisection (a few dozen evaluations where a scan of
    # every n up to max_n took hundreds of numerical integrations where scipy's noncentral t fails)
    lo, hi = 1, 2  # lo: not enough (n = 1 has no test); hi: the candidate
    while not enough(hi):
        if hi >= max_n:
            return None
        lo, hi = hi, min(2 * hi, max_n)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return int(hi)


def pooled_sd(*groups) -> float | None:
    """The pooled sample standard deviation of several groups of repeats (groups with fewer than 2
    finite values are left out); None when no group has 2."""
    ss, df = 0.0, 0
    for g in groups:
        v = _finite(g)
        if v.size >= 2:
            ss += float(((v - v.mean()) ** 2).sum())
            df += v.size - 1
    return float(np.sqrt(ss / df)) if df else None


def equivalence_test(a, b, *, margin: float, alpha: float = 0.05) -> dict:
    """Two one-sided Welch tests (TOST, Schuirmann 1987): is |mean(a) - mean(b)| smaller than
    ``margin``? Equivalent when both one-sided nulls (difference <= -margin, >= +margin) are
    rejected at ``alpha``, i.e. the 1 - 2 alpha interval of the difference lies inside
    (-margin, margin). Needs 2 values on each side; ``p`` is the larger one-sided p."""
    from scipy import stats

    x, y = _finite(a), _finite(b)
    out = {"test": f"two one-sided Welch tests, alpha = {alpha:g}", "margin": float(margin), "p": None}
    if x.size < 2 or y.size < 2 or not margin > 0:
        out["equivalent"] = False
        out["why"] = "needs at least 2 repeats of each"
        return out
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = float(np.sqrt(va + vb))
    diff = float(x.mean() - y.mean())
    if se == 0.0:
        out.update(p=0.0 if abs(diff) < margin else 1.0, equivalent=abs(diff) < margin, why="identical repeats")
        return out
    df = (va + vb) ** 2 / ((va**2 / (x.size - 1) if va > 0 else 0.0) + (vb**2 / (y.size - 1) if vb > 0 else 0.0))
    p_low = float(stats.t.sf((diff + margin) / se, df))  # H0: diff <= -margin
    p_high = float(stats.t.cdf((diff - margin) / se, df))  # H0: diff >= +margin
    out["p"] = max(p_low, p_high)
    out["equivalent"] = bool(out["p"] < alpha)
    out["df"] = float(df)
    return out


def compare_resolutions(
    resolutions_a, resolutions_b, *, shell_width_inv_a: float, alpha: float = 0.05, power: float | None = 0.8
) -> dict:
    """Two variants' repeated resolutions (Å), compared on the spatial-frequency axis (1/Å).

    The test runs on 1/Å because that is the axis the FSC is sampled and crossed on: a Fourier
    shell is a fixed step in 1/Å, so run-to-run scatter of the crossing is about the same in 1/Å
    at 3.7 and at 4.1 Å, while in Å it grows as d² (and a mean of Å values is biased towards the
    coarser runs). Differences are also given in Å, at the variants' mean frequencies.

    ``shell_width_inv_a`` is one Fourier shell, 1 / (box px * pixel size Å), in 1/Å: the smallest
    difference an FSC can resolve. Returns ``compare_repeats`` on the frequencies plus:
    ``verdict`` "finer" / "coarser" (a relative to b) or "undecided"; ``mean_resolution_a`` /
    ``_b`` (1 / mean frequency, Å); ``difference_a`` (Å, a minus b; negative: a is finer) with
    its 95% interval ``ci_a`` (Å, the frequency interval mapped through 1/k at b's mean);
    ``sd_inv_a`` (pooled run-to-run SD, 1/Å; None with under 2 runs per variant, when the power
    figures assume one shell and say so); ``power`` (of this test for the observed difference);
    ``equivalence`` (``equivalence_test`` with a margin of one Fourier shell: when it holds and
    the difference test does not, ``verdict`` is "equivalent": take the cheaper box);
    ``repeats_needed`` (per variant, for the observed difference with ``power``) and
    ``repeats_needed_one_shell`` (for a difference of one shell). No "observed power": the power
    of a test at the difference it observed is a function of its p value and says nothing more.
    ``power=None`` leaves the repeat figures out (the verdict does not depend on them).
    """
    ra, rb = _finite(resolutions_a), _finite(resolutions_b)
    ka, kb = 1.0 / ra[ra > 0], 1.0 / rb[rb > 0]
    c = compare_repeats(ka, kb, alpha=alpha)
    c["scale"] = "spatial frequency (1/Å)"
    c["verdict"] = {"higher": "finer", "lower": "coarser"}.get(c["verdict"], "undecided")
    ma, mb = c["mean_a"], c["mean_b"]
    c["mean_resolution_a"] = 1.0 / ma if ma else None
    c["mean_resolution_b"] = 1.0 / mb if mb else None
    c["difference_a"] = c["mean_resolution_a"] - c["mean_resolution_b"] if ma and mb else None
    c["ci_a"] = None
    if c["ci_low"] is not None and mb:
        ends = [mb + c["ci_high"], mb + c["ci_low"]]
        c["ci_a"] = [1.0 / e - 1.0 / mb if e > 0 else float("-inf") for e in ends]
    sd = pooled_sd(ka, kb)
    c["sd_inv_a"] = sd
    c["sd_assumed"] = sd is None
    sd_used = sd if sd is not None else shell_width_inv_a
    c["shell_width_inv_a"] = shell_width_inv_a
    c["equivalence"] = equivalence_test(ka, kb, margin=shell_width_inv_a, alpha=alpha)
    if c["verdict"] == "undecided" and c["equivalence"]["equivalent"]:
        c["verdict"] = "equivalent"
    if power is None:
        return c
    diff = c["difference"]
    c["repeats_needed"] = repeats_for_power(diff, sd_used, power=power, alpha=alpha) if diff else None
    c["repeats_needed_one_shell"] = repeats_for_power(shell_width_inv_a, sd_used, power=power, alpha=alpha)
    c["power_method"] = (
        f"two-sided two-sample t-test at alpha = {alpha:g}, {power:.0%} power, from the noncentral t distribution "
        "(equal repeats per variant, pooled run-to-run SD"
        + (", assumed to be one Fourier shell because no variant has 2 runs)" if sd is None else ")")
    )
    return c
