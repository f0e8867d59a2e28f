"""The sweep at scale: runs side by side on this machine, or as SLURM batch jobs (RELION's queue
templates); re-attaching after an interrupted wait, failing jobs, --cancel; starting from a
consensus; alignment against the truth and between runs.

The SLURM tests need `sbatch` and a controller (CI starts a one-node SLURM: .ci/slurm-up); they
skip cleanly elsewhere, and under CI=true a missing SLURM is an error (conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import HAVE_SLURM, needs_relion
from cryobox.engines.launch import Job, LocalLauncher, RunCommand, SlurmLauncher, render_template
from cryobox.errors import InputError
from cryobox.io.mrc import read_mrc
from cryobox.io.particles import read_particles, write_star
from cryobox.jobs.runqueue import cancel_jobs, sweep_jobs
from cryobox.jobs.sweep import SweepSettings, run_sweep
from test_sweep import StandInEngine

needs_slurm = pytest.mark.skipif(not HAVE_SLURM, reason="no SLURM here (sbatch, and a controller squeue can reach)")
CLI = [sys.executable, "-m", "cryobox"]
TEMPLATE = """#!/bin/bash
#SBATCH --job-name=XXXnameXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --error=XXXerrfileXXX
# queue XXXqueueXXX, cores XXXcoresXXX, dedicated XXXdedicatedXXX, nodes XXXnodesXXX, extra 'XXXextra1XXX'
XXXcommandXXX
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cryobox.jobs.simulate import SimulationSettings, load_density, simulate_micrographs

    root = tmp_path_factory.mktemp("sched")
    density, _ = load_density(map_path=None, model_path=None, pixel_size_a=8.0, box_px=None)
    simulate_micrographs(
        root / "sim",
        density,
        n_micrographs=2,
        size_px=(512, 512),
        per_micrograph=40,
        settings=SimulationSettings(pixel_size_a=8.0, defocus_min_a=20000, defocus_max_a=35000, snr=0.5, seed=5),
    )
    return root / "sim"


def _settings(**kw):
    base = {"boxes_px": (36, 48), "particle_diameter_a": 240.0, "repeats": 2, "ini_high_a": 40.0}
    return SweepSettings(**{**base, **kw})


def _sweep(tiny, out, engine, launcher=None, **kw):
    table = read_particles(tiny / "particles.star")
    ref, px = read_mrc(tiny / "true_map.mrc")
    return run_sweep(
        table,
        kw.pop("settings", _settings()),
        reference=ref,
        reference_pixel_size_a=px,
        out=out,
        engine=engine,
        launcher=launcher,
        log=kw.pop("log", lambda s: None),
        plot=False,
        poll_s=kw.pop("poll_s", 0.2),
        **kw,
    )


# ----------------------------------------------------------------------------- templates


def test_the_template_gets_every_placeholder_filled():
    job = Job(
        "cryobox-S-box36-rep1",
        Path("/data/S/runs/box36/rep1"),
        RunCommand(("mpirun", "-n", "3"), ("relion_refine_mpi", "--i", "a b.star", "--j", "4"), ranks=3, threads=4),
    )
    text = render_template(TEMPLATE, job, queue="gpu", dedicated=8, extras=("--exclusive",))
    assert "--job-name=cryobox-S-box36-rep1" in text and "--ntasks=3" in text and "--cpus-per-task=4" in text
    assert "--output=/data/S/runs/box36/rep1/run.out" in text and "--error=/data/S/runs/box36/rep1/run.err" in text
    assert "queue gpu, cores 12, dedicated 8, nodes 2, extra '--exclusive'" in text
    # the command without its launcher (the template says mpirun), arguments quoted for the shell
    assert text.rstrip().endswith("relion_refine_mpi --i 'a b.star' --j 4") and "mpirun" not in text
    assert "XXX" not in text


def test_templates_without_a_command_or_with_unknown_placeholders_are_refused(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\n#SBATCH -n XXXmpinodesXXX\nmpirun relion_refine_mpi\n")
    with pytest.raises(InputError, match="XXXcommandXXX"):
        SlurmLauncher(template_path=bad)
    odd = tmp_path / "odd.sh"
    odd.write_text("#!/bin/bash\nXXXmemoryXXX\nmpirun XXXcommandXXX\n")
    with pytest.raises(InputError, match="XXXmemoryXXX"):
        SlurmLauncher(template_path=odd)
    r = subprocess.run(
        [*CLI, "sweep", "p.star", "--reference", "r.mrc", "--particle-diameter", "200", "--boxes", "64,96"]
        + ["--out", "S", "--scheduler", "slurm", "--submit-template", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "XXXcommandXXX" in r.stderr


def test_no_sbatch_or_no_controller_is_one_sentence_each(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    args = [*CLI, "sweep", "p.star", "--reference", "r.mrc", "--particle-diameter", "200", "--boxes", "64,96"]
    args += ["--out", "S", "--scheduler", "slurm"]
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "sbatch was not found on PATH" in r.stderr and "Traceback" not in r.stderr
    if HAVE_SLURM:
        conf = tmp_path / "slurm.conf"
        conf.write_text("ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort=1\nAuthType=auth/munge\n")
        env = {**os.environ, "SLURM_CONF": str(conf)}
        r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2 and "controller is not reachable" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- local


def test_local_runs_side_by_side_and_a_failing_run_does_not_stop_the_others(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    eng = StandInEngine(fail={2}, sleep=2.0)
    lines: list[str] = []
    d = _sweep(tiny, tmp_path / "S", eng, LocalLauncher(2), log=lines.append)
    jobs = [json.loads(p.read_text()) for p in sorted((tmp_path / "S" / "runs").glob("*/*/job.json"))]
    starts = sorted(j["submitted_at"] for j in jobs)
    assert starts[1] - starts[0] < 1.0  # two runs out at once
    # the repeats with seed 2 failed; the others finished and were judged
    assert {(f["variant"], f["repeat"]) for f in d["failed_runs"]} == {("box36", 2), ("box48", 2)}
    assert all("failed on purpose" in f["error"] and f["logs"] for f in d["failed_runs"])
    assert all(len(v["runs"]) == 1 for v in d["variants"])
    assert any("FAILED" in ln for ln in lines)
    # run again: the failed runs stay failed (not run again) unless retry_failed
    again = StandInEngine()
    d2 = _sweep(tiny, tmp_path / "S", again, LocalLauncher(2))
    assert again.calls == [] and len(d2["failed_runs"]) == 2
    retry = StandInEngine()
    d3 = _sweep(tiny, tmp_path / "S", retry, LocalLauncher(2), retry_failed=True)
    assert len(retry.calls) == 2 and not d3["failed_runs"] and all(len(v["runs"]) == 2 for v in d3["variants"])


def test_the_cli_says_when_local_runs_oversubscribe_the_cores(tiny, tmp_path):
    from conftest import HAVE_RELION

    if not HAVE_RELION:
        pytest.skip("needs relion_refine_mpi for the engine check")
    r = subprocess.run(
        [*CLI, "sweep", str(tiny / "particles.star"), "--reference", str(tiny / "true_map.mrc")]
        + ["--particle-diameter", "240", "--boxes", "36,48", "--out", "S", "--parallel-runs", "8", "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "oversubscribed" in r.stderr + r.stdout and "nothing was written" in r.stdout


# ---------------------------------------------------------------------- consensus, truth


def test_a_consensus_start_keeps_its_poses_and_half_sets(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cons = read_particles(tiny / "particles.star")
    cons.data["rlnRandomSubset"] = 1 + np.arange(len(cons.data)) % 2
    write_star(tmp_path / "consensus.star", cons)
    eng = StandInEngine()
    d = _sweep(
        tiny,
        tmp_path / "S",
        eng,
        settings=_settings(repeats=1, invert=True),
        consensus=read_particles(tmp_path / "consensus.star"),
        truth=read_particles(tiny / "particles.star"),
    )
    assert {(p.local_healpix_order, p.sigma_ang_deg) for p in eng.calls} == {(4, 3.0)}
    for star in (tmp_path / "S" / "data").glob("*/refine.star"):
        t = read_particles(star)
        truth = read_particles(tiny / "particles.star").data
        np.testing.assert_allclose(t.data["angle_rot_deg"], truth["angle_rot_deg"], atol=1e-6)
        assert list(t.data["rlnRandomSubset"]) == list(1 + np.arange(len(t.data)) % 2)
    # the stand-in perturbs the poses by 1° per angle and 0.5 Å per axis: the truth measures see it
    a = d["alignment"]
    assert a["truth_known"]
    for row in a["variants"]:
        assert 0.8 < row["median_angle_deg"]["mean"] < 3.0 and 0.3 < row["median_shift_a"]["mean"] < 1.0
    assert d["start"]["local_healpix_order"] == 4
    assert not any("darker" in n for n in d["notes"])  # inverted: white particles, nothing to say
    # the report shows the alignment next to the resolutions
    from cryobox.jobs.report import build_report

    build_report(tiny / "particles.star", out=tmp_path / "r.html", diameter_a=220, resolution_a=20, sweep=d)
    html = (tmp_path / "r.html").read_text()
    assert "how well each box found the particles" in html and "angular error" in html
    # a consensus without poses, or a truth of other particles, is refused before any run
    bare = read_particles(tiny / "particles.star")
    bare.data = bare.data.drop(columns=["angle_rot_deg", "angle_tilt_deg", "angle_psi_deg"])
    write_star(tmp_path / "bare.star", bare)
    with pytest.raises(InputError, match="no poses"):
        _sweep(tiny, tmp_path / "S2", StandInEngine(), consensus=read_particles(tmp_path / "bare.star"))
    other = read_particles(tiny / "particles.star")
    other.data["coord_x_px"] = other.data["coord_x_px"] + 7
    write_star(tmp_path / "other.star", other)
    with pytest.raises(InputError, match="are not in `truth`"):
        _sweep(tiny, tmp_path / "S3", StandInEngine(), truth=read_particles(tmp_path / "other.star"))
    halves = read_particles(tiny / "particles.star")
    write_star(tmp_path / "nohalves.star", halves)
    with pytest.raises(InputError, match="half-set labels"):
        _sweep(tiny, tmp_path / "S4", StandInEngine(), consensus=read_particles(tmp_path / "nohalves.star"))


def test_between_runs_the_same_particles_poses_are_compared(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _sweep(tiny, tmp_path / "S", StandInEngine(), settings=_settings(repeats=2))
    pairs = d["alignment"]["between_runs"]
    assert len(pairs) == 6  # 4 runs
    # simulated micrographs have dark particles; extracted without invert, the sweep says so
    assert any("darker than their background" in n and "`invert`" in n for n in d["notes"])
    # the stand-in's poses: zeros plus 1° per angle of seeded noise; runs with the same seed agree exactly
    same_seed = [p for p in pairs if p["a"].endswith("repeat 1") and p["b"].endswith("repeat 1")]
    assert same_seed and all(p["median_angle_deg"] < 1e-6 for p in same_seed)
    assert all(p["median_angle_deg"] > 0.5 for p in pairs if p["same_variant"])
    assert set(d["alignment"]["run_to_run"]) == {"box36", "box48"}


# ----------------------------------------------------------------------------- SLURM


def _squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    return set(out.split())


@needs_slurm
def test_slurm_sweep_reattaches_after_an_interrupted_wait_and_cancels_only_its_jobs(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.sh").write_text(TEMPLATE)
    launcher = SlurmLauncher(template_path=tmp_path / "t.sh")
    launcher.check()
    # Ctrl-C while the jobs are out: the wait stops, the jobs go on
    lines: list[str] = []

    def interrupt(rows):
        if any(r["job_id"] for r in rows):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _sweep(tiny, tmp_path / "S", StandInEngine(sleep=3.0), launcher, status=interrupt, log=lines.append)
    out_jobs = sweep_jobs(tmp_path / "S")
    assert len(out_jobs) == 4 and any("re-attach" in ln for ln in lines)
    script = (tmp_path / "S" / "runs" / "box36" / "rep1" / "run_submit.script").read_text()
    assert "standin_refine.py" in script and "XXX" not in script
    # the same sweep again: re-attached, nothing submitted twice, all collected
    eng = StandInEngine()
    d = _sweep(tiny, tmp_path / "S", eng, launcher)
    assert eng.calls == [] and d["scheduler"]["reattached"] == 4 and d["scheduler"]["submitted"] == 0
    assert all(len(v["runs"]) == 2 for v in d["variants"]) and not d["failed_runs"]
    # a failing job is reported with its error line, and the others finish
    d = _sweep(tiny, tmp_path / "F", StandInEngine(fail={1}), launcher)
    assert len(d["failed_runs"]) == 2 and all("failed on purpose" in f["error"] for f in d["failed_runs"])
    assert all(f["job_id"] for f in d["failed_runs"]) and all(len(v["runs"]) == 1 for v in d["variants"])
    # --cancel: this sweep's jobs go, a job of somebody else's stays
    other = subprocess.run(
        ["sbatch", "--parsable", "--wrap", "sleep 60"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with pytest.raises(KeyboardInterrupt):
        _sweep(tiny, tmp_path / "C", StandInEngine(sleep=60.0), launcher, status=interrupt)
    ids = {str(r["job_id"]) for r in sweep_jobs(tmp_path / "C")}
    assert ids and ids <= _squeue_ids()
    cancelled = cancel_jobs(tmp_path / "C", launcher)
    assert {str(r["job_id"]) for r in cancelled} == ids
    for _ in range(50):
        if not ids & _squeue_ids():
            break
        time.sleep(0.2)
    assert not ids & _squeue_ids() and other in _squeue_ids()
    subprocess.run(["scancel", other], check=True)
    assert sweep_jobs(tmp_path / "C") == []


@needs_slurm
@needs_relion
def test_the_tiny_relion_sweep_through_slurm_end_to_end(tiny, tmp_path):
    args = [*CLI, "sweep", str(tiny / "particles.star"), "--reference", str(tiny / "true_map.mrc")]
    args += ["--particle-diameter", "240", "--boxes", "36,48", "--repeats", "1", "--auto-iter-max", "2"]
    args += ["--ini-high", "40", "--out", "S", "--scheduler", "slurm", "--truth", str(tiny / "particles.star")]
    args += ["--truth-map", str(tiny / "true_map.mrc"), "--json"]
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert d["scheduler"]["scheduler"] == "slurm" and d["scheduler"]["submitted"] == 2
    assert all(len(v["runs"]) == 1 for v in d["variants"])
    for v in d["variants"]:
        run = v["runs"][0]
        assert np.isfinite(run["interpolated_resolution_a"])
    script = (tmp_path / "S" / "runs" / "box36" / "rep1" / "run_submit.script").read_text()
    assert "mpirun" in script and "relion_refine_mpi" in script and "--ntasks=3" in script
    job = json.loads((tmp_path / "S" / "runs" / "box36" / "rep1" / "job.json").read_text())
    assert job["scheduler"] == "slurm" and job["job_id"].isdigit()
    assert d["alignment"]["truth_known"]
    assert all("map_resolution_0.5_a" in row for row in d["alignment"]["variants"])
