"""Figures drawn in a forked child (report/drawing.py): the same bytes as drawn in-process, a
failed child falls back to in-process drawing, a child never waited for is reaped, and the child
writes no file (every output goes through the parent's ledger)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cryobox.report.drawing import ForkedFigures

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


def _result() -> dict:
    k = np.linspace(0, 0.5, 33)
    fsc = 1 / (1 + np.exp((k - 0.3) * 40))
    return {
        "global_resolution_a": 3.3,
        "directional": {
            "resolution_a": list(3.0 + 0.5 * np.random.default_rng(0).random(60)),
            "directions": [[np.cos(a), np.sin(a), 0.5] for a in np.linspace(0, 3, 60)],
            "n_directions": 60,
            "half_angle_deg": 20.0,
            "best_a": 3.0,
            "worst_a": 3.5,
            "cfar": 0.9,
        },
        "power": {
            "frequency_inv_a": list(k),
            "map_power": list(1e5 * np.exp(-20 * k) + 100),
            "noise_power": list(np.full(33, 100.0)),
            "fsc": list(fsc),
            "ssnr": list(2 * fsc / (1 - fsc + 1e-9)),
            "ice_rings": [{"spacing_a": 3.67}],
            "fsc_dips": [],
        },
        "marks": {"phase_randomisation_a": 6.0},
        "views": None,
    }


def _fresh(code: str, cwd) -> None:
    """Run ``code`` in a fresh interpreter: a test process may hold threads of earlier tests, and
    with other threads ForkedFigures does not fork (tested below)."""
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


_SETUP = f"""
import json, os, sys, threading
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_drawing import _result
from cryobox.report.drawing import ForkedFigures, render_png
assert threading.active_count() == 1


def assert_reaped(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    raise SystemExit("the child was not reaped")
"""


def test_the_child_draws_the_same_png_bytes_as_this_process(tmp_path):
    _fresh(
        _SETUP
        + """
from cryobox.report.plots_diagnose import diagnose_figures
d = _result()
with ForkedFigures("cryobox.report.plots_diagnose", "diagnose_figures") as drawer:
    assert drawer._pid is not None  # a child, forked
    pngs = drawer.draw(d)
assert pngs is not None and set(pngs) == {"directional.png", "power.png"}
assert pngs == render_png(diagnose_figures(d))  # drawn in the child or here: the same bytes
assert all(p.startswith(b"\\x89PNG") for p in pngs.values())
assert os.listdir(".") == []  # the child wrote no file (this folder is empty)
""",
        tmp_path,
    )


def test_a_child_that_fails_gives_none_and_leaves_no_process(tmp_path):
    _fresh(
        _SETUP
        + """
drawer = ForkedFigures("cryobox.report.plots_diagnose", "no_such_function")
pid = drawer._pid
assert pid is not None
with drawer:
    assert drawer.draw(_result()) is None
assert_reaped(pid)
""",
        tmp_path,
    )


def test_a_child_never_asked_to_draw_is_reaped_on_leaving(tmp_path):
    _fresh(
        _SETUP
        + """
try:
    with ForkedFigures("cryobox.report.plots_diagnose", "diagnose_figures") as drawer:
        pid = drawer._pid
        assert pid is not None
        raise KeyError("the work failed before any figure")
except KeyError:
    pass
assert_reaped(pid)
""",
        tmp_path,
    )


def test_no_child_in_a_process_with_threads():
    """A fork beside other threads can hang the child on a lock one of them held: no child then."""
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        with ForkedFigures("cryobox.report.plots_diagnose", "diagnose_figures") as drawer:
            assert drawer._pid is None and drawer.draw(_result()) is None
    finally:
        stop.set()
        t.join()


def test_diagnose_falls_back_to_drawing_itself_when_the_child_fails(tmp_path, monkeypatch):
    """The figures are written even when the child cannot draw (here: it is told a function
    that does not exist)."""
    import cryobox.jobs.diagnose as jd
    from cryobox.io.mrc import write_mrc

    rng = np.random.default_rng(1)
    n = 32
    x = np.indices((n, n, n)) - n // 2
    s = np.exp(-((np.sqrt((x**2).sum(0)) / 6) ** 2)).astype(np.float32)
    for h in (1, 2):
        write_mrc(tmp_path / f"h{h}.mrc", s + 0.05 * rng.standard_normal(s.shape).astype(np.float32), pixel_size_a=2.0)

    real = jd.ForkedFigures
    monkeypatch.setattr(jd, "ForkedFigures", lambda module, function: real(module, "no_such_function"))
    jd.run_diagnose(tmp_path / "h1.mrc", tmp_path / "h2.mrc", out=tmp_path / "D", n_directions=50)
    for name in ("directional.png", "power.png"):
        assert (tmp_path / "D" / name).read_bytes().startswith(b"\x89PNG")
    ledger = [json.loads(line)["name"] for line in (tmp_path / "D" / ".cryobox-written.jsonl").read_text().splitlines()]
    assert {"directional.png", "power.png"} <= set(ledger)  # written by the parent, so in its ledger


def test_diagnose_runs_in_a_fresh_process_with_its_figures(tmp_path):
    """Through the command line (the child forked from the CLI's process) the figures are there."""
    from cryobox.io.mrc import write_mrc

    rng = np.random.default_rng(2)
    s = rng.standard_normal((24, 24, 24)).astype(np.float32)
    for h in (1, 2):
        write_mrc(tmp_path / f"h{h}.mrc", s + 0.3 * rng.standard_normal(s.shape).astype(np.float32), pixel_size_a=2.0)
    r = subprocess.run(
        [sys.executable, "-m", "cryobox", "diagnose", "h1.mrc", "h2.mrc", "--out", "D", "--no-mask"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "D" / "power.png").read_bytes().startswith(b"\x89PNG")
    assert r.stdout.count("wrote") == 1  # the child printed nothing (its copy of the output buffer is dropped)
