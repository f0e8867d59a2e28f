"""The repeat statistics of sweep and judge: verdicts that agree with the numbers, checked by simulation."""

import numpy as np
import pytest
from scipy import stats

from cryobox.core.stats import compare_repeats, compare_resolutions, pooled_sd, power_two_sample, repeats_for_power
from cryobox.report.text import verdict_sentence

SHELL = 1.0 / (576 * 1.06)  # one Fourier shell at 576 px, 1.06 Å/px (1/Å)


def test_confidence_interval_is_welchs():
    a, b = [0.27, 0.26, 0.275], [0.245, 0.25, 0.24, 0.248]
    c = compare_repeats(a, b)
    se = np.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 4)
    half = stats.t.ppf(0.975, c["df"]) * se
    assert c["ci_low"] == pytest.approx(c["difference"] - half) and c["ci_high"] == pytest.approx(
        c["difference"] + half
    )
    # the interval excludes 0 exactly when p < 0.05
    assert (c["ci_low"] > 0) == (c["p"] < 0.05)


def test_resolutions_are_compared_on_frequency_and_named_the_right_way():
    # 280 px runs at 3.6-3.8 Å, 576 px runs at 4.0-4.2 Å: the smaller box is finer
    c = compare_resolutions([3.7, 3.6, 3.8], [4.1, 4.0, 4.2], shell_width_inv_a=SHELL)
    assert c["verdict"] == "finer" and c["scale"] == "spatial frequency (1/Å)"
    assert c["difference"] == pytest.approx(
        np.mean(1 / np.array([3.7, 3.6, 3.8])) - np.mean(1 / np.array([4.1, 4.0, 4.2]))
    )
    assert c["mean_resolution_a"] == pytest.approx(1 / np.mean(1 / np.array([3.7, 3.6, 3.8])))
    assert c["difference_a"] < 0 and c["ci_a"][0] < c["difference_a"] < c["ci_a"][1] < 0
    ref = stats.ttest_ind(1 / np.array([3.7, 3.6, 3.8]), 1 / np.array([4.1, 4.0, 4.2]), equal_var=False)
    assert c["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    flipped = compare_resolutions([4.1, 4.0, 4.2], [3.7, 3.6, 3.8], shell_width_inv_a=SHELL)
    assert flipped["verdict"] == "coarser"
    s = verdict_sentence(c, "box280", "box576")
    assert s.startswith("box280 is finer than box576") and "95% CI" in s and "p = " in s


def test_a_test_without_power_says_undecided_never_no_difference():
    # the demo's case: 8 Å apart, two repeats each, one of them wide
    c = compare_resolutions([28.92, 28.14], [21.61, 19.33], shell_width_inv_a=1 / (80 * 5.0))
    s = verdict_sentence(c, "box70", "box70_pm80")
    assert "not a real difference" not in s and "within" not in s
    if c["p"] >= 0.05:
        assert c["verdict"] == "undecided" and "undecided" in s and "repeats per variant" in s
        assert c["repeats_needed"] is not None and c["repeats_needed"] > 2
    # one run per variant: undecided, and it says why and how many runs would do
    one = compare_resolutions([3.7], [4.1], shell_width_inv_a=SHELL)
    s1 = verdict_sentence(one, "box280", "box576")
    assert one["verdict"] == "undecided" and one["sd_assumed"] and one["repeats_needed"] >= 2
    assert "one run per variant cannot separate" in s1 and "assuming a run-to-run spread of one shell" in s1


def test_power_function_known_values():
    # Cohen's d = 1, n = 17 per group: power 0.80 for the two-sided two-sample t-test (G*Power gives 0.807)
    assert power_two_sample(1.0, 1.0, 17) == pytest.approx(0.807, abs=0.005)
    assert repeats_for_power(1.0, 1.0) == 17
    assert repeats_for_power(0.5, 1.0) == 64  # the textbook 64 per group for d = 0.5
    assert power_two_sample(0.0, 1.0, 5) == pytest.approx(0.05, abs=1e-9)
    assert pooled_sd([1, 2, 3], [5], [2, 4]) == pytest.approx(np.sqrt((2 + 2) / 3))


def test_false_positive_rate_by_simulation():
    """Pairs with no true difference: "finer" or "coarser" at most alpha + 0.01 of the time.

    Equal spreads, and a threefold spread with equal repeats. (Welch's test exceeds alpha when the
    variant with fewer repeats also scatters more, e.g. about 0.095 for 4 vs 2 repeats at a threefold
    spread: the docs advise equal repeats per variant.)
    """
    rng = np.random.default_rng(12)
    for n_a, n_b, sd_b in ((3, 3, 1.0), (2, 4, 1.0), (3, 3, 3.0)):
        called = 0
        trials = 4000
        for _ in range(trials):
            k_a = 0.27 + 0.004 * rng.standard_normal(n_a)
            k_b = 0.27 + 0.004 * sd_b * rng.standard_normal(n_b)
            called += (
                compare_resolutions(1 / k_a, 1 / k_b, shell_width_inv_a=SHELL, power=None)["verdict"] != "undecided"
            )
        assert called / trials <= 0.05 + 0.01, (n_a, n_b, sd_b, called / trials)


@pytest.mark.parametrize("n,delta_sd", [(3, 2.0), (4, 1.5), (6, 1.0)])
def test_power_estimate_matches_simulated_power(n, delta_sd):
    """The power the report quotes is within 10 points of the rate at which the test detects a true difference."""
    rng = np.random.default_rng(n)
    sd, trials = 0.003, 2000
    hits = 0
    for _ in range(trials):
        k_a = 0.27 + delta_sd * sd + sd * rng.standard_normal(n)
        k_b = 0.27 + sd * rng.standard_normal(n)
        hits += compare_resolutions(1 / k_a, 1 / k_b, shell_width_inv_a=SHELL, power=None)["verdict"] == "finer"
    assert abs(hits / trials - power_two_sample(delta_sd * sd, sd, n)) <= 0.10


def test_power_at_two_repeats_is_exact_against_a_direct_integration():
    """n = 2 (df = 2), where scipy's noncentral t returns NaN for some noncentralities: the power
    equals an independent integration over the normal and chi-square variables (Monte Carlo free)."""
    from scipy import integrate
    from scipy import stats as st

    from cryobox.core.stats import power_two_sample, repeats_for_power

    for diff, sd in ((1.0, 1.0), (3.0, 1.0), (50 * np.sqrt(2.0 / 2), 1.0)):  # the last: ncp = 50
        crit = st.t.ppf(0.975, 2)
        ncp = diff / (sd * np.sqrt(2.0 / 2))
        # P(|(Z + ncp) / sqrt(V/2)| > crit) as a double integral over z and v
        inner = lambda v: st.norm.sf(crit * np.sqrt(v / 2) - ncp) + st.norm.cdf(-crit * np.sqrt(v / 2) - ncp)  # noqa: E731
        expected, _ = integrate.quad(lambda v: inner(v) * st.chi2.pdf(v, 2), 0, np.inf, limit=200)
        got = power_two_sample(diff, sd, 2)
        assert np.isfinite(got) and got == pytest.approx(expected, abs=1e-6)
    # with power defined at n = 2, a difference that 2 repeats detect asks for 2, not 3
    big = 40.0
    assert power_two_sample(big, 1.0, 2) > 0.8 and repeats_for_power(big, 1.0) == 2


def test_equivalence_within_one_shell_with_many_repeats():
    from cryobox.core.stats import compare_resolutions, equivalence_test

    rng = np.random.default_rng(4)
    shell = 1 / (280 * 1.06)
    # two variants with the same mean and a run-to-run spread of a fifth of a shell, 12 repeats each
    k = 1 / 3.7
    a = 1 / (k + rng.normal(0, shell / 5, 12))
    b = 1 / (k + rng.normal(0, shell / 5, 12))
    c = compare_resolutions(a, b, shell_width_inv_a=shell)
    assert c["verdict"] == "equivalent" and c["equivalence"]["equivalent"]
    assert "equivalent" in verdict_sentence(c, "box280", "box576") and "cheaper" in verdict_sentence(c, "x", "y")
    # two repeats with a spread of a shell: not equivalent, not different: undecided
    assert not equivalence_test([1.0, 1.0 + shell], [1.0 + shell / 2, 1.0 - shell / 2], margin=shell)["equivalent"]
    assert "power" not in c  # no observed power


@pytest.mark.parametrize("difference", [0.0005, 0.0025, 0.02])
@pytest.mark.parametrize("sd", [0.0008, 0.004])
def test_repeats_for_power_is_the_first_n_a_scan_of_every_n_finds(difference, sd):
    """The search over n (doubling, then bisection) gives the smallest n whose power reaches the
    target, as a scan of every n from 2 to the limit does."""
    from cryobox.core.stats import power_two_sample, repeats_for_power

    n = np.arange(2, 121)
    ok = n[power_two_sample(difference, sd, n) >= 0.8]
    assert repeats_for_power(difference, sd, max_n=120) == (int(ok[0]) if ok.size else None)
