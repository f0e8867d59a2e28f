"""Bad values that used to pass (exit 0 with a wrong result) are refused with one sentence, exit 2,
naming the file or the flag, and every input left as it was."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryobox.io.mrc import write_mrc
from cryobox.io.star import write_star_blocks

CLI = [sys.executable, "-m", "cryobox"]


def run(*args, cwd):
    return subprocess.run(CLI + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)


def sha(folder: Path) -> dict:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def refused(proc, *words) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "cryobox: error:" in proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


def _particles(**change) -> dict:
    optics = {
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["g"],
        "rlnImagePixelSize": [1.06],
        "rlnImageSize": [64],
        "rlnImageDimensionality": [2],
        "rlnVoltage": [300.0],
        "rlnSphericalAberration": [2.7],
        "rlnAmplitudeContrast": [0.1],
    }
    parts = {
        "rlnImageName": [f"{i:06d}@s.mrcs" for i in (1, 2, 3)],
        "rlnDefocusU": [20000.0] * 3,
        "rlnDefocusV": [19000.0] * 3,
        "rlnDefocusAngle": [10.0] * 3,
        "rlnOpticsGroup": [1] * 3,
    }
    for k, v in change.items():
        (optics if k in optics else parts)[k] = v
    return {"optics": pd.DataFrame(optics), "particles": pd.DataFrame(parts)}


PARTICLE_CASES = {
    "nan defocus angle": ({"rlnDefocusAngle": [10.0, np.nan, 10.0]}, "defocus_angle_deg"),
    "infinite phase shift": ({"rlnPhaseShift": [0.0, np.inf, 0.0]}, "phase_shift_deg"),
    "amplitude contrast 1": ({"rlnAmplitudeContrast": [1.0]}, "amplitude_contrast"),
    "amplitude contrast negative": ({"rlnAmplitudeContrast": [-0.1]}, "amplitude_contrast"),
    "box 0": ({"rlnImageSize": [0]}, "box_px"),
    "nan B-factor": ({"rlnCtfBfactor": [0.0, 0.0, np.nan]}, "ctf_bfactor_a2"),
    "zero CTF scale": ({"rlnCtfScalefactor": [1.0, 0.0, 1.0]}, "ctf_scale"),
    "nan angle": ({"rlnAngleRot": [1.0, np.nan, 2.0]}, "angle_rot_deg"),
}


@pytest.mark.parametrize("case", list(PARTICLE_CASES))
def test_impossible_particle_values(tmp_path, case):
    change, column = PARTICLE_CASES[case]
    write_star_blocks(tmp_path / "p.star", _particles(**change))
    before = sha(tmp_path)
    for cmd in (["inspect", "p.star"], ["advise", "p.star", "--diameter", 150, "--resolution", 4]):
        refused(run(*cmd, cwd=tmp_path), "p.star", column, "row" if "rlnImageSize" not in change else column)
    assert sha(tmp_path) == before


@pytest.fixture
def maps(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("h1.mrc", "h2.mrc"):
        write_mrc(tmp_path / name, rng.standard_normal((24, 24, 24)).astype(np.float32), pixel_size_a=4.0)
    nan = rng.standard_normal((24, 24, 24)).astype(np.float32)
    nan[3, 4, 5] = np.nan
    write_mrc(tmp_path / "nan.mrc", nan, pixel_size_a=4.0)
    write_mrc(tmp_path / "zero.mrc", np.zeros((24, 24, 24), np.float32), pixel_size_a=4.0)
    write_mrc(tmp_path / "flat.mrc", np.full((24, 24, 24), 3.0, np.float32), pixel_size_a=4.0)
    return tmp_path


@pytest.mark.parametrize(
    "args,words",
    [
        (["fsc", "h1.mrc", "nan.mrc"], ["nan.mrc", "NaN"]),
        (["fsc", "zero.mrc", "h2.mrc"], ["constant"]),
        (["fsc", "h1.mrc", "flat.mrc"], ["constant"]),
        (["fsc", "h1.mrc", "h2.mrc", "--mask", "h1.mrc"], ["mask"]),
        (["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "m.mrc", "--randomise-at", 0], ["--randomise-at"]),
        (["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "m.mrc", "--randomise-at", 5], ["Nyquist"]),
        (["filter", "nan.mrc", "--lowpass", 10, "--out", "f.mrc"], ["nan.mrc", "NaN"]),
        (["filter", "h1.mrc", "--bfactor", -100000, "--out", "f.mrc"], ["--bfactor"]),
    ],
)
def test_impossible_maps_and_settings(maps, args, words):
    before = sha(maps)
    refused(run(*args, cwd=maps), *words)
    assert sha(maps) == before and not (maps / "f.mrc").exists()


def test_header_smaller_than_its_data_is_refused(tmp_path):
    write_mrc(tmp_path / "m.mrc", np.ones((8, 8, 8), np.float32), pixel_size_a=2.0)
    with open(tmp_path / "m.mrc", "ab") as fh:  # more data than the header says
        fh.write(np.ones(64, np.float32).tobytes())
    refused(run("filter", "m.mrc", "--lowpass", 6, "--out", "f.mrc", cwd=tmp_path), "m.mrc", "header")


def test_negative_background_radius_and_simulate_sizes(tmp_path):
    r = run(
        "simulate",
        "--out",
        "s",
        "--micrographs",
        1,
        "--size",
        "400x400",
        "--per-micrograph",
        3,
        "--pixel-size",
        6,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    refused(
        run(
            "extract",
            "s/micrographs.star",
            "--coords-suffix",
            "_pick.star",
            "--box",
            48,
            "--bg-radius",
            -5,
            "--out",
            "o",
            cwd=tmp_path,
        ),
        "--bg-radius",
    )
    refused(run("simulate", "--out", "s0", "--stack", "--n", 4, "--box", 0, "--pixel-size", 6, cwd=tmp_path), "--box")
    crowded = run(
        "simulate",
        "--out",
        "s2",
        "--micrographs",
        1,
        "--size",
        "300x300",
        "--per-micrograph",
        5000,
        "--pixel-size",
        6,
        "--json",
        cwd=tmp_path,
    )
    assert crowded.returncode == 0 and "note: placed" in crowded.stderr
    import json

    d = json.loads(crowded.stdout)
    assert d["n_particles"] < d["n_particles_asked"] == 5000 and d["notes"]


def test_tracebacks_that_are_now_one_sentence(tmp_path, maps):
    np.save(tmp_path / "empty.npy", np.zeros(0, dtype=[("uid", "u8"), ("ctf/df1_A", "f4"), ("ctf/df2_A", "f4")]))
    (tmp_path / "empty.npy").rename(tmp_path / "empty.cs")
    r = run("inspect", "empty.cs", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # zero rows: counted as zero, not a crash
    import json

    d = json.loads(r.stdout)
    assert 0 in (d["n_particles"], d["n_micrographs"])
    (tmp_path / "dup.star").write_text("data_particles\nloop_\n_rlnDefocusU #1\n_rlnDefocusU #2\n1 2\n")
    refused(run("inspect", "dup.star", cwd=tmp_path), "dup.star", "_rlnDefocusU", "twice")
    refused(run("advise", "--example", "--plot", "x.xyz", cwd=tmp_path), "--plot", ".png")
    assert not (tmp_path / "x.xyz").exists()
    refused(
        run(
            "ctf", "--box", 200000, "--pixel-size", 1, "--defocus-u", 20000, "--voltage", 300, "--cs", 2.7, cwd=tmp_path
        ),
        "GiB",
    )
    refused(run("resample", maps / "h1.mrc", "--to-pixel-size", 0.01, "--out", "r.mrc", cwd=tmp_path), "GiB")
    (tmp_path / "afile").write_text("x")
    refused(run("example", "--out", "afile/sub", cwd=tmp_path), "afile/sub")
    refused(run("simulate", "--out", "s9", "--micrographs", 0, cwd=tmp_path), "--micrographs")


def test_text_in_a_coordinate_column(tmp_path):
    r = run(
        "simulate",
        "--out",
        "s",
        "--micrographs",
        1,
        "--size",
        "400x400",
        "--per-micrograph",
        3,
        "--pixel-size",
        6,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    pick = sorted((tmp_path / "s" / "Micrographs").glob("*_pick.star"))[0]
    lines = pick.read_text().splitlines()
    first = next(i for i, ln in enumerate(lines) if ln[:1].isdigit())
    lines[first] = "abc " + lines[first].split(maxsplit=1)[1]
    pick.write_text("\n".join(lines) + "\n")
    refused(
        run("extract", "s/micrographs.star", "--coords-suffix", "_pick.star", "--box", 48, "--out", "o", cwd=tmp_path),
        pick.name,
        "rlnCoordinateX",
        "'abc'",
    )


def test_vague_messages_are_precise(tmp_path):
    write_mrc(tmp_path / "t.mrc", np.ones((16, 16, 16), np.float32), pixel_size_a=2.0)
    data = (tmp_path / "t.mrc").read_bytes()
    (tmp_path / "trunc.mrc").write_bytes(data[:-1000])
    (tmp_path / "rand.mrc").write_bytes(np.random.default_rng(1).bytes(5000))
    (tmp_path / "adir.mrc").mkdir()
    (tmp_path / "trunc.star").write_text(
        "data_optics\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n1 1.0\n\n"
        "data_particles\nloop_\n_rlnImageName #1\n_rlnDefocusU #2\n_rlnOpticsGroup #3\n000001@a.mrcs 10000 "
    )
    refused(
        run("filter", "trunc.mrc", "--lowpass", 8, "--out", "o.mrc", cwd=tmp_path),
        "16,408 bytes",
        "17,408",
        "cut short",
    )
    refused(run("filter", "rand.mrc", "--lowpass", 8, "--out", "o.mrc", cwd=tmp_path), "not an MRC file")
    refused(run("filter", "adir.mrc", "--lowpass", 8, "--out", "o.mrc", cwd=tmp_path), "is a folder")
    refused(run("inspect", "trunc.star", cwd=tmp_path), "trunc.star", "cut short")
    refused(run("fsc", "t.mrc", "t.mrc", "--pixel-size", 0, cwd=tmp_path), "--pixel-size must be a positive")


def test_image_number_zero_is_refused(tmp_path):
    blocks = _particles()
    blocks["particles"]["rlnImageName"] = ["000000@s.mrcs", "000001@s.mrcs", "000002@s.mrcs"]
    write_star_blocks(tmp_path / "p.star", blocks)
    refused(run("restack", "p.star", "--box", 32, "--out", "o", cwd=tmp_path), "p.star", "image_index", "000001@")
