"""The bad-input corpus, third round: readers that assumed shapes, values outside any instrument,
inputs that were accepted with a wrong result, paths a STAR file cannot hold, messages that misled.

Every case runs in-process as tests/test_corpus.py runs its own (the same checker): exit status 2,
one sentence naming the file or flag and the field, no traceback, every input byte-identical,
nothing written. Cases that must give a correct result instead are at the end.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import mrcfile
import numpy as np
import pytest
from tests.test_corpus import BOX, PX, _check_case, _folders, _good_particles, _mrc_bytes, build_folder, digest
from typer.testing import CliRunner

from cryobox.cli.main import app

CS_BASE = [
    ("uid", "u8"),
    ("blob/path", "S16"),
    ("blob/idx", "u4"),
    ("blob/shape", "u4", (2,)),
    ("blob/psize_A", "f4"),
    ("ctf/df1_A", "f4"),
    ("ctf/df2_A", "f4"),
    ("ctf/df_angle_rad", "f4"),
    ("ctf/accel_kv", "f4"),
    ("ctf/cs_mm", "f4"),
    ("ctf/amp_contrast", "f4"),
]


def _cs(path, extra=(), shape=3, path_type=None):
    fields = list(CS_BASE) + list(extra)
    if path_type is not None:
        fields[1] = ("blob/path", path_type)
    a = np.zeros(shape, dtype=fields)
    for k, v in (
        ("blob/psize_A", PX),
        ("ctf/df1_A", 2e4),
        ("ctf/df2_A", 2e4),
        ("ctf/accel_kv", 300),
        ("ctf/cs_mm", 2.7),
    ):
        a[k] = v
    a["blob/shape"] = BOX
    with open(path, "wb") as fh:
        np.save(fh, a, allow_pickle=path_type == "O")


def _star_text(root, name, **change):
    from cryobox.io.star import write_star_blocks

    write_star_blocks(root / name, _good_particles(**change))


def build_round3(root):
    build_folder(root)
    rng = np.random.default_rng(3)
    # .cs layouts cryoSPARC never writes
    _cs(root / "cx_only.cs", [("location/center_x_frac", "f4"), ("location/micrograph_shape", "u4", (2,))])
    _cs(root / "twod.cs", shape=(2, 3))
    _cs(root / "zerod.cs", shape=())
    _cs(root / "pose2.cs", [("alignments3D/pose", "f4", (2,))])
    _cs(root / "shift3.cs", [("alignments3D/shift", "f4", (3,)), ("alignments3D/pose", "f4", (3,))])
    _cs(root / "objpath.cs", path_type="O")
    # STAR files that parse but do not say one thing
    text = (root / "good.star").read_text()
    head, parts = text.split("data_particles", 1)
    (root / "two_blocks.star").write_text(text + "\ndata_particles" + parts)
    opt_row = next(ln for ln in head.splitlines() if ln.strip().startswith("1 "))
    (root / "dup_optics.star").write_text(text.replace(opt_row, opt_row + "\n" + opt_row, 1))
    (root / "empty_optics.star").write_text(text.replace(opt_row + "\n", "", 1))
    _star_text(root, "origin_x_only.star", _drop=("rlnOriginYAngst",))
    _star_text(
        root, "fractional_index.star", rlnImageName=["2.5@stack.mrcs"] + [f"{i:06d}@stack.mrcs" for i in (2, 3, 4)]
    )
    _star_text(root, "kv_tiny.star", rlnVoltage=[0.3])
    _star_text(root, "kv_huge.star", rlnVoltage=[3000.0])
    _star_text(root, "cs_huge.star", rlnSphericalAberration=[2700.0])
    _star_text(root, "defocus_um.star", rlnDefocusU=[2.1, 2.5, 3.0, 2.2], rlnDefocusV=[2.0, 2.4, 2.9, 2.1])
    relion30 = (
        "data_\nloop_\n_rlnImageName\n_rlnDefocusU\n_rlnDefocusV\n_rlnDefocusAngle\n_rlnVoltage\n"
        "_rlnSphericalAberration\n_rlnAmplitudeContrast\n_rlnDetectorPixelSize\n_rlnMagnification\n"
    )
    (root / "r30_dps_text.star").write_text(relion30 + "1@stack.mrcs 20000 20000 0 300 2.7 0.1 abc 50000\n")
    (root / "r30_origin_x.star").write_text(
        relion30 + "_rlnOriginX\n1@stack.mrcs 20000 20000 0 300 2.7 0.1 5.0 12500 1.0\n"
    )
    # maps accepted before with a wrong result
    half = rng.standard_normal((BOX, BOX, BOX)).astype(np.float32)
    with mrcfile.new(root / "aniso.mrc", overwrite=True) as m:
        m.set_data(half)
        m.voxel_size = (PX, PX, 1.3 * PX)
    with mrcfile.new(root / "complex.mrc", overwrite=True) as m:
        m.set_data(half.astype(np.complex64))
        m.voxel_size = PX
    raw = bytearray(_mrc_bytes(half))
    struct.pack_into("<i", raw, 92, -80)
    (root / "nsymbt_negative.mrc").write_bytes(bytes(raw))
    raw = bytearray(_mrc_bytes(half))
    struct.pack_into("<3i", raw, 64, 1, 1, 3)
    (root / "axes_bad.mrc").write_bytes(bytes(raw))
    with mrcfile.new(root / "map2d.mrc", overwrite=True) as m:
        m.set_data(half[0])
        m.voxel_size = PX
    (root / "h1_copy.mrc").write_bytes((root / "h1.mrc").read_bytes())
    for name in ("h3.mrc", "h4.mrc"):
        mrcfile.new(root / name, data=half + rng.standard_normal(half.shape).astype(np.float32), overwrite=True).close()
        with mrcfile.open(root / name, "r+") as m:
            m.voxel_size = PX
    os.symlink(root / "h1.mrc", root / "h1_link.mrc")
    # FSC files no program writes
    good = json.loads((root / "fsc_seed.json").read_text())
    for name, change in (
        ("fsc_nulls.json", lambda d: d["curves"].update(fsc_unmasked=[None] * len(d["curves"]["fsc_unmasked"]))),
        ("fsc_box0.json", lambda d: d.update(box_px=0)),
        ("fsc_lengths.json", lambda d: d["curves"].update(fsc_unmasked=d["curves"]["fsc_unmasked"][:-3])),
        ("fsc_not_object.json", None),
    ):
        d = json.loads(json.dumps(good))
        if change is None:
            (root / name).write_text("[1, 2, 3]")
            continue
        change(d)
        d["curves"].pop("fsc_corrected", None)
        (root / name).write_text(json.dumps(d))
    rows = "\n".join(
        f"{i} {i / (BOX * PX):.5f} {(BOX * PX / i if i else 999):.3f} {max(0.0, 1 - i / 10):.3f}" for i in range(17)
    )
    pp = "data_fsc\nloop_\n_rlnSpectralIndex\n_rlnResolution\n_rlnAngstromResolution\n"
    pp += "_rlnFourierShellCorrelationCorrected\n"
    (root / "pp_negative_shell.star").write_text(pp + rows.replace("\n5 ", "\n-5 ") + "\n")
    (root / "pp_nan_shell.star").write_text(pp + rows.replace("\n5 ", "\nnan ") + "\n")
    (root / "pp_zero_angstrom.star").write_text(
        pp + rows.replace(f"\n1 {1 / (BOX * PX):.5f} {BOX * PX:.3f}", f"\n1 {1 / (BOX * PX):.5f} 0") + "\n"
    )
    model = (
        "data_model_general\n_rlnPixelSize 4.0\n\ndata_model_class_1\nloop_\n_rlnSpectralIndex\n_rlnGoldStandardFsc\n"
    )
    (root / "model_no_size.star").write_text(
        model + "\n".join(f"{i} {max(0.0, 1 - i / 10):.3f}" for i in range(17)) + "\n"
    )
    (root / "template.bin").write_bytes(bytes(range(256)) * 4)
    # a micrographs STAR that lists one micrograph twice (its particles would be extracted twice)
    import pandas as pd

    from cryobox.io.star import write_star_blocks

    optics = _good_particles()["optics"].drop(columns=["rlnImageSize", "rlnImageDimensionality"])
    optics = optics.rename(columns={"rlnImagePixelSize": "rlnMicrographPixelSize"})
    mics = pd.DataFrame(
        {
            "rlnMicrographName": ["mic.mrc", "mic.mrc"],
            "rlnDefocusU": [20000.0, 20000.0],
            "rlnDefocusV": [19000.0, 19000.0],
            "rlnDefocusAngle": [10.0, 10.0],
            "rlnOpticsGroup": [1, 1],
        }
    )
    write_star_blocks(root / "mics_twice.star", {"optics": optics, "micrographs": mics})
    write_star_blocks(
        root / "mic_pick.star", {"": pd.DataFrame({"rlnCoordinateX": [150.0, 250.0], "rlnCoordinateY": [200.0, 200.0]})}
    )
    (root / "judge.json").write_text("[]")  # valid JSON, not a judge result
    return root


@pytest.fixture(scope="module")
def corpus3(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus3")
    seed = tmp_path_factory.mktemp("corpus3_seed")
    build_folder(seed)
    r = CliRunner().invoke(app, ["fsc", str(seed / "h1.mrc"), str(seed / "h2.mrc"), "--json"])
    assert r.exit_code == 0, r.output
    (root / "fsc_seed.json").write_text(r.stdout)
    return build_round3(root)


SWEEP = ["sweep", "--dry-run", "--reference", "h1.mrc", "--particle-diameter", 60, "good.star", "--boxes", "24,32"]
ADVISE = ["--diameter", 100, "--resolution", 10]

CASES3 = {
    # 4. readers that assumed shapes
    ".cs x without y": (["inspect", "cx_only.cs"], ["cx_only.cs", "location/center_y_frac"]),
    ".cs 2-D array": (["inspect", "twod.cs"], ["twod.cs", "1-D"]),
    ".cs 0-d array": (["advise", "zerod.cs", *ADVISE], ["zerod.cs", "1-D"]),
    ".cs pose of 2 values": (["inspect", "pose2.cs"], ["pose2.cs", "alignments3D/pose", "3"]),
    ".cs shift of 3 values": (["ctf", "--from", "shift3.cs"], ["shift3.cs", "alignments3D/shift", "2"]),
    ".cs object paths": (["inspect", "objpath.cs"], ["objpath.cs", "Python objects"]),
    "STAR two particle blocks": (["inspect", "two_blocks.star"], ["two_blocks.star", "data_particles", "twice"]),
    "STAR optics row twice": (["advise", "dup_optics.star", *ADVISE], ["dup_optics.star", "optics group 1"]),
    "STAR optics without rows": (["inspect", "empty_optics.star"], ["empty_optics.star", "data_optics", "no rows"]),
    "STAR origin x without y": (["inspect", "origin_x_only.star"], ["origin_x_only.star", "rlnOriginYAngst"]),
    "STAR 3.0 origin x without y": (["inspect", "r30_origin_x.star"], ["r30_origin_x.star", "rlnOriginY"]),
    "STAR 3.0 pixel size text": (
        ["inspect", "r30_dps_text.star"],
        ["r30_dps_text.star", "rlnDetectorPixelSize", "abc"],
    ),
    "STAR image number 2.5": (
        ["restack", "fractional_index.star", "--box", 24, "--out", "o"],
        ["fractional_index.star", "2.5"],
    ),
    "FSC nulls": (["compare", "fsc_nulls.json"], ["fsc_nulls.json", "null"]),
    "FSC box 0": (["compare", "fsc_box0.json"], ["fsc_box0.json", "box of 0"]),
    "FSC unequal lengths": (["compare", "fsc_lengths.json"], ["fsc_lengths.json", "shells but"]),
    "FSC JSON not an object": (["compare", "fsc_not_object.json"], ["fsc_not_object.json"]),
    "FSC negative shell": (["compare", "pp_negative_shell.star"], ["pp_negative_shell.star", "-5"]),
    "FSC NaN shell": (["compare", "pp_nan_shell.star"], ["pp_nan_shell.star", "nan"]),
    "FSC 0 Å": (["compare", "pp_zero_angstrom.star"], ["pp_zero_angstrom.star", "rlnAngstromResolution"]),
    "model without image size": (["compare", "model_no_size.star"], ["model_no_size.star", "rlnOriginalImageSize"]),
    "report judge.json a list": (
        ["report", "good.star", *ADVISE, "--judge", "judge.json", "--out", "r.html"],
        ["judge.json"],
    ),
    "seed -1 simulate": (["simulate", "--stack", "--n", 4, "--box", BOX, "--seed", -1, "--out", "o"], ["--seed"]),
    "seed -1 judge": (["judge", "a=h1.mrc:h2.mrc", "b=h2.mrc:other_box.mrc", "--seed", -1, "--out", "o"], ["--seed"]),
    "seed -1 fsc": (["fsc", "h1.mrc", "h2.mrc", "--seed", -1], ["--seed"]),
    "submit-extra unbalanced": (
        [*SWEEP, "--out", "o", "--scheduler", "slurm", "--submit-extra", "--gres='gpu:1"],
        ["--submit-extra", "quot"],
    ),
    "submit-template binary": (
        [*SWEEP, "--out", "o", "--scheduler", "slurm", "--submit-template", "template.bin"],
        ["template.bin", "not a text file"],
    ),
    # 3. accepted before with a wrong result
    "map with non-cubic voxels": (["fsc", "aniso.mrc", "h2.mrc"], ["aniso.mrc", "voxels"]),
    "complex map": (["fsc", "complex.mrc", "h2.mrc"], ["complex.mrc", "complex"]),
    "axis order not a permutation": (["fsc", "axes_bad.mrc", "h2.mrc"], ["axes_bad.mrc", "MAPC"]),
    "negative NSYMBT": (["fsc", "nsymbt_negative.mrc", "h2.mrc"], ["nsymbt_negative.mrc", "NSYMBT"]),
    "fsc one map twice": (["fsc", "h1.mrc", "h1.mrc"], ["h1.mrc", "one file"]),
    "fsc one map by a link": (["fsc", "h1.mrc", "h1_link.mrc"], ["h1_link.mrc", "one file"]),
    "fsc a copy of one map": (["fsc", "h1.mrc", "h1_copy.mrc"], ["h1_copy.mrc", "same values"]),
    "judge a run of one map": (["judge", "a=h1.mrc:h1_copy.mrc", "b=h3.mrc:h4.mrc", "--out", "o"], ["same values"]),
    "judge the same run by another path": (
        ["judge", "a=h1.mrc:h2.mrc", "b=./h1.mrc:h2.mrc", "--out", "o"],
        ["named twice"],
    ),
    "voltage 0.3 kV in the file": (["advise", "kv_tiny.star", *ADVISE], ["kv_tiny.star", "rlnVoltage", "20-1000 kV"]),
    "voltage 3000 kV in the file": (["ctf", "--from", "kv_huge.star"], ["kv_huge.star", "rlnVoltage"]),
    "Cs 2700 mm in the file": (["advise", "cs_huge.star", *ADVISE], ["cs_huge.star", "rlnSphericalAberration"]),
    "defocus in µm": (["advise", "defocus_um.star", *ADVISE], ["defocus_um.star", "µm"]),
    "advise --voltage 0.3": (["advise", "good.star", *ADVISE, "--voltage", 0.3], ["--voltage"]),
    "advise --cs 2700": (["advise", "good.star", *ADVISE, "--cs", 2700], ["--cs"]),
    "advise --defocus-max in µm": (
        ["advise", "--pixel-size", 1, "--defocus-min", 2, "--defocus-max", 3, "--voltage", 300, "--cs", 2.7, *ADVISE],
        ["--defocus-min", "µm"],
    ),
    "ctf --resolution beyond Nyquist": (
        ["ctf", "--box", 64, "--pixel-size", 2, "--defocus-u", 20000, "--voltage", 300, "--cs", 2.7, "--resolution", 3],
        ["--resolution", "Nyquist"],
    ),
    "filter --lowpass nan": (["filter", "h1.mrc", "--lowpass", "nan", "--out", "f.mrc"], ["--lowpass"]),
    "filter negative edge width": (
        ["filter", "h1.mrc", "--lowpass", 12, "--filter-edge-width", -2, "--out", "f.mrc"],
        ["--filter-edge-width"],
    ),
    "fsc negative soft edge": (
        ["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-soft-edge", -3, "--mask-out", "m.mrc"],
        ["--mask-soft-edge"],
    ),
    "fsc mask lowpass 0": (
        ["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-lowpass", 0, "--mask-out", "m.mrc"],
        ["--mask-lowpass"],
    ),
    "fsc randomise-at without a mask": (["fsc", "h1.mrc", "h2.mrc", "--randomise-at", 10], ["--randomise-at"]),
    "sweep healpix order 99": ([*SWEEP, "--out", "o", "--healpix-order", 99], ["--healpix-order"]),
    "simulate a 2D map": (["simulate", "--stack", "--map", "map2d.mrc", "--n", 4, "--out", "o"], ["map2d.mrc", "2D"]),
    "simulate huge micrographs": (
        ["simulate", "--micrographs", 1, "--size", "200000x200000", "--per-micrograph", 2, "--out", "o"],
        ["--size"],
    ),
    "diagnose 10^8 directions": (
        ["diagnose", "h1.mrc", "h2.mrc", "--directions", 100000000, "--out", "o"],
        ["--directions"],
    ),
    "micrograph listed twice": (
        ["extract", "mics_twice.star", "--coords-suffix", "_pick.star", "--box", 24, "--out", "o"],
        ["mics_twice.star", "mic.mrc", "twice"],
    ),
    # 2. paths a STAR file cannot hold
    "extract out with #": (["extract", "good.star", "--box", 24, "--out", "o#1"], ["o#1", "'#'"]),
    "restack out with a quote": (["restack", "good.star", "--box", 24, "--out", "o'1"], ["o'1"]),
    "simulate out with @": (["simulate", "--stack", "--n", 4, "--box", BOX, "--out", "o@1"], ["o@1"]),
}


@pytest.mark.parametrize("case", sorted(CASES3))
def test_round3_bad_input_is_refused_in_one_sentence(corpus3, monkeypatch, case):
    monkeypatch.chdir(corpus3)
    argv, words = CASES3[case]
    before = digest(corpus3)
    try:
        _check_case(corpus3, before, case, argv, words)
    finally:
        for path in sorted(set(corpus3.rglob("*")) - {corpus3 / p for p in before} - set(_folders(corpus3, before))):
            if path.is_file() and not path.is_symlink():
                path.unlink()


# ---------------------------------------------------------------------------------------------
# valid input that was read wrong: now read right


def test_a_map_with_permuted_axes_reads_as_the_same_volume(tmp_path):
    from cryobox.io.mrc import read_mrc

    v = np.random.default_rng(0).standard_normal((BOX, BOX, BOX)).astype(np.float32)
    v[4:20, 8:12, 2:30] += 3.0  # not symmetric under any axis swap
    with mrcfile.new(tmp_path / "std.mrc") as m:
        m.set_data(v)
        m.voxel_size = PX
    for mapc, mapr, maps in ((3, 1, 2), (2, 3, 1), (3, 2, 1), (1, 3, 2)):
        # stored as (sections, rows, columns) = (axis maps, axis mapr, axis mapc) of the (z, y, x) volume
        order = [3 - a for a in (maps, mapr, mapc)]  # axis 1 (x) is array axis 2 of (z, y, x)
        with mrcfile.new(tmp_path / "perm.mrc", overwrite=True) as m:
            m.set_data(np.ascontiguousarray(np.transpose(v, order)))
            m.voxel_size = PX
            m.header.mapc, m.header.mapr, m.header.maps = mapc, mapr, maps
        got, _ = read_mrc(tmp_path / "perm.mrc")
        np.testing.assert_array_equal(got, v)


def test_a_stack_whose_name_holds_a_space_is_restacked_to_a_safe_name(tmp_path):
    from cryobox.io.mrc import write_mrc
    from cryobox.io.particles import read_particles

    write_mrc(
        tmp_path / "my stack.mrcs",
        np.random.default_rng(1).standard_normal((4, BOX, BOX)).astype(np.float32),
        pixel_size_a=PX,
    )
    blocks = _good_particles(rlnImageName=[f"{i:06d}@my stack.mrcs" for i in range(1, 5)])
    # a .cs can name such a stack (a STAR cannot): write one through cryobox
    from cryobox.io.particles import particles_from_star_blocks, write_cs

    t = particles_from_star_blocks(blocks, path=tmp_path / "x.star")
    write_cs(tmp_path / "spaced.cs", t)
    r = subprocess.run(
        [sys.executable, "-m", "cryobox", "restack", "spaced.cs", "--box", "24", "--out", "o"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    back = read_particles(tmp_path / "o" / "particles.star")
    assert len(back) == 4 and all(" " not in p for p in back.data["image_path"].astype(str))


ACCEPTED_NAMES = ["o+1", "o=1", "o,1", "o~1", "oé1", "o-1.x"]
REFUSED_NAMES = ["o 1", "o#1", "o'1", 'o"1', "o@1", "o:1", "o%1", "o;1", "o$1", "_o"]


@pytest.fixture(scope="module")
def star_paths(tmp_path_factory):
    return build_folder(tmp_path_factory.mktemp("star_paths"))


@pytest.mark.parametrize("name", ACCEPTED_NAMES)
def test_an_accepted_folder_name_round_trips_through_cryobox_and_relion(star_paths, name):
    """restack into the folder; cryobox reads the STAR back and RELION reads every image it names."""
    import shutil

    from cryobox.io.particles import read_particles

    r = subprocess.run(
        [sys.executable, "-m", "cryobox", "restack", "good.star", "--box", "24", "--out", name],
        cwd=star_paths,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    back = read_particles(star_paths / name / "particles.star")
    assert len(back) == 4 and all(str(p).startswith(name + "/") for p in back.data["image_path"])
    if shutil.which("relion_stack_create") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("RELION is not installed under CI=true")
        pytest.skip("RELION is not installed")
    out = f"relion_{abs(hash(name))}"
    rr = subprocess.run(
        ["relion_stack_create", "--i", f"{name}/particles.star", "--o", out],
        cwd=star_paths,
        capture_output=True,
        text=True,
    )
    assert rr.returncode == 0 and (star_paths / f"{out}.mrcs").is_file(), rr.stdout[-500:] + rr.stderr[-500:]
    with mrcfile.open(star_paths / f"{out}.mrcs") as m:
        assert m.data.shape == (4, 24, 24)


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_a_folder_name_a_star_file_cannot_hold_is_refused_before_any_work(star_paths, name):
    before = digest(star_paths)
    r = subprocess.run(
        [sys.executable, "-m", "cryobox", "restack", "good.star", "--box", "24", "--out", name],
        cwd=star_paths,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "STAR file" in r.stderr, r.stderr
    assert not (star_paths / name).exists() and digest(star_paths) == before
