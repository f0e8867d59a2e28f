import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import needs_relion, run_relion
from cryobox.core.extract import (
    background_mask,
    fourier_rescale_stack,
    normalise_background,
    window_particles,
)
from cryobox.core.fourier import filter_map
from cryobox.io.particles import read_particles
from cryobox.io.star import write_star_blocks

PX = 1.5
MIC_W, MIC_H = 420, 310
# coordinates inside, near and across every edge, fractional ones (RELION truncates)
COORDS = [
    (100.0, 100.0),
    (200.7, 150.4),
    (405.2, 300.9),
    (5.0, 150.0),
    (250.0, 3.0),
    (60.3, 250.8),
    (330.0, 40.0),
    (2.0, 2.0),
]
CTFS = [(20000.0, 19000.0, 30.0), (25000.0, 24000.0, -45.0), (15000.0, 14200.0, 100.0)]


def make_dataset(root):
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    (root / "Pick").mkdir(exist_ok=True)
    for i in range(3):
        mic = filter_map(rng.normal(size=(MIC_W, MIC_W)), pixel_size_a=PX, lowpass_a=4 * PX)[:MIC_H] + rng.normal(
            size=(MIC_H, MIC_W)
        )
        mic += np.linspace(0, 3, MIC_W)[None, :]  # a ramp for the plane fit
        with mrcfile.new(root / f"mic{i}.mrc", overwrite=True) as m:
            m.set_data(mic.astype(np.float32))
            m.voxel_size = PX
        write_star_blocks(
            root / "Pick" / f"mic{i}_pick.star",
            {"": pd.DataFrame({"rlnCoordinateX": [c[0] for c in COORDS], "rlnCoordinateY": [c[1] for c in COORDS]})},
        )
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnMicrographOriginalPixelSize": [PX / 2],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
            "rlnMicrographPixelSize": [PX],
        }
    )
    mics = pd.DataFrame(
        {
            "rlnMicrographName": [f"mic{i}.mrc" for i in range(3)],
            "rlnOpticsGroup": [1] * 3,
            "rlnDefocusU": [c[0] for c in CTFS],
            "rlnDefocusV": [c[1] for c in CTFS],
            "rlnDefocusAngle": [c[2] for c in CTFS],
            "rlnCtfBfactor": [0.0] * 3,
            "rlnCtfScalefactor": [1.0] * 3,
            "rlnPhaseShift": [0.0] * 3,
            "rlnCtfMaxResolution": [4.1, 3.9, 5.0],
        }
    )
    write_star_blocks(root / "micrographs.star", {"optics": optics, "micrographs": mics})
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("extract") / "data")


def cryobox(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "cryobox", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def extract_plain_64(dataset, out: str) -> None:
    """A plain extraction at 64 px into ``out`` (a test's own input, never another test's leftover)."""
    r = cryobox(
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        "--out",
        out,
        cwd=dataset,
    )
    assert r.returncode == 0, r.stderr


VARIANTS = {
    "plain": (["--no-norm"], []),
    "norm": (["--bg-radius", "24"], ["--norm", "--bg_radius", "24"]),
    "norm_invert": (["--bg-radius", "24", "--invert"], ["--norm", "--bg_radius", "24", "--invert_contrast"]),
    "premultiply": (
        ["--no-norm", "--premultiply-box", "128"],
        ["--premultiply_ctf", "--premultiply_extract_size", "128"],
    ),
    "premultiply_norm_invert": (
        ["--premultiply-box", "128", "--bg-radius", "24", "--invert"],
        ["--premultiply_ctf", "--premultiply_extract_size", "128", "--norm", "--bg_radius", "24", "--invert_contrast"],
    ),
    "phase_flip": (["--no-norm", "--phase-flip"], ["--phase_flip"]),
    "rescale": (["--rescale", "48", "--bg-radius", "18"], ["--scale", "48", "--norm", "--bg_radius", "18"]),
    "upscale": (["--no-norm", "--rescale", "80"], ["--scale", "80"]),
}


@needs_relion
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_extract_equals_relion_preprocess(dataset, variant):
    ours_args, relion_args = VARIANTS[variant]
    run_relion(
        [
            "relion_preprocess",
            "--i",
            "micrographs.star",
            "--coord_dir",
            "Pick/",
            "--coord_suffix",
            "_pick.star",
            "--part_star",
            f"r_{variant}.star",
            "--part_dir",
            f"r_{variant}/",
            "--extract",
            "--extract_size",
            "64",
            *relion_args,
        ],
        cwd=dataset,
    )
    r = cryobox(
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        *ours_args,
        "--out",
        f"o_{variant}",
        "--jobs",
        2,
        "--json",
        cwd=dataset,
    )
    assert r.returncode == 0, r.stderr
    rel = starfile.read(dataset / f"r_{variant}.star")
    ours = starfile.read(dataset / f"o_{variant}" / "particles.star")
    assert len(ours["particles"]) == len(rel["particles"]) == 3 * len(COORDS)
    np.testing.assert_allclose(ours["particles"]["rlnCoordinateX"], rel["particles"]["rlnCoordinateX"])
    np.testing.assert_allclose(ours["particles"]["rlnCoordinateY"], rel["particles"]["rlnCoordinateY"])
    np.testing.assert_allclose(ours["particles"]["rlnDefocusU"], rel["particles"]["rlnDefocusU"])
    for col in ("rlnImagePixelSize", "rlnImageSize"):
        assert ours["optics"][col].iloc[0] == pytest.approx(rel["optics"][col].iloc[0])
    premult = "premultiply" in variant
    assert int(ours["optics"]["rlnCtfDataAreCtfPremultiplied"].iloc[0]) == int(premult)
    for i in range(3):
        a = mrcfile.open(dataset / f"o_{variant}" / "Particles" / f"mic{i}.mrcs").data
        b = mrcfile.open(dataset / f"r_{variant}" / f"mic{i}.mrcs").data
        assert a.shape == b.shape
        for img_a, img_b in zip(a, b):
            assert np.corrcoef(img_a.ravel(), img_b.ravel())[0, 1] >= 0.9999
            # measured: up to 8.5e-6 SD (the normalised variants, float32 sums in another order)
            rel_diff = np.abs(img_a - img_b).max() / img_b.std()
            assert rel_diff <= 2e-5, (variant, i, rel_diff)


@needs_relion
def test_relion_reads_our_outputs(dataset):
    r = cryobox(
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        "--invert",
        "--out",
        "o_relion_reads",
        cwd=dataset,
    )
    assert r.returncode == 0, r.stderr
    stats = run_relion(["relion_image_handler", "--i", "o_relion_reads/Particles/mic0.mrcs", "--stats"], cwd=dataset)
    # RELION reads every image of our stack and sees the values we wrote
    ours = mrcfile.open(dataset / "o_relion_reads" / "Particles" / "mic0.mrcs").data
    lines = [ln for ln in stats.stdout.splitlines() if "avg=" in ln]
    assert len(lines) == len(ours)
    for line, img in zip(lines, ours):
        got = dict(re.findall(r"(avg|stddev|minval|maxval)= *([-0-9.eE+]+)", line))
        assert float(got["avg"]) == pytest.approx(float(img.mean()), abs=1e-4)
        assert float(got["stddev"]) == pytest.approx(float(img.std()), rel=1e-3)
        assert float(got["minval"]) == pytest.approx(float(img.min()), rel=1e-4, abs=1e-5)
        assert float(got["maxval"]) == pytest.approx(float(img.max()), rel=1e-4, abs=1e-5)
    run_relion(
        [
            "relion_reconstruct",
            "--i",
            "o_relion_reads/particles.star",
            "--o",
            "o_relion_reads/rec.mrc",
            "--ctf",
            "--maxres",
            "10",
        ],
        cwd=dataset,
    )
    with mrcfile.open(dataset / "o_relion_reads" / "rec.mrc") as m:
        assert m.data.shape == (64, 64, 64) and np.isfinite(m.data).all()


def test_odd_box_centre_is_n_over_2(tmp_path):
    mic = np.zeros((200, 300), np.float32)
    mic[120, 77] = 5.0
    for n in (63, 64, 65):
        s = window_particles(mic, np.array([77.9]), np.array([120.2]), n)  # RELION truncates the coordinate
        assert s.shape == (1, n, n) and s[0, n // 2, n // 2] == 5.0 and s.sum() == 5.0


@pytest.mark.parametrize("n", [48, 49])
def test_normalise_invariants(n, float_dtype):
    rng = np.random.default_rng(n)
    img = (rng.normal(size=(4, n, n)) * 3 + 7 + np.arange(n)[None, None, :] * 0.1).astype(float_dtype)
    out = normalise_background(img, 0.375 * n)
    bg = background_mask(n, 0.375 * n)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, bg].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, bg].std(axis=1), 1, atol=1e-5)
    flat = normalise_background(img, 0.375 * n, ramp=False)
    np.testing.assert_allclose(flat[:, bg].std(axis=1), 1, atol=1e-5)
    assert img.dtype == float_dtype  # input untouched


@pytest.mark.parametrize("n", [64, 65])
def test_normalise_matches_a_plain_least_squares_fit(n):
    """Known answer: a float64 lstsq plane on the background, subtracted, divided by the background
    SD, sign flipped; on images with a large offset (float32 sums must not cancel)."""
    rng = np.random.default_rng(n)
    yy, xx = np.mgrid[:n, :n] - n // 2
    img = (1000.0 + 0.3 * xx - 0.2 * yy + rng.normal(size=(5, n, n)) * 2.0).astype(np.float32)
    bg = background_mask(n, 0.375 * n)
    design = np.stack([xx[bg], yy[bg], np.ones(bg.sum())], axis=1).astype(np.float64)
    for ramp in (True, False):
        got = normalise_background(img, 0.375 * n, ramp=ramp, invert=True)
        for k in range(len(img)):
            v = img[k].astype(np.float64)
            cols = design if ramp else design[:, 2:]
            coef = np.linalg.lstsq(cols, v[bg], rcond=None)[0]
            plane = (coef[0] * xx + coef[1] * yy + coef[2]) if ramp else coef[0]
            r = v - plane
            expect = -(r - r[bg].mean()) / r[bg].std()
            np.testing.assert_allclose(got[k], expect, atol=2e-4)


@pytest.mark.parametrize("n", [64, 65, 300])
def test_normalise_in_place_and_in_sub_batches(n):
    """The batch is worked through in cache-sized sub-batches (16 images of 64 px, 15 of 65 px, one
    of 300 px): 37 images give full and partial sub-batches. Each image's result must not depend
    on its neighbours (beyond float32 rounding: BLAS sums a batch in another order than one image),
    and ``overwrite=True`` must work in the array itself with the same numbers."""
    rng = np.random.default_rng(n)
    img = (50.0 + rng.normal(size=(37, n, n)) * 4.0).astype(np.float32)
    one_by_one = np.concatenate([normalise_background(img[k : k + 1], 0.375 * n, invert=True) for k in range(len(img))])
    whole = normalise_background(img, 0.375 * n, invert=True)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-4)
    work = img.copy()
    in_place = normalise_background(work, 0.375 * n, invert=True, overwrite=True)
    assert in_place is work
    np.testing.assert_array_equal(in_place, whole)
    # not C-contiguous or not float32: a new array, the input untouched
    view = img[::2]
    before = view.copy()
    out = normalise_background(view, 0.375 * n, overwrite=True)
    assert out is not view and out.flags.c_contiguous
    np.testing.assert_array_equal(view, before)


@pytest.mark.parametrize("n,m", [(64, 48), (65, 49), (48, 64)])
def test_rescale_keeps_values_and_centre(n, m):
    img = np.zeros((1, n, n), np.float32)
    yy, xx = np.mgrid[:n, :n]
    img[0] = np.exp(-((yy - n // 2) ** 2 + (xx - n // 2) ** 2) / (2 * (n / 8) ** 2))
    out, px = fourier_rescale_stack(img, m, pixel_size_a=1.5)
    assert px == pytest.approx(1.5 * n / m)
    assert out.shape == (1, m, m)
    assert np.unravel_index(np.argmax(out[0]), (m, m)) == (m // 2, m // 2)
    assert out[0, m // 2, m // 2] == pytest.approx(1.0, abs=0.02)


def test_edge_drop_resume_and_outputs(dataset):
    args = [
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        "--edge",
        "drop",
        "--out",
        "o_drop",
        "--json",
        "--jobs",
        2,
    ]
    r = cryobox(*args, cwd=dataset)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    # the partly-outside particles at 64 px: COORDS 3..5, 8 (x=405 y=300, x=5, y=3, (2, 2))
    assert s["n_dropped_at_edges"] == 3 * 4 and s["n_written"] == 3 * 4 and s["n_filled_at_edges"] == 0
    assert "lie partly outside" in r.stderr
    t = read_particles(dataset / "o_drop" / "particles.cs")
    assert len(t) == 12 and t.data["box_px"].iloc[0] == 64
    from cryosparc.dataset import Dataset

    ds = Dataset.load(dataset / "o_drop" / "particles.cs")
    assert len(ds) == 12 and float(ds["blob/psize_A"][0]) == pytest.approx(PX)
    stack = dataset / "o_drop" / "Particles" / "mic1.mrcs"
    before = stack.stat().st_mtime_ns
    # re-running skips the finished micrographs
    r2 = cryobox(*args, cwd=dataset)
    assert json.loads(r2.stdout)["n_skipped_done"] == 3 and stack.stat().st_mtime_ns == before
    # a stack without its record (interrupted after the rename) is redone; --overwrite redoes all
    (dataset / "o_drop" / "Particles" / "mic1.json").unlink()
    r3 = cryobox(*args, cwd=dataset)
    assert json.loads(r3.stdout)["n_skipped_done"] == 2 and stack.stat().st_mtime_ns != before
    r4 = cryobox(*args, "--overwrite", cwd=dataset)
    assert json.loads(r4.stdout)["n_skipped_done"] == 0
    # other settings invalidate the records
    r5 = cryobox(*[a if a != 64 else 66 for a in args], cwd=dataset)
    assert json.loads(r5.stdout)["n_skipped_done"] == 0
    assert not list((dataset / "o_drop").rglob("*.part"))


def test_dask_cluster_gives_identical_outputs(dataset):
    distributed = pytest.importorskip("distributed")
    common = [
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        "--premultiply-box",
        96,
        "--invert",
        "--json",
    ]
    assert cryobox(*common, "--out", "o_local", cwd=dataset).returncode == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        r = cryobox(*common, "--out", "o_dask", "--scheduler", cluster.scheduler_address, cwd=dataset)
    assert r.returncode == 0, r.stderr
    for i in range(3):
        a = mrcfile.open(dataset / "o_local" / "Particles" / f"mic{i}.mrcs").data
        b = mrcfile.open(dataset / "o_dask" / "Particles" / f"mic{i}.mrcs").data
        np.testing.assert_array_equal(a, b)


def test_premultiply_micrograph_mode(dataset):
    r = cryobox(
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        "--no-norm",
        "--premultiply-micrograph",
        "--out",
        "o_pmic",
        "--json",
        cwd=dataset,
    )
    assert r.returncode == 0, r.stderr
    r2 = cryobox(
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        "--no-norm",
        "--premultiply-box",
        256,
        "--out",
        "o_pbig",
        "--json",
        cwd=dataset,
    )
    assert r2.returncode == 0, r2.stderr
    a = mrcfile.open(dataset / "o_pmic" / "Particles" / "mic0.mrcs").data
    b = mrcfile.open(dataset / "o_pbig" / "Particles" / "mic0.mrcs").data
    # far from the edges the whole-micrograph product and a big-box product agree closely
    assert np.corrcoef(a[0].ravel(), b[0].ravel())[0, 1] > 0.95
    assert (
        int(starfile.read(dataset / "o_pmic" / "particles.star")["optics"]["rlnCtfDataAreCtfPremultiplied"].iloc[0])
        == 1
    )


def test_fractional_and_float16_outputs(dataset):
    r = cryobox(
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        63,
        "--float16",
        "--out",
        "o_f16",
        "--json",
        cwd=dataset,
    )
    assert r.returncode == 0, r.stderr
    with mrcfile.open(dataset / "o_f16" / "Particles" / "mic0.mrcs") as m:
        assert m.data.dtype == np.float16 and m.data.shape == (len(COORDS), 63, 63)
    # the note names who reads them and who does not; RELION 3.1 (the peer here) indeed refuses mode 12
    assert "RELION 3.1 cannot read them" in r.stderr and "RELION 4.0" in r.stderr
    if shutil.which("relion_image_handler"):
        peer = subprocess.run(
            ["relion_image_handler", "--i", "o_f16/Particles/mic0.mrcs", "--stats"],
            cwd=dataset,
            capture_output=True,
            text=True,
        )
        assert "does not support half-precision" in peer.stdout + peer.stderr


def test_recenter_moves_coordinates_by_whole_pixels(dataset, tmp_path):
    # its own extraction, whatever other tests left in the dataset folder
    extract_plain_64(dataset, "o_recenter_src")
    t = read_particles(dataset / "o_recenter_src" / "particles.star")
    d = t.data
    d["shift_x_a"] = 3 * PX + 0.2  # 3 px and a bit
    d["shift_y_a"] = -2 * PX
    from cryobox.io.particles import write_star

    write_star(dataset / "shifted.star", t)
    r = cryobox("extract", "shifted.star", "--recenter", "--box", 64, "--out", "o_recenter", "--json", cwd=dataset)
    assert r.returncode == 0, r.stderr
    back = read_particles(dataset / "o_recenter" / "particles.star").data
    np.testing.assert_allclose(back["coord_x_px"], d["coord_x_px"] - 3)
    np.testing.assert_allclose(back["coord_y_px"], d["coord_y_px"] + 2)
    np.testing.assert_allclose(back["shift_x_a"], 0.2, atol=1e-6)
    np.testing.assert_allclose(back["shift_y_a"], 0.0, atol=1e-6)


BAD = {
    "missing micrograph": "missing",
    "coordinate file for an unknown micrograph": "orphan",
    "box larger than the micrograph": "bigbox",
    "premultiply box smaller than the box": "smallpm",
    "no CTF for premultiply": "noctf",
    "unreadable MRC": "badmrc",
    "truncated MRC (header fine, data short)": "shortmrc",
}


@pytest.mark.parametrize("case", list(BAD.values()))
def test_bad_extraction_input_exits_2(tmp_path, case):
    root = make_dataset(tmp_path / "d")
    args = [
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        64,
        "--out",
        "o",
    ]
    if case == "missing":
        (root / "mic1.mrc").unlink()
    elif case == "orphan":
        (root / "Pick" / "micX_pick.star").write_text((root / "Pick" / "mic0_pick.star").read_text())
    elif case == "bigbox":
        args[args.index(64)] = 400
    elif case == "smallpm":
        args += ["--premultiply-box", 48]
    elif case == "noctf":
        b = starfile.read(root / "micrographs.star")
        b["micrographs"] = b["micrographs"].drop(columns=["rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle"])
        write_star_blocks(root / "micrographs.star", b)
        args += ["--premultiply-box", 96]
    elif case == "badmrc":
        (root / "mic2.mrc").write_bytes(b"garbage" * 100)
    elif case == "shortmrc":  # micrographs are memory-mapped: a short file must fail cleanly, not crash a worker
        raw = (root / "mic2.mrc").read_bytes()
        (root / "mic2.mrc").write_bytes(raw[: len(raw) // 2])
    r = cryobox(*args, cwd=root)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "cryobox: error:" in r.stderr
    if case in ("missing", "badmrc", "shortmrc"):
        # --keep-going: the other micrographs are extracted, the bad one reported
        r2 = cryobox(*args, "--keep-going", "--json", cwd=root)
        assert r2.returncode == 0, r2.stderr
        assert json.loads(r2.stdout)["n_written"] == 2 * len(COORDS)


def test_restack_premultiply_then_crop_equals_extraction(dataset):
    """restack --premultiply --box 64 on a 128 px extraction = extract --premultiply-box 128 --box 64
    (same big box, same CTF, same crop), away from the micrograph edges."""
    assert (
        cryobox(
            "extract",
            "micrographs.star",
            "--coords-dir",
            "Pick",
            "--coords-suffix",
            "_pick.star",
            "--box",
            128,
            "--no-norm",
            "--out",
            "o_big",
            cwd=dataset,
        ).returncode
        == 0
    )
    r = cryobox(
        "restack", "o_big/particles.star", "--premultiply", "--box", 64, "--out", "o_restack", "--json", cwd=dataset
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["n_restacked"] == 3 * len(COORDS) and s["box_px"] == 64 and s["premultiplied"]
    # no .cs for premultiplied particles: cryoSPARC would apply the CTF again (issue 25); said why
    assert s["cs"] is None and not (dataset / "o_restack" / "particles.cs").exists()
    assert not (dataset / "o_restack" / "particles.csg").exists()
    assert "cryoSPARC would apply the CTF to them a second time" in s["notes"][0]
    assert (dataset / "o_big" / "particles.cs").exists()  # plain particles get one
    assert (
        cryobox(
            "extract",
            "micrographs.star",
            "--coords-dir",
            "Pick",
            "--coords-suffix",
            "_pick.star",
            "--box",
            64,
            "--no-norm",
            "--premultiply-box",
            128,
            "--out",
            "o_pm_ref",
            cwd=dataset,
        ).returncode
        == 0
    )
    assert not (dataset / "o_pm_ref" / "particles.cs").exists()
    flipped = cryobox("restack", "o_big/particles.star", "--phase-flip", "--out", "o_flip", cwd=dataset)
    assert flipped.returncode == 0, flipped.stderr
    assert "phase-flipped and a .cs cannot say so" in " ".join(flipped.stderr.split())
    assert not (dataset / "o_flip" / "particles.cs").exists() and (dataset / "o_flip" / "particles.star").exists()
    a = read_particles(dataset / "o_restack" / "particles.star")
    b = read_particles(dataset / "o_pm_ref" / "particles.star")
    assert bool(a.data["ctf_premultiplied"].iloc[0]) and a.data["box_px"].iloc[0] == 64
    np.testing.assert_allclose(a.data["coord_x_px"], b.data["coord_x_px"])
    sa = mrcfile.open(dataset / a.data["image_path"].iloc[0]).data
    sb = mrcfile.open(dataset / "o_pm_ref" / "Particles" / "mic0.mrcs").data
    inside = [0, 1]  # the boxes of 128 px that lie inside the micrograph (no edge fill differences)
    for k in inside:
        np.testing.assert_allclose(sa[k], sb[k], atol=1e-4 * sb[k].std())


def test_restack_window_and_rescale_metadata(dataset):
    extract_plain_64(dataset, "o_64")
    r = cryobox(
        "restack", "o_64/particles.star", "--box", 48, "--rescale", 32, "--norm", "--out", "o_rs", "--json", cwd=dataset
    )
    assert r.returncode == 0, r.stderr
    t = read_particles(dataset / "o_rs" / "particles.star").data
    assert t["box_px"].iloc[0] == 32 and t["pixel_size_a"].iloc[0] == pytest.approx(PX * 48 / 32)
    src = read_particles(dataset / "o_64" / "particles.star").data
    np.testing.assert_allclose(t["defocus_u_a"], src["defocus_u_a"])
    with mrcfile.open(dataset / t["image_path"].iloc[0]) as m:
        assert m.data.shape[1:] == (32, 32) and m.voxel_size.x == pytest.approx(PX * 48 / 32, rel=1e-5)
    # the windowing keeps the box centre: a re-run is skipped
    r2 = cryobox(
        "restack", "o_64/particles.star", "--box", 48, "--rescale", 32, "--norm", "--out", "o_rs", "--json", cwd=dataset
    )
    assert json.loads(r2.stdout)["n_stacks_skipped"] == 3
    # premultiplying twice is refused (its own premultiplied restack first)
    pm = cryobox("restack", "o_64/particles.star", "--premultiply", "--out", "o_pm_once", cwd=dataset)
    assert pm.returncode == 0, pm.stderr
    bad = cryobox("restack", "o_pm_once/particles.star", "--premultiply", "--out", "o_twice", cwd=dataset)
    assert bad.returncode == 2 and "already CTF-premultiplied" in bad.stderr


@pytest.mark.parametrize("shape", [(64, 64), (63, 65), (2, 40, 51)])
def test_irfft2_inplace_matches_scipy(shape, float_dtype):
    import scipy.fft as sfft

    from cryobox.core.fourier import irfft2_inplace

    x = np.random.default_rng(1).standard_normal(shape).astype(float_dtype)
    ft = sfft.rfft2(x)
    expect = sfft.irfft2(ft, s=shape[-2:])
    got = irfft2_inplace(ft.copy(), shape[-2:])
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, expect, atol=1e-5)


def test_restack_a_cs_exported_elsewhere_with_its_project_folder(dataset, tmp_path):
    """cryoSPARC's blob/path is relative to the project folder: a .cs moved away finds its stacks
    again with --project-dir (issue 25), and without it the error names the option."""
    extract_plain_64(dataset, "o_proj")
    away = tmp_path / "downloads"
    away.mkdir()
    shutil.copy(dataset / "o_proj" / "particles.cs", away / "particles.cs")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    r = cryobox("restack", away / "particles.cs", "--box", 48, "--out", "R", cwd=elsewhere)
    assert r.returncode == 2 and "--project-dir" in " ".join(r.stderr.split())
    r = cryobox(
        "restack", away / "particles.cs", "--box", 48, "--out", "R", "--project-dir", dataset, "--json", cwd=elsewhere
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_restacked"] == 3 * len(COORDS)
    r = cryobox(
        "restack", away / "particles.cs", "--box", 48, "--out", "R2", "--project-dir", tmp_path / "nope", cwd=elsewhere
    )
    assert r.returncode == 2 and "no such folder" in r.stderr


def test_the_csg_beside_a_restacked_cs_is_what_cryosparc_exports(tmp_path):
    """Import Result Group reads a .csg (YAML: group, one result per field prefix, each naming its
    .cs with `>` for "beside this file"). Checked against the layout of cryoSPARC's exported .csg
    files and the real cryoSPARC .cs of ../shared/data/real: every field cryobox writes that the real
    file also has carries the same dtype and shape, and cryosparc-tools loads the .cs."""
    import yaml
    from cryosparc.dataset import Dataset

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    if not (real / "relion31.star").exists():
        pytest.skip("../shared/data/real is not here")
    for name in ("relion31.star", "relion31.mrcs"):
        shutil.copy(real / name, tmp_path / name)
    r = cryobox("restack", "relion31.star", "--box", 64, "--out", "R", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "particles.csg" not in r.stdout and "its .csg, for cryoSPARC's Import Result Group" in r.stdout
    csg = yaml.safe_load((tmp_path / "R" / "particles.csg").read_text())
    ours = np.load(tmp_path / "R" / "particles.cs")
    assert csg["group"]["type"] == "particle" and csg["group"]["name"] == "particles"
    assert str(csg["version"]).startswith("v4")
    prefixes = {f.split("/")[0] for f in ours.dtype.names if "/" in f}
    assert set(csg["results"]) == prefixes & {"blob", "ctf", "alignments2D", "alignments3D", "location", "pick_stats"}
    assert {"blob", "ctf"} <= set(csg["results"])
    for name, result in csg["results"].items():
        assert result == {"metafile": ">particles.cs", "num_items": 5, "type": f"particle.{name}"}
    theirs = np.load(real / "cryosparc_P12_J24_001_particles.cs")
    common = set(ours.dtype.names) & set(theirs.dtype.names)
    assert {"uid", "blob/path", "blob/idx", "blob/shape", "ctf/df1_A", "alignments3D/pose"} <= common
    for f in common:
        assert ours.dtype[f].kind == theirs.dtype[f].kind and ours.dtype[f].shape == theirs.dtype[f].shape, f
        if ours.dtype[f].kind != "S":  # byte strings: as long as each file needs
            assert ours.dtype[f] == theirs.dtype[f], f
    assert len(Dataset.load(tmp_path / "R" / "particles.cs")) == 5


def test_the_output_pixel_size_is_said_in_one_place():
    """ParticleOps.output_pixel_size_a: a Fourier rescale from the window to rescale_px scales the
    pixel size by window / rescale; restack without a box keeps the input's box as its window."""
    from cryobox.jobs.particle_ops import ParticleOps

    assert ParticleOps(box_px=256, rescale_px=128).output_pixel_size_a(1.06) == pytest.approx(2.12)
    assert ParticleOps(box_px=281).output_pixel_size_a(1.06) == 1.06  # no rescale, odd box
    assert ParticleOps(rescale_px=100).output_pixel_size_a(1.0, 200) == pytest.approx(2.0)
    assert ParticleOps(rescale_px=100).output_box_px(200) == 100 and ParticleOps().output_box_px(180) == 180
    assert ParticleOps(box_px=64, rescale_px=96).output_pixel_size_a(3.0) == pytest.approx(2.0)  # a pad
