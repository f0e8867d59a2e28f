"""Runs that did not converge are found and said first (issue 22, item 6)."""

from __future__ import annotations

from cryobox.jobs.convergence import NOT_CONVERGED_ANGLE_DEG, convergence_flags, mark_unconverged


def _run(repeat, *, truth=None, converged=True, top=0.99, iteration=8):
    r = {
        "repeat": repeat,
        "converged": converged,
        "iteration": iteration,
        "curve": {"fsc": [1.0, 0.9, 0.8, top, 0.3, 0.1]},
    }
    if truth is not None:
        r["truth"] = {"median_angle_deg": truth}
    return r


def test_each_sign_flags_its_run_and_nothing_else():
    runs = {
        "a": [_run(1, truth=3.0, converged=False), _run(2, truth=78.0)],  # the truth overrides the engine's sign
        "b": [_run(1, converged=False), _run(2, top=0.42)],
        "c": [_run(1), _run(2)],
    }
    pairs = [
        {"a": "c repeat 1", "b": "c repeat 2", "same_variant": True, "variants": ["c", "c"], "median_angle_deg": 45.0},
        {"a": "a repeat 1", "b": "b repeat 1", "same_variant": False, "variants": ["a", "b"], "median_angle_deg": 90},
    ]
    flags = {(f["variant"], f["run"]): f["reasons"] for f in convergence_flags(runs, pairs)}
    assert set(flags) == {("a", "repeat 2"), ("b", "repeat 1"), ("b", "repeat 2"), ("c", "repeat 1"), ("c", "repeat 2")}
    assert "78° from the truth" in flags[("a", "repeat 2")][0]
    assert "iteration limit (iteration 8)" in flags[("b", "repeat 1")][0]
    assert "never reaches 0.5 beyond shell 2 (at most 0.42)" in flags[("b", "repeat 2")][0]
    assert "differ from c repeat 2's by 45°" in flags[("c", "repeat 1")][0]
    assert NOT_CONVERGED_ANGLE_DEG == 20.0
    # just below the limit is converged
    assert convergence_flags({"a": [_run(1, truth=NOT_CONVERGED_ANGLE_DEG - 0.1)]}) == []


def test_verdicts_on_flagged_runs_carry_the_caveat_and_name_no_best():
    summary = {
        "best": "a",
        "comparisons": [
            {"a": "a", "b": "b", "runs_used": 4, "sentence": "a is finer than b: 3.7 vs 4.1 Å."},
            {"a": "a", "b": "c", "runs_used": 4, "sentence": "a vs c: undecided."},
        ],
    }
    mark_unconverged(summary, [{"variant": "b", "run": "repeat 1", "reasons": ["x"]}])
    first, second = summary["comparisons"]
    assert first["runs_not_converged"] == 1 and "1 of the 4 runs it rests on did not converge" in first["sentence"]
    assert "runs_not_converged" not in second and second["sentence"] == "a vs c: undecided."
    assert summary["best"] is None and summary["not_converged"][0]["variant"] == "b"


def test_judge_says_first_that_a_run_did_not_converge(tmp_path):
    """Half maps that barely agree (FSC never 0.5): judge's text starts with NOT CONVERGED, and its
    JSON lists the run."""
    import json
    import sys
    from pathlib import Path

    import numpy as np
    from typer.testing import CliRunner

    sys.path.insert(0, str(Path(__file__).parent))
    from cryobox.cli.main import app
    from cryobox.io.mrc import write_mrc
    from mapgen import particle_half_maps

    for k in (1, 2, 3, 4):
        h1, h2, _ = particle_half_maps(40, 2.0, signal_res_a=6.0, noise=0.5, seed=k)
        if k == 3:  # a run whose halves did not find one structure: two unrelated particles
            h2 = particle_half_maps(40, 2.0, signal_res_a=6.0, noise=0.5, seed=30)[1]
        write_mrc(tmp_path / f"r{k}_h1.mrc", h1, pixel_size_a=2.0)
        write_mrc(tmp_path / f"r{k}_h2.mrc", h2, pixel_size_a=2.0)
    spec = lambda k: f"{tmp_path}/r{k}_h1.mrc:{tmp_path}/r{k}_h2.mrc"  # noqa: E731
    r = CliRunner().invoke(
        app, ["judge", f"a={spec(1)},{spec(2)}", f"b={spec(3)},{spec(4)}", "--out", str(tmp_path / "J")]
    )
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    table = text.index("Judged:")  # the progress lines, then the not-converged runs, then the table
    assert "NOT CONVERGED: b," in text[:table] and "never reaches 0.5" in text[:table]
    d = json.loads((tmp_path / "J" / "judge.json").read_text())
    assert [f["variant"] for f in d["not_converged"]] == ["b"]
    assert all("did not converge" in c["sentence"] for c in d["comparisons"])
    assert np.isfinite(d["variants"][0]["mean_a"])
