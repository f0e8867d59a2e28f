"""cryobox explain: every number against an independent known answer.

- signal kept: against a brute-force image simulation (a textured disc, its CTF applied in a box
  four times larger, cropped and windowed; the retained signal per shell measured as the
  projection of the cropped image's spectrum on the model's), three defoci, even and odd boxes,
  the box, cryoSPARC's window and RELION's mask;
- neighbours: against a count over all pairs;
- edge area, ResLog, the model curve's crossing, the collection advice: closed forms;
- the command: the JSON the issue names, the same numbers in advise --json, and advice that
  never names a disabled RELION flag or a workflow cryoSPARC lacks.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.fft as sfft

from cryobox.core import explain as ex
from cryobox.core.optics import ctf_2d


def _grid(n: int, p: float):
    return sfft.fftfreq(n, d=p)[:, None], sfft.rfftfreq(n, d=p)[None, :]


def brute_force_kept(
    box: int, p: float, diameter: float, defocus: float, window: ex.Window, *, profile: str, seeds: int = 6
):
    """Per Fourier shell of the box: <data, model> / <model, model>, the data being a random
    texture over the particle (a uniform disc, or a ball's projection: variance ∝ thickness, as
    atoms spread through a ball) with its CTF applied in a 4x larger box, then cropped to ``box``
    and windowed; the model the same texture with the CTF sampled on the small box's grid (what a
    refinement compares with)."""
    big = 4 * box + (box % 2)
    params = dict(
        defocus_u_a=defocus, defocus_v_a=defocus, defocus_angle_deg=0, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1
    )
    ctf_big = ctf_2d(*_grid(big, p), **params)
    ky, kx = _grid(box, p)
    ctf_small = ctf_2d(ky, kx, **params)
    x = (np.arange(big) - big // 2) * p
    r2 = (diameter / 2) ** 2 - (x[:, None] ** 2 + x[None, :] ** 2)
    disc = (r2 >= 0).astype(float) if profile == "disc" else np.sqrt(np.sqrt(np.clip(r2, 0, None)))
    w = ex.window_image(window, p, box)
    shell = np.round(np.hypot(ky, kx) * box * p).astype(int).ravel()
    n_sh = box // 2 + 1
    ok = shell < n_sh
    num, den = np.zeros(n_sh), np.zeros(n_sh)
    a = big // 2 - box // 2
    for s in range(seeds):
        texture = np.random.default_rng(s).standard_normal((big, big)) * disc
        image = sfft.irfft2(sfft.rfft2(texture) * ctf_big, s=(big, big))
        data = sfft.rfft2(image[a : a + box, a : a + box] * w)
        model = sfft.rfft2(texture[a : a + box, a : a + box]) * ctf_small
        num += np.bincount(shell[ok], (data * np.conj(model)).real.ravel()[ok], minlength=n_sh)
        den += np.bincount(shell[ok], (np.abs(model) ** 2).ravel()[ok], minlength=n_sh)
    return np.arange(n_sh) / (box * p), num / np.maximum(den, 1e-30)


@pytest.mark.parametrize("box,defocus", [(64, 10000.0), (64, 20000.0), (65, 30000.0), (97, 20000.0)])
@pytest.mark.parametrize("kind", ["box", "cryosparc", "relion"])
@pytest.mark.parametrize("profile", ["ball", "disc"])
def test_signal_kept_matches_a_brute_force_simulation_within_3_points(box, defocus, kind, profile):
    p, d = 2.0, 100.0
    window = {
        "box": ex.Window.box(box, p),
        "cryosparc": ex.Window.cryosparc(box, p),
        "relion": ex.Window.relion_mask(box, p, 110.0),
    }[kind]
    k, measured = brute_force_kept(box, p, d, defocus, window, profile=profile)
    table = ex.signal_kept_table(window, d, profile=profile)
    model = ex.kept_fraction(table, ex.delocalisation_shift_a(k, defocus_a=defocus, voltage_kv=300, cs_mm=2.7))
    # bands of 4 shells, from where the frequency is well above the disc's own bandwidth (4/D)
    start = int(math.ceil(4 / d * box * p))
    bands = [(measured[i : i + 4].mean(), model[i : i + 4].mean()) for i in range(start, box // 2 - 3, 4)]
    assert len(bands) >= 3
    worst = max(abs(a - b) for a, b in bands)
    assert worst < 0.03, bands
    assert min(b for _, b in bands) < 0.9  # the case loses signal: the comparison means something


def test_signal_kept_is_one_when_the_disc_fits_and_falls_with_the_shift():
    table = ex.signal_kept_table(ex.Window.box(300, 1.0), 100.0, profile="disc")
    assert ex.kept_fraction(table, 0.0) == pytest.approx(1.0, abs=1e-3)
    assert ex.kept_fraction(table, 90.0) == pytest.approx(1.0, abs=2e-3)  # 50 + 90 < 150: still inside
    f = ex.kept_fraction(table, np.linspace(0, 400, 50))
    assert np.all(np.diff(f) <= 1e-6) and f[-1] == 0.0
    # half the disc out along an axis, more in along a diagonal: between 0.5 and 0.75 averaged
    assert 0.5 < ex.kept_fraction(table, 150.0) < 0.75


def test_delocalisation_shift_is_the_local_frequency_of_the_ctf_phase():
    lam = 0.019688  # Å at 300 kV
    k = 0.27
    s = ex.delocalisation_shift_a(k, defocus_a=24000.0, voltage_kv=300, cs_mm=2.7)
    # dchi/dk / 2pi, chi = pi lam df k^2 - pi/2 Cs lam^3 k^4
    assert s == pytest.approx(lam * 24000 * k - 2.7e7 * lam**3 * k**3, rel=1e-4)


def test_neighbour_counts_match_all_pairs():
    rng = np.random.default_rng(3)
    n = 400
    x, y = rng.uniform(0, 2000, n), rng.uniform(0, 2000, n)
    mic = rng.integers(0, 4, n)
    got = ex.neighbour_counts(x, y, mic, {"c": (150.0, "circle"), "s": (150.0, "square")})
    dx, dy = np.abs(x[:, None] - x[None, :]), np.abs(y[:, None] - y[None, :])
    same = (mic[:, None] == mic[None, :]) & ~np.eye(n, dtype=bool)
    circle = ((np.hypot(dx, dy) <= 150.0) & same).sum(axis=1)
    square = ((np.maximum(dx, dy) <= 150.0) & same).sum(axis=1)
    assert got["c"]["fraction"] == pytest.approx((circle > 0).mean())
    assert got["c"]["mean"] == pytest.approx(circle.mean())
    assert got["s"]["fraction"] == pytest.approx((square > 0).mean())
    assert got["s"]["mean"] == pytest.approx(square.mean())


def test_edge_area_fraction_closed_form():
    f = ex.edge_area_fraction(np.array([0.0, 50.0, 500.0]), np.array([0.0, 500.0, 500.0]), 1000.0, 1000.0, 100)
    np.testing.assert_allclose(f, [0.75, 0.0, 0.0])
    f = ex.edge_area_fraction(np.array([25.0]), np.array([500.0]), 1000.0, 1000.0, 100)
    assert f[0] == pytest.approx(0.25)


def test_reslog_and_the_model_curve_agree():
    # SSNR ∝ N exp(-B k²/2): scaling N moves 1/d² by (2/B) ln(N'/N), which is ResLog
    k = np.linspace(1e-4, 0.5, 4000)
    base = ex.model_ssnr(k, resolution_a=3.7, bfactor_a2=120.0)
    assert ex.crossing_resolution_a(k, ex.fsc_from_ssnr(base)) == pytest.approx(3.7, abs=0.002)
    half = ex.crossing_resolution_a(k, ex.fsc_from_ssnr(0.5 * base))
    assert half == pytest.approx(ex.reslog_resolution_a(3.7, 1.0, 0.5, 120.0), abs=0.003)
    assert ex.reslog_resolution_a(3.7, 1.0, 0.5, 120.0) == pytest.approx(
        1 / math.sqrt(1 / 3.7**2 + 2 / 120 * math.log(0.5))
    )
    # a curve that never reaches the threshold has no resolution
    assert ex.crossing_resolution_a(k, np.full_like(k, 0.05)) == math.inf


def test_bfactor_is_recovered_from_a_model_curve():
    k = np.linspace(0.0, 0.4, 200)
    fsc = ex.fsc_from_ssnr(ex.model_ssnr(k, resolution_a=4.0, bfactor_a2=150.0))
    assert ex.bfactor_from_fsc(k, fsc) == pytest.approx(150.0, rel=1e-3)


def test_highest_defocus_keeps_ninety_percent():
    window = ex.Window.cryosparc(280, 1.06)
    table = ex.signal_kept_table(window, 220.0)
    df = ex.highest_defocus_a(table, 280 * 1.06, 3.7, voltage_kv=300, cs_mm=2.7)
    s = ex.delocalisation_shift_a(1 / 3.7, defocus_a=df, voltage_kv=300, cs_mm=2.7)
    assert ex.kept_fraction(table, s) == pytest.approx(0.9, abs=0.01)
    assert ex.kept_fraction(table, s * 1.05) < 0.9


# ---------------------------------------------------------------------------------------------
# the command


@pytest.fixture(scope="module")
def her_file(tmp_path_factory):
    from typer.testing import CliRunner

    from cryobox.cli.main import app

    root = tmp_path_factory.mktemp("explain")
    r = CliRunner().invoke(app, ["example", "--out", str(root)])
    assert r.exit_code == 0, r.output
    return root / "example_particles.cs"


def _run(*args):
    from typer.testing import CliRunner

    from cryobox.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_explain_json_has_what_the_issue_names(her_file):
    r = _run("explain", her_file, "--diameter", 220, "--boxes", "280,360,576", "--resolution", 3.7, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [b["box_px"] for b in d["boxes"]] == [280, 360, 576]
    for b in d["boxes"]:
        assert set(b) >= {"signal_kept", "neighbours_fraction", "particles_kept", "predicted_resolution_a"}
        assert all(0.0 <= v <= 1.0 for v in b["signal_kept"].values())
    for c in d["causes"]:
        assert set(c) >= {"cause", "favours_box_px", "effect_a", "basis"}
        assert c["basis"] in ("computed", "estimated", "not modelled")
    by = {c["cause"].split(" (")[0]: c for c in d["causes"]}
    # her case: at 3.7 Å the 280 px box keeps about half the signal inside cryoSPARC's window, 576 px all of it
    k = {b["box_px"]: b for b in d["boxes"]}
    assert 0.40 < k[280]["signal_kept_at_resolution"] < 0.55 and k[576]["signal_kept_at_resolution"] > 0.99
    assert by["signal kept"]["favours_box_px"] == 576 and by["signal kept"]["effect_a"] > 0.3
    assert by["particles"]["favours_box_px"] == 280  # cryoSPARC drops more edge particles in a bigger box
    assert k[576]["neighbours_fraction"] > k[280]["neighbours_fraction"]
    assert "576 px" in d["paragraph"] and "window inner" in d["paragraph"]


def test_a_measured_fsc_predicts_the_other_boxes_and_is_shown(her_file, tmp_path):
    k = np.arange(0, 141) / (280 * 1.06)
    fsc = ex.fsc_from_ssnr(ex.model_ssnr(k, resolution_a=3.7, bfactor_a2=120.0))
    (tmp_path / "J50_fsc.txt").write_text("wave_number fsc\n" + "".join(f"{i} {v:.6f}\n" for i, v in enumerate(fsc)))
    r = _run(
        "explain",
        her_file,
        "--diameter",
        220,
        "--boxes",
        "280,576",
        "--fsc",
        f"cs280={tmp_path}/J50_fsc.txt@280:1.06",
        "--json",
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    rows = {b["box_px"]: b for b in d["boxes"]}
    assert rows[280]["measured_resolution_a"] == pytest.approx(3.7, abs=0.03)
    assert rows[280]["predicted_resolution_a"] == pytest.approx(rows[280]["measured_resolution_a"], abs=0.03)
    assert rows[576]["predicted_resolution_a"] < rows[280]["predicted_resolution_a"]  # more signal kept
    assert d["bfactor_a2"] == pytest.approx(120.0, rel=0.05) and "slope" in d["bfactor_source"]


def test_advice_never_names_a_disabled_flag_or_premultiplying_for_cryosparc(her_file):
    r = _run("advise", her_file, "--diameter", 220, "--resolution", 3.7, "--boxes", "280,576", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    text = " ".join(d["reasons"] + d["warnings"])
    assert "--pad_ctf)" not in text and "refine with CTF padding" not in text
    assert "solvent noise" not in text
    assert d["program"] == "cryosparc" and d["premultiply"]  # her data would need it in RELION
    assert "no workflow for CTF-premultiplied particles" in text
    assert "premultiply by the CTF and crop" not in text
    # the same particles as a RELION STAR: the RELION route is offered, with its CTF² caveat
    star = her_file.with_name("example_particles.star")
    r = _run("advise", star, "--diameter", 220, "--resolution", 3.7, "--json")
    d = json.loads(r.stdout)
    text = " ".join(d["reasons"] + d["warnings"])
    assert d["program"] == "relion" and "premultiply by the CTF and crop" in text
    assert "disabled since RELION 3.1" in text or "CTF^2" not in text


def test_bad_explain_input_is_one_sentence(her_file):
    for args, word in (
        (["--boxes", "100"], "does not hold"),
        (["--boxes", "280", "--window-inner", "0.9", "--window-outer", "0.5"], "--window-inner"),
        (["--boxes", "280", "--bfactor", "-5"], "--bfactor"),
        (["--boxes", "280", "--program", "eman"], "--program"),
    ):
        r = _run("explain", her_file, "--diameter", 220, "--resolution", 3.7, *args)
        assert r.exit_code == 2 and word in r.stderr and "Traceback" not in r.output, (args, r.output)


def test_the_prediction_meets_reconstructions_from_simulated_data():
    """The small version of benchmarks/explain_prediction.py: a ball of atoms at 5-7 µm defocus,
    reconstructed from its true poses in 96 px and cropped to 56 px (the tight box loses about two
    of its Fourier shells); the tight box predicted from the roomy one's FSC within one Fourier
    shell, and 70% of the particles from all of them likewise."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "explain_prediction.py"
    proc = subprocess.run([sys.executable, str(script), "--small"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    measured = next(r for r in rows if r["case"] == "measured")
    forward = next(r for r in rows if r["case"].startswith("signal kept: 56 px predicted from 96 px"))
    # the tight box really loses: at least two of its own Fourier shells
    assert measured["small_a"] - measured["big_a"] >= 1.9 * forward["shell_a"], measured
    assert abs(forward["predicted_a"] - forward["measured_a"]) <= forward["shell_a"], forward
    number = next(r for r in rows if r["case"].startswith("particles"))
    assert abs(number["predicted_a"] - number["measured_a"]) <= number["shell_a"], number


def test_neighbour_counts_on_every_nth_micrograph_are_exact_within_them():
    rng = np.random.default_rng(5)
    n = 600
    x, y = rng.uniform(0, 1500, n), rng.uniform(0, 1500, n)
    mic = rng.integers(0, 12, n)
    got = ex.neighbour_counts(x, y, mic, {"c": (120.0, "circle")}, max_queries=200)  # every 3rd micrograph
    use = mic % 3 == 0
    xs, ys, ms = x[use], y[use], mic[use]
    d = np.hypot(xs[:, None] - xs[None, :], ys[:, None] - ys[None, :])
    counts = ((d <= 120.0) & (ms[:, None] == ms[None, :]) & ~np.eye(use.sum(), dtype=bool)).sum(axis=1)
    assert got["c"]["fraction"] == pytest.approx((counts > 0).mean())
    assert got["c"]["mean"] == pytest.approx(counts.mean())


def test_the_issue_command_runs_as_written_without_a_resolution(her_file, tmp_path):
    """`cryobox explain J42_particles.cs --diameter 220 --boxes 280,360,576`: the table and the
    paragraph, weighed at 3.5 x the pixel size with a note saying so."""
    import shutil

    shutil.copy(her_file, tmp_path / "J42_particles.cs")
    r = _run("explain", tmp_path / "J42_particles.cs", "--diameter", 220, "--boxes", "280,360,576")
    assert r.exit_code == 0, r.output
    assert "no target given" in r.stdout and "3.71 Å" in r.stdout and "causes at 3.71 Å" in r.stdout
    assert "physics favours 576 px" in " ".join(r.stdout.split())
