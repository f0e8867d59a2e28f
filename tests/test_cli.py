import json
import subprocess
import sys

import mrcfile
import numpy as np
import pandas as pd
import pytest

from conftest import needs_relion, real_file, run_relion
from cryobox.io.particles import write_cs
from cryobox.io.star import write_star_blocks
from cryobox.jobs.example import EXAMPLE, example_particles

STATS = {"min", "p5", "median", "mean", "p95", "max"}


def test_version(cli):
    r = cli("--version")
    assert r.exit_code == 0 and r.output.startswith("cryobox ")


def test_advise_example_json(cli):
    r = cli("advise", "--example", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    for key in (
        "wavelength_a",
        "rosenthal_henderson_box_a",
        "aliasing_free_box_a",
        "recommended_refine_box_px",
        "recommended_extract_box_px",
        "candidates",
    ):
        assert key in out
    assert out["n_particles"] == EXAMPLE["n_particles"]
    assert out["wavelength_a"] == pytest.approx(0.019688, abs=1e-6)
    for c in out["candidates"]:
        assert set(c) >= {
            "box_px",
            "box_a",
            "aliasing_free_fraction",
            "ctf2_aliasing_free_fraction",
            "delocalisation_fraction",
            "edge_loss_fraction",
            "relative_cost_2d",
        }
        assert c["edge_loss_fraction"] is not None  # the example has coordinates and micrograph shapes
    refine = {c["box_px"]: c for c in out["candidates"]}[out["recommended_refine_box_px"]]
    assert refine["box_a"] >= 1.5 * 220 and refine["aliasing_free_fraction"] >= 0.99
    assert out["recommended_extract_box_px"] * 1.06 >= 0.99 * out["rosenthal_henderson_box_a"] - 2 * 1.06


def test_advise_table_and_plot(cli, tmp_path):
    r = cli("advise", "--example", "--plot", tmp_path / "advise.png")
    assert r.exit_code == 0, r.output
    assert "refine" in r.output and "recommendation" in r.output
    assert (tmp_path / "advise.png").stat().st_size > 10_000


def test_advise_from_flags_and_from_files_agree(cli, tmp_path):
    flags = json.loads(
        cli(
            "advise",
            "--pixel-size",
            "1.06",
            "--defocus-min",
            "18000",
            "--defocus-max",
            "30000",
            "--voltage",
            "300",
            "--cs",
            "2.7",
            "--diameter",
            "220",
            "--resolution",
            "3.7",
            "--json",
        ).output
    )
    assert flags["n_particles"] is None and flags["candidates"][0]["edge_loss_fraction"] is None
    assert flags["rosenthal_henderson_box_a"] == pytest.approx(
        220 + 2 * (0.01968762 * 30000 / 3.7 - 2.7e7 * 0.01968762**3 / 3.7**3), rel=1e-5
    )
    t = example_particles(n_particles=5000, n_micrographs=40)
    write_cs(tmp_path / "p.cs", t)
    files = json.loads(cli("advise", tmp_path / "p.cs", "--diameter", "220", "--resolution", "3.7", "--json").output)
    assert files["n_particles"] == 5000
    assert abs(files["recommended_refine_box_px"] - flags["recommended_refine_box_px"]) <= 24


def test_advise_star_uses_micrograph_size_flag(cli, tmp_path):
    from cryobox.io.particles import write_star

    write_star(tmp_path / "p.star", example_particles(n_particles=2000, n_micrographs=10))
    no_size = json.loads(
        cli("advise", tmp_path / "p.star", "--diameter", "220", "--resolution", "3.7", "--json").output
    )
    assert no_size["candidates"][0]["edge_loss_fraction"] is None
    sized = json.loads(
        cli(
            "advise",
            tmp_path / "p.star",
            "--diameter",
            "220",
            "--resolution",
            "3.7",
            "--micrograph-size",
            "5760x4092",
            "--json",
        ).output
    )
    assert sized["candidates"][0]["edge_loss_fraction"] > 0


def test_inspect_json_keys_and_values(cli, tmp_path):
    t = example_particles(n_particles=3000, n_micrographs=20)
    write_cs(tmp_path / "p.cs", t)
    r = cli("inspect", tmp_path / "p.cs", "--json", "--plot", tmp_path / "hist.png")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["n_particles"] == 3000 and out["n_micrographs"] == 20 and out["n_optics_groups"] == 1
    assert out["pixel_size_a"] == pytest.approx(1.06) and out["box_px"] == 576 and out["voltage_kv"] == 300
    assert out["cs_mm"] == pytest.approx(2.7) and out["amplitude_contrast"] == pytest.approx(0.1)
    for key in ("defocus_u_a", "defocus_v_a", "defocus_mean_a"):
        assert set(out[key]) == STATS
    du = t.data["defocus_u_a"].to_numpy()
    assert out["defocus_u_a"]["p95"] == pytest.approx(np.percentile(du, 95), rel=1e-6)
    assert out["defocus_mean_a"]["max"] <= 30000 + 1e-6 and out["defocus_mean_a"]["min"] >= 18000 - 1e-6
    assert (tmp_path / "hist.png").stat().st_size > 10_000


def test_inspect_real_files_table(cli):
    r = cli("inspect", real_file("relion5.star"), real_file("cryosparc_P12_J24_001_particles.cs"))
    assert r.exit_code == 0, r.output
    assert "17" in r.output and "2,019" in r.output


@needs_relion
@pytest.mark.parametrize("box", [64, 65])
def test_ctf_mrc_equals_relion(cli, tmp_path, box):
    args = [
        "--box",
        box,
        "--pixel-size",
        1.2,
        "--defocus-u",
        21000,
        "--defocus-v",
        19500,
        "--defocus-angle",
        40,
        "--voltage",
        200,
        "--cs",
        2.0,
        "--amp-contrast",
        0.07,
        "--phase-shift",
        20,
    ]
    r = cli("ctf", *args, "--mrc", tmp_path / "ours.mrc", "--out", tmp_path / "ctf.png", "--resolution", 4)
    assert r.exit_code == 0, r.output
    run_relion(
        [
            "relion_ctf_toolbox",
            "--simulate",
            "relion.mrc",
            "--angpix",
            "1.2",
            "--box",
            str(box),
            "--kV",
            "200",
            "--Cs",
            "2.0",
            "--Q0",
            "0.07",
            "--defU",
            "21000",
            "--defV",
            "19500",
            "--defAng",
            "40",
            "--phase_shift",
            "20",
        ],
        cwd=tmp_path,
    )
    with mrcfile.open(tmp_path / "ours.mrc") as a, mrcfile.open(tmp_path / "relion.mrc", permissive=True) as b:
        assert a.data.shape == b.data.shape == (box, box)
        assert np.abs(a.data - b.data).max() < 1e-4
        assert a.voxel_size.x == pytest.approx(1.2)
    assert (tmp_path / "ctf.png").stat().st_size > 10_000


def test_ctf_from_file_json(cli, tmp_path):
    write_cs(tmp_path / "p.cs", example_particles(n_particles=2000, n_micrographs=10))
    out = json.loads(
        cli("ctf", "--from", tmp_path / "p.cs", "--percentile", 95, "--box", 280, "--resolution", 3.7, "--json").output
    )
    assert out["box_px"] == 280 and out["pixel_size_a"] == pytest.approx(1.06)
    # at ~2.9 µm a 280 px box (297 Å) aliases before 3.7 Å is reached... or just after it
    assert out["first_aliased_resolution_a"] == pytest.approx(3.8, abs=0.2)
    ctf2 = json.loads(cli("ctf", "--from", tmp_path / "p.cs", "--box", 280, "--ctf2", "--json").output)
    assert ctf2["first_aliased_resolution_a"] > out["first_aliased_resolution_a"]


def test_example_command_writes_both_formats(cli, tmp_path):
    r = cli("example", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    a = json.loads(cli("inspect", tmp_path / "example_particles.star", "--json").output)
    b = json.loads(cli("inspect", tmp_path / "example_particles.cs", "--json").output)
    assert a["n_particles"] == b["n_particles"] == EXAMPLE["n_particles"]
    assert a["defocus_mean_a"]["median"] == pytest.approx(b["defocus_mean_a"]["median"], rel=1e-6)


# ---------------------------------------------------------------------------------- bad input


def _star_without_ctf(path):
    write_star_blocks(
        path,
        {
            "particles": pd.DataFrame(
                {"rlnImageName": ["000001@a.mrcs"], "rlnCoordinateX": [1.0], "rlnCoordinateY": [1.0]}
            ),
            "optics": pd.DataFrame(
                {
                    "rlnOpticsGroup": [1],
                    "rlnImagePixelSize": [1.0],
                    "rlnVoltage": [300.0],
                    "rlnSphericalAberration": [2.7],
                    "rlnAmplitudeContrast": [0.1],
                }
            ),
        },
    )


def _write_bad(kind, tmp_path):
    p = tmp_path / "bad"
    if kind == "missing-ctf":
        p = p.with_suffix(".star")
        _star_without_ctf(p)
    elif kind in ("nan-defocus", "negative-defocus", "zero-pixel"):
        p = p.with_suffix(".star")
        block = pd.DataFrame(
            {
                "rlnImageName": ["000001@a.mrcs"] * 2,
                "rlnDefocusU": [1e4, 1e4],
                "rlnDefocusV": [1e4, 1e4],
                "rlnDefocusAngle": [0.0, 0.0],
                "rlnOpticsGroup": [1, 1],
            }
        )
        if kind == "nan-defocus":
            block.loc[1, "rlnDefocusU"] = np.nan
        if kind == "negative-defocus":
            block.loc[1, "rlnDefocusV"] = -5.0
        optics = pd.DataFrame(
            {
                "rlnOpticsGroup": [1],
                "rlnImagePixelSize": [0.0 if kind == "zero-pixel" else 1.0],
                "rlnVoltage": [300.0],
                "rlnSphericalAberration": [2.7],
                "rlnAmplitudeContrast": [0.1],
            }
        )
        write_star_blocks(p, {"optics": optics, "particles": block})
    elif kind == "truncated-cs":
        p = p.with_suffix(".cs")
        write_cs(p, example_particles(n_particles=100, n_micrographs=2))
        p.write_bytes(p.read_bytes()[:700])
    elif kind == "not-numpy-cs":
        p = p.with_suffix(".cs")
        p.write_text("this is not a cryoSPARC file\n")
    elif kind == "no-particle-block":
        p = p.with_suffix(".star")
        write_star_blocks(
            p,
            {
                "optics": pd.DataFrame({"rlnOpticsGroup": [1], "rlnVoltage": [300.0]}),
                "model_general": pd.DataFrame({"rlnFoo": [1]}),
            },
        )
    elif kind == "unknown-type":
        p = p.with_suffix(".txt")
        p.write_text("1 2 3\n")
    elif kind == "missing-file":
        p = p.with_suffix(".star")
    return p


BAD = [
    "missing-ctf",
    "nan-defocus",
    "negative-defocus",
    "zero-pixel",
    "truncated-cs",
    "not-numpy-cs",
    "no-particle-block",
    "unknown-type",
    "missing-file",
]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_exits_2_with_one_sentence(tmp_path, kind):
    path = _write_bad(kind, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "cryobox", "advise", str(path), "--diameter", "200", "--resolution", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.startswith("cryobox: error:")
    assert str(path.name) in err.replace("\n", "")
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # one sentence, wrapped at most to a few lines


def test_missing_required_numbers_exit_2(tmp_path):
    write_cs(tmp_path / "p.cs", example_particles(n_particles=100, n_micrographs=2))
    for args in (["--diameter", "200"], ["--resolution", "4"]):
        proc = subprocess.run(
            [sys.executable, "-m", "cryobox", "advise", str(tmp_path / "p.cs"), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2 and "required" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "cryobox", "inspect", str(_write_bad("truncated-cs", tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "cryobox", "ctf", "--box", "64"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "--pixel-size" in proc.stderr


def test_flag_words_rule_and_exceptions_name_real_flags():
    """A library message names parameters (`box_px`); the CLI shows the flag that sets each: by
    rule (unit suffix dropped, dashes) when the app has that flag, else from the exceptions table,
    every one of which is a flag some command really has."""
    from cryobox.cli.common import PARAMETER_FLAGS, app_flags, flag_words

    flags = app_flags()
    assert {"--box", "--pixel-size", "--premultiply-from", "--ini-high", "--voltage"} <= flags
    for name, flag in PARAMETER_FLAGS.items():
        assert flag.split()[0] in flags, name
    text = flag_words("`box_px`, `pixel_size_a`, `defocus_min_a`, `n_particles`, `no_such_thing`")
    assert text == "--box, --pixel-size, --defocus-min, --n, `no_such_thing`"
    assert flag_words("`box_px`", {"box_px": "--box-size"}) == "--box-size"
