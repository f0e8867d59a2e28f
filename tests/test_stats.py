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
