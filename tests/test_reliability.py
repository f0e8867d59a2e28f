"""Data safety: one run per output folder, outputs of one set of settings, inputs never
overwritten, leftovers of killed runs removed, SIGTERM stops the workers, the user's umask."""

from __future__ import annotations

import hashlib
import json
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

from cryobox.io import ledger
from cryobox.io.ledger import LEDGER
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
        if p.is_file() and p.name != LEDGER  # the ledger holds inodes and times: state, not an output
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
    # (one a killed run left, as io.atomic names it in the ledger before filling it)
    (sim / "o" / "Particles" / ".mic0000.mrcs.abc.part").parent.mkdir(parents=True, exist_ok=True)
    (sim / "o" / "Particles" / ".mic0000.mrcs.abc.part").write_bytes(b"\0" * 100)
    ledger.record_pending(sim / "o" / "Particles" / ".mic0000.mrcs.abc.part")
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


def test_a_full_disk_names_the_output_not_the_input(sim, tmp_path):
    """A file-size limit (as ``ulimit -f``; a full disk or quota fails the same way) stops
    extract, restack, fsc and filter with one sentence naming the output being written."""
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # bytes: the STARs fit, no stack does

    run("extract", "sim/micrographs.star", "--coords-suffix", "_pick.star", "--box", 48, "--out", "src", cwd=sim)
    rng = np.random.default_rng(1)
    for h in (1, 2):
        write_mrc(tmp_path / f"h{h}.mrc", rng.standard_normal((40, 40, 40)).astype(np.float32), pixel_size_a=4.0)
    cases = [
        (sim, ["extract", "sim/micrographs.star", "--coords-suffix", "_pick.star", "--box", 48, "--out", "full_x"]),
        (sim, ["restack", "src/particles.star", "--box", 40, "--out", "full_r"]),
        (tmp_path, ["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "mask.mrc"]),
        (tmp_path, ["filter", "h1.mrc", "--lowpass", 10, "--out", "low.mrc"]),
    ]
    for cwd, args in cases:
        before = digest(sim / "sim")
        proc = subprocess.run(
            CLI + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, preexec_fn=limited
        )
        one_sentence(proc)
        assert "cannot be written" in proc.stderr and "ulimit -f" in proc.stderr, proc.stderr
        assert ".mrc" in proc.stderr.split("cannot be written")[0]  # the output named first
        assert "Micrographs" not in proc.stderr  # never the input micrograph
        assert digest(sim / "sim") == before
        out = cwd / args[args.index("--out") + 1] if "--out" in args else None
        if out is not None and out.is_dir():
            assert not (out / "particles.star").exists()
            assert not list(out.rglob("*.part"))  # no half-written file left behind


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


# ------------------------------------------------------------------ interruptions, every signal


def _outputs(folder: Path) -> dict:
    """The outputs' bytes (the lock and the run record aside)."""
    return {k: v for k, v in digest(folder).items() if not k.endswith((".cryobox.lock", ".cryobox-run.json"))}


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """Micrographs big enough that extraction (premultiplied from 384 px) and restacking take
    seconds, so a signal lands mid-run; and the uninterrupted outputs to compare with."""
    root = tmp_path_factory.mktemp("interrupt")
    run(
        "simulate",
        "--out",
        "sim",
        "--micrographs",
        4,
        "--size",
        "1536x1536",
        "--per-micrograph",
        100,
        "--pixel-size",
        1.5,
        cwd=root,
    )
    # every run below works in its own folder next to sim/ and writes to o/, so that the paths
    # inside the STAR and .cs files are the same and the outputs can be compared byte for byte
    extract = ["extract", "../sim/micrographs.star", "--coords-suffix", "_pick.star", "--box", 192]
    extract += ["--premultiply-box", 384, "--jobs", 2]
    restack = ["restack", "../src/o/particles.star", "--box", 160, "--premultiply", "--jobs", 2]
    for name in ("src", "ref_extract", "ref_restack"):
        (root / name).mkdir()
    run(*extract[:5], 320, "--out", "o", cwd=root / "src")
    run(*extract, "--out", "o", cwd=root / "ref_extract")
    run(*restack, "--out", "o", cwd=root / "ref_restack")
    return root, {
        "extract": (extract, _outputs(root / "ref_extract" / "o")),
        "restack": (restack, _outputs(root / "ref_restack" / "o")),
    }


def _interrupt(args, cwd, sig, first_output: Path):
    """Start a run, send ``sig`` once its first stack is being written, wait; returns the workers seen."""
    proc = subprocess.Popen(
        CLI + [str(a) for a in args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # a shell that starts the suite in the background ignores SIGINT, and children inherit that:
        # give the run the default, as a terminal's Ctrl-C finds it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    parent = psutil.Process(proc.pid)
    workers: list = []
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        try:
            workers = parent.children(recursive=True) or workers
        except psutil.NoSuchProcess:
            break
        if list(first_output.rglob("*.part")) or list(first_output.rglob("*.mrcs")):
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    proc.err_text = err.decode(errors="replace")
    return proc, workers


@pytest.mark.parametrize("command", ["extract", "restack"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_run_leaves_no_workers_and_a_rerun_is_byte_identical(slow, command, sig):
    root, cases = slow
    args, expected = cases[command]
    cwd = root / f"{command}_{sig.name}"
    cwd.mkdir()
    out = cwd / "o"
    proc, workers = _interrupt([*args, "--out", "o"], cwd, sig, out)
    # the signal landed mid-run (the first stack was being written): Ctrl-C and SIGTERM exit 130
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), (
        proc.returncode,
        proc.err_text[-2000:],
    )
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"workers still running after {sig.name}: {[p.pid for p in alive]}"
    assert not (out / "particles.star").exists()  # no STAR until every stack it names is complete
    run(*args, "--out", "o", cwd=cwd)
    assert not list(out.rglob("*.part"))
    assert _outputs(out) == expected


def test_a_restack_killed_during_a_rerun_with_other_settings_never_mixes_them(slow):
    root, cases = slow
    args, _ = cases["restack"]
    cwd = root / "restack_mixed"
    cwd.mkdir()
    out = cwd / "o"
    plain = [a for a in args if a != "--premultiply"]
    run(*plain, "--out", "o", cwd=cwd)
    _interrupt([*args, "--out", "o"], cwd, signal.SIGKILL, out / "Particles_never")
    star = out / "particles.star"
    if star.exists():  # then it is the complete output of one set of settings
        t = read_particles(star)
        flags = set(t.data["ctf_premultiplied"].astype(bool)) if "ctf_premultiplied" in t.data else {False}
        assert len(flags) == 1
        for path, group in t.data.groupby(t.data["image_path"].astype(str)):
            with mrcfile.open(cwd / path) as m:
                assert m.data.shape[0] > int(group["image_index"].max())
    run(*args, "--out", "o", cwd=cwd)
    assert _outputs(out) == cases["restack"][1]


def test_judge_takes_the_folder_lock_too(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a1", "a2", "b1", "b2"):
        write_mrc(tmp_path / f"{name}.mrc", rng.standard_normal((24, 24, 24)).astype(np.float32), pixel_size_a=4.0)
    args = ["judge", "a=a1.mrc:a2.mrc", "b=b1.mrc:b2.mrc", "--no-mask", "--out", "J"]
    with OutputFolder(tmp_path / "J", job="judge", settings={}):
        r = run(*args, cwd=tmp_path, check=False)
    one_sentence(r)
    assert f"pid {os.getpid()}" in r.stderr
    run(*args, cwd=tmp_path)
    assert (tmp_path / "J" / "judge.json").exists()


# ------------------------------------------------------------------ reconstruct, simulate, diagnose

SIM = ["simulate", "--stack", "--n", 600, "--box", 96, "--pixel-size", 2.0]
# (command whose run is killed, the same command with other settings run before it)
KILLED = {
    "simulate": (SIM + ["--seed", 3, "--out", "o"], SIM + ["--seed", 4, "--out", "o"]),
    "reconstruct": (
        ["reconstruct", "../st/particles.star", "--no-ctf", "--out", "o"],
        ["reconstruct", "../st/particles.star", "--out", "o"],
    ),
    "diagnose": (
        ["diagnose", "../rec/half1_unfil.mrc", "../rec/half2_unfil.mrc", "--cone-angle", 30, "--out", "o"],
        ["diagnose", "../rec/half1_unfil.mrc", "../rec/half2_unfil.mrc", "--out", "o"],
    ),
}


def _comparable(folder: Path, command: str) -> dict:
    out = _outputs(folder)
    if command == "diagnose" and "diagnose.json" in out:  # the timings differ from run to run
        d = json.loads((folder / "diagnose.json").read_text())
        d.pop("timings", None)
        out["diagnose.json"] = json.dumps(d, sort_keys=True)
    return out


@pytest.fixture(scope="module")
def maps_for_kills(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    run(*SIM, "--out", "st", cwd=root)
    run("reconstruct", "st/particles.star", "--out", "rec", cwd=root)
    return root


@pytest.mark.parametrize("command", sorted(KILLED))
def test_a_killed_rerun_with_other_settings_never_looks_current_and_a_rerun_is_byte_identical(maps_for_kills, command):
    """The issue's case: a re-run with other settings (`--no-ctf`), killed, must not leave the
    earlier run's outputs looking like its own; run again, its outputs are byte-identical to an
    uninterrupted run's."""
    root = maps_for_kills
    args, other = KILLED[command]
    ref = root / f"ref_{command}"
    ref.mkdir()
    run(*args, cwd=ref)
    expected = _comparable(ref / "o", command)
    cwd = root / f"kill_{command}"
    cwd.mkdir()
    run(*other, cwd=cwd)
    old = _comparable(cwd / "o", command)
    record = cwd / "o" / ".cryobox-run.json"
    before = record.read_text()
    proc = subprocess.Popen(CLI + [str(a) for a in args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while proc.poll() is None and record.read_text() == before and time.time() - t0 < 60:
        time.sleep(0.01)  # killed once the run has taken the folder for its settings
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    now = _comparable(cwd / "o", command)
    for name, value in now.items():  # whatever is there is this run's: the other settings' outputs are gone
        assert value == expected.get(name) or value != old.get(name), f"{name} of the other settings looks current"
    run(*args, cwd=cwd)
    assert _comparable(cwd / "o", command) == expected
