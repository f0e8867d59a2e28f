"""Data safety: one run per output folder, outputs of one set of settings, inputs never
overwritten, leftovers of killed runs removed, SIGTERM stops the workers, the user's umask."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import psutil
import pytest

from cryobox.io.mrc import write_mrc
from cryobox.io.particles import read_particles
from cryobox.jobs.outputs import OutputFolder

CLI = [sys.executable, "-m", "cryobox"]


def run(*args, cwd, check=True):
    proc = subprocess.run(CLI + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def digest(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_sentence(proc) -> None:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cryobox: error:" in proc.stderr


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    run(
        "simulate",
        "--out",
        "sim",
        "--micrographs",
        3,
        "--size",
        "700x700",
        "--per-micrograph",
        12,
        "--pixel-size",
        5.0,
        cwd=root,
    )
    return root


def test_a_second_run_into_a_busy_folder_names_the_holder(sim):
    with OutputFolder(sim / "busy", job="extract", settings={"a": 1}):
        r = run(
            "extract",
            "sim/micrographs.star",
            "--coords-suffix",
            "_pick.star",
            "--box",
            48,
            "--out",
            "busy",
            cwd=sim,
            check=False,
        )
    one_sentence(r)
    assert f"pid {os.getpid()}" in r.stderr and "another cryobox run" in r.stderr
    run("extract", "sim/micrographs.star", "--coords-suffix", "_pick.star", "--box", 48, "--out", "busy", cwd=sim)


def test_other_settings_never_leave_a_star_pointing_at_old_stacks(sim):
    args = ["extract", "sim/micrographs.star", "--coords-suffix", "_pick.star", "--box", 48, "--invert", "--out", "o"]
    run(*args, cwd=sim)
    assert (sim / "o" / "particles.star").exists()
    # a re-run with other settings, killed mid-way
    proc = subprocess.Popen(
        CLI + [str(a) for a in args] + ["--premultiply-box", "96", "--jobs", "1"], cwd=sim, stderr=subprocess.PIPE
    )
    first = (sim / "o" / ".cryobox-run.json").read_text()
    t0 = time.time()
    while time.time() - t0 < 60 and (sim / "o" / ".cryobox-run.json").read_text() == first and proc.poll() is None:
        time.sleep(0.01)  # until the new run has taken the folder
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    star = sim / "o" / "particles.star"
    if star.exists():  # the killed run got to the end: then it is its own, premultiplied, consistent STAR
        t = read_particles(star)
        assert bool(t.data["ctf_premultiplied"].all())
    # a killed run's temporary files are gone after the next run, which gives the first settings back
    (sim / "o" / "Particles" / ".mic0000.mrcs.abc.part").parent.mkdir(parents=True, exist_ok=True)
    (sim / "o" / "Particles" / ".mic0000.mrcs.abc.part").write_bytes(b"\0" * 100)
    run(*args, cwd=sim)
    assert not list((sim / "o").rglob("*.part"))
    t = read_particles(sim / "o" / "particles.star")
    assert not bool(t.data["ctf_premultiplied"].any())
    for path, group in t.data.groupby(t.data["image_path"].astype(str)):
        with mrcfile.open(sim / path, permissive=True) as m:
            assert m.data.shape[0] == len(group) and int(group["image_index"].max()) < m.data.shape[0]


def test_outputs_never_replace_inputs(sim, tmp_path):
    # restack into the folder of its own input
    run("extract", "sim/micrographs.star", "--coords-suffix", "_pick.star", "--box", 48, "--out", "inp", cwd=sim)
    before = digest(sim / "inp")
    r = run("restack", "inp/particles.star", "--box", 40, "--out", "inp", cwd=sim, check=False)
    one_sentence(r)
    assert "is an input" in r.stderr and digest(sim / "inp") == before
    # fsc --mask-out onto a half map
    rng = np.random.default_rng(0)
    for h in (1, 2):
        write_mrc(tmp_path / f"h{h}.mrc", rng.standard_normal((24, 24, 24)).astype(np.float32), pixel_size_a=4.0)
    half = (tmp_path / "h1.mrc").read_bytes()
    r = run("fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "h1.mrc", cwd=tmp_path, check=False)
    one_sentence(r)
    assert "--mask-out" not in r.stderr or "h1.mrc" in r.stderr
    assert (tmp_path / "h1.mrc").read_bytes() == half
    # filter and resample onto their own input
    for cmd in (
        ["filter", "h2.mrc", "--lowpass", 10, "--out", "h2.mrc"],
        ["resample", "h2.mrc", "--box", 16, "--out", "h2.mrc"],
    ):
        r = run(*cmd, cwd=tmp_path, check=False)
        one_sentence(r)


def test_paths_with_spaces_are_refused_before_any_work(sim):
    r = run(
        "extract",
        "sim/micrographs.star",
        "--coords-suffix",
        "_pick.star",
        "--box",
        48,
        "--out",
        "my run",
        cwd=sim,
        check=False,
    )
    one_sentence(r)
    assert "space" in r.stderr and not (sim / "my run" / "Particles").exists()


def test_sigterm_stops_the_workers_and_a_rerun_resumes(tmp_path):
    run(
        "simulate",
        "--out",
        "big",
        "--micrographs",
        6,
        "--size",
        "2048x2048",
        "--per-micrograph",
        150,
        "--pixel-size",
        1.5,
        cwd=tmp_path,
    )
    args = [
        "extract",
        "big/micrographs.star",
        "--coords-suffix",
        "_pick.star",
        "--box",
        256,
        "--premultiply-box",
        512,
        "--out",
        "o",
        "--jobs",
        2,
    ]
    proc = subprocess.Popen(CLI + [str(a) for a in args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    workers = []
    t0 = time.time()
    while time.time() - t0 < 60 and len(workers) < 2 and proc.poll() is None:
        workers = parent.children(recursive=True)
        time.sleep(0.05)
    assert workers, "the extraction ended before its workers could be seen"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers still running after SIGTERM: {[p.pid for p in alive]}"
    assert not (tmp_path / "o" / "particles.star").exists()
    run(*args, cwd=tmp_path)
    t = read_particles(tmp_path / "o" / "particles.star")
    assert len(t) == 6 * 150 or len(t) > 0
