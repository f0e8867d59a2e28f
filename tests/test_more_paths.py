"""Paths the README promises that had no test: the demo, the plain-text tables of fsc and compare,
run_model.star, filter --mask, and stopping an engine run that is interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pytest

from conftest import needs_relion
from cryobox.io.fsc_files import load_curve
from cryobox.io.mrc import write_mrc
from mapgen import particle_half_maps

CLI = [sys.executable, "-m", "cryobox"]


def run(*args, cwd, check=True):
    proc = subprocess.run(CLI + [str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    root = tmp_path_factory.mktemp("halves")
    h1, h2, mask = particle_half_maps(40, 2.0, seed=4)
    for name, v in (("h1.mrc", h1), ("h2.mrc", h2), ("mask.mrc", mask)):
        write_mrc(root / name, v, pixel_size_a=2.0)
    return root


def test_fsc_and_compare_tables_say_what_json_says(halves):
    d = json.loads(run("fsc", "h1.mrc", "h2.mrc", "--mask", "mask.mrc", "--seed", 1, "--json", cwd=halves).stdout)
    text = run("fsc", "h1.mrc", "h2.mrc", "--mask", "mask.mrc", "--seed", 1, "--star", "fsc.star", cwd=halves).stdout
    r = d["resolutions"]["0.143"]
    assert f"{r['resolution_a']:.2f}" in text and f"{r['interpolated_resolution_a']:.2f}" in text
    assert "40 px at 2 Å/px" in text and "mask: mask.mrc" in text
    cmp_json = json.loads(run("compare", "a=fsc.star", "--json", cwd=halves).stdout)["runs"][0]
    cmp_text = run("compare", "a=fsc.star", cwd=halves).stdout
    assert f"{cmp_json['resolution_0.143_interpolated_a']:.2f} Å" in cmp_text and "40 px (80 Å)" in cmp_text
    assert cmp_json["resolution_0.143_a"] == pytest.approx(d["resolution_a"])


def test_run_model_star_is_read_with_its_box(tmp_path):
    n, px = 64, 1.5
    shells = np.arange(n // 2 + 1)
    fsc = 1 / (1 + np.exp((shells - 20) / 1.5))
    lines = [
        "data_model_general",
        "",
        f"_rlnOriginalImageSize {n}",
        f"_rlnPixelSize {px}",
        "",
        "data_model_class_1",
        "",
        "loop_",
        "_rlnSpectralIndex #1",
        "_rlnResolution #2",
        "_rlnGoldStandardFsc #3",
    ]
    lines += [f"{s} {s / (n * px):.6f} {f:.6f}" for s, f in zip(shells, fsc)]
    (tmp_path / "run_model.star").write_text("\n".join(lines) + "\n")
    c = load_curve(str(tmp_path / "run_model.star"))
    assert (c.box_px, c.pixel_size_a, c.kind) == (n, px, "gold-standard (refinement)")
    first_below = int(np.argmax(fsc < 0.143))
    assert c.summary()["resolution_0.143_a"] == pytest.approx(n * px / (first_below - 1))
    with pytest.raises(Exception, match="not the 128 px given"):
        load_curve(f"{tmp_path / 'run_model.star'}@128")


def test_filter_with_mask_multiplies_after_filtering(halves):
    run("filter", "h1.mrc", "--lowpass", 8, "--mask", "mask.mrc", "--out", "f.mrc", cwd=halves)
    run("filter", "h1.mrc", "--lowpass", 8, "--out", "g.mrc", cwd=halves)
    f = mrcfile.read(halves / "f.mrc")
    g = mrcfile.read(halves / "g.mrc")
    m = mrcfile.read(halves / "mask.mrc")
    np.testing.assert_allclose(f, g * m, atol=1e-6 * np.abs(g).max())
    assert np.all(f[m == 0] == 0)


def test_an_interrupted_engine_run_stops_its_whole_process_group(tmp_path):
    """The local launcher, asked to stop (the sweep interrupted), stops the program and everything
    it started (RELION's mpirun and its ranks; here a shell and its sleep)."""
    from cryobox.engines.launch import Job, LocalLauncher, RunCommand

    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    launcher = LocalLauncher(1)
    job = Job("stop-me", tmp_path / "run", RunCommand((), ("bash", "-c", script)))
    job.job_id = launcher.submit(job)
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.05)
    assert launcher.states([job])[job.job_id] == "running"
    launcher.stop_all()
    child = int(pid_file.read_text())
    for _ in range(50):  # the grandchild (RELION's ranks, here a sleep) is gone too
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the interrupted run left a process running")
    assert job.log_path.read_text().startswith("# bash -c")
    assert launcher.submitted_text(job) == "started"


@needs_relion
def test_the_readme_demo_command_as_written(tmp_path):
    """`cryobox demo --quick --out demo`, as the README shows it (simulate, advise, sweep on
    RELION, report; run twice, the second reads every run back): the four steps, the report, and
    every run's convergence said before the table (the README shows the runs converging within
    the 20° rule; a run that does not is flagged and the verdicts resting on it carry the caveat)."""

    def demo():  # the README's command, as written, in a fresh folder
        done = subprocess.run(
            [sys.executable, "-m", "cryobox", "demo", "--quick", "--out", "demo"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    proc = demo()
    out = proc.stdout
    for step in ("1/4 simulating", "2/4 advise", "3/4 sweep on RELION", "4/4 report: demo/report.html"):
        assert step in out, step
    assert (tmp_path / "demo" / "report.html").stat().st_size > 100_000
    d = json.loads((tmp_path / "demo" / "sweep" / "sweep.json").read_text())
    table = out.index("Box-size sweep:")
    flagged = out[:table].count("NOT CONVERGED:")
    assert flagged == len(d["not_converged"])
    for c in d["comparisons"]:
        assert ("did not converge" in c["sentence"]) == bool(c.get("runs_not_converged"))
    assert all(len(v["interpolated_resolutions_a"]) == 3 for v in d["variants"])
    assert "iteration 1" in out  # RELION's progress, a line per iteration
    # the quick demo's runs converge: every run's median angular error under 10° against the truth
    # (issue 22), none flagged, and the sweep says so
    medians = [x for v in d["alignment"]["variants"] for x in v["median_angle_deg"]["values"]]
    assert len(medians) == 9 and max(medians) < 10.0, medians
    assert d["not_converged"] == [] and "NOT CONVERGED" not in out
    # the RELION runs sampled finer as the resolution allowed and turned local from 15°
    cmd = json.loads(next((tmp_path / "demo" / "sweep" / "runs").glob("*/rep1/result.json")).read_text())["command"]
    assert "--auto_ignore_angles" in cmd and cmd[cmd.index("--auto_local_healpix_order") + 1] == "2"
    # run again: every run is read back, nothing is refined twice, the same numbers
    again = demo()
    d2 = json.loads((tmp_path / "demo" / "sweep" / "sweep.json").read_text())
    assert d2["timings"]["engine_s"] == 0.0 and "already there: reused" in again.stdout
    assert [v["interpolated_resolutions_a"] for v in d2["variants"]] == [
        v["interpolated_resolutions_a"] for v in d["variants"]
    ]
