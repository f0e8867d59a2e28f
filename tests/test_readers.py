import mrcfile
import numpy as np
import pandas as pd
import pytest

from conftest import needs_relion, real_file, run_relion
from cryobox.errors import InputError
from cryobox.io.particles import (
    ParticleTable,
    particles_from_cs,
    particles_to_cs,
    read_particles,
    write_cs,
    write_star,
)
from cryobox.io.star import read_numeric_loop, read_star_blocks, write_star_blocks


def assert_same_values(a: pd.DataFrame, b: pd.DataFrame, columns=None):
    for col in columns or a.columns:
        assert col in b.columns, f"{col} lost"
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind in "fiub" and y.dtype.kind in "fiub":
            np.testing.assert_allclose(x.astype(float), y.astype(float), rtol=1e-6, atol=1e-6, err_msg=col)
        else:
            assert list(map(str, x)) == list(map(str, y)), col


@pytest.mark.parametrize("name", ["relion31.star", "relion31.v2.star"])
def test_relion31_real_files(name):
    t = read_particles(real_file(name))
    assert t.source_format == "relion3.1" and t.kind == "particles" and len(t) == 5
    d = t.data
    assert d["pixel_size_a"].iloc[0] == pytest.approx(2.806)
    assert d["box_px"].iloc[0] == 256 and d["voltage_kv"].iloc[0] == 300 and d["cs_mm"].iloc[0] == pytest.approx(0.01)
    assert d["defocus_u_a"].iloc[0] == pytest.approx(13108.082418)
    assert d["image_path"].iloc[0] == "relion31.mrcs" and d["image_index"].tolist() == [0, 1, 2, 3, 4]
    assert d["coord_x_px"].iloc[0] == 3277 and "shift_x_a" in d and "angle_rot_deg" in d


def test_optics_block_order_does_not_matter():
    a = read_particles(real_file("relion31.star")).data
    b = read_particles(real_file("relion31.v2.star")).data
    assert_same_values(a, b)


def test_relion5_real_file():
    t = read_particles(real_file("relion5.star"))
    d = t.data
    assert len(t) == 17 and d["voltage_kv"].iloc[0] == 100 and d["pixel_size_a"].iloc[0] == pytest.approx(0.89)
    assert d["ctf_premultiplied"].iloc[0] == False  # noqa: E712
    assert "rlnEvenZernike" in t.optics_passthrough and "rlnMagMat00" in t.optics_passthrough


@pytest.mark.parametrize("name", ["relion31.star", "relion31.v2.star", "relion5.star"])
def test_star_round_trip_keeps_every_value(tmp_path, name):
    t = read_particles(real_file(name))
    write_star(tmp_path / "out.star", t)
    back = read_particles(tmp_path / "out.star")
    assert_same_values(t.data, back.data)
    # the raw blocks agree too, label by label (RELION image names are renumbered to 000001@ form)
    raw_in, raw_out = read_star_blocks(real_file(name)), read_star_blocks(tmp_path / "out.star")
    for block in ("optics", "particles"):
        for col in raw_in[block].columns:
            if col != "rlnImageName":
                assert_same_values(raw_in[block][[col]], raw_out[block][[col]])


def test_cryosparc_real_file_units():
    path = real_file("cryosparc_P12_J24_001_particles.cs")
    raw = np.load(path)
    t = read_particles(path)
    d = t.data
    assert len(t) == 2019 and t.source_format == "cryosparc"
    np.testing.assert_allclose(d["defocus_angle_deg"], np.rad2deg(raw["ctf/df_angle_rad"].astype(float)))
    np.testing.assert_allclose(d["shift_x_a"], raw["alignments3D/shift"][:, 0] * raw["alignments3D/psize_A"], rtol=1e-6)
    assert d["box_px"].iloc[0] == 180 and d["pixel_size_a"].iloc[0] == pytest.approx(2.95)
    assert d["voltage_kv"].iloc[0] == 200 and d["optics_group"].iloc[0] == 1
    assert d["image_path"].iloc[0].startswith("J19/extract/")


def test_cs_round_trip_is_exact(tmp_path):
    path = real_file("cryosparc_P12_J24_001_particles.cs")
    raw = np.load(path)
    write_cs(tmp_path / "out.cs", read_particles(path))
    back = np.load(tmp_path / "out.cs")
    assert set(back.dtype.names) == set(raw.dtype.names)
    for name in raw.dtype.names:
        np.testing.assert_array_equal(back[name], raw[name], err_msg=name)


def test_cryosparc_tools_reads_our_cs(tmp_path):
    from cryosparc.dataset import Dataset

    t = read_particles(real_file("relion31.star"))
    t.data["micrograph_width_px"], t.data["micrograph_height_px"] = 3838.0, 3710.0
    write_cs(tmp_path / "p.cs", t)
    ds = Dataset.load(tmp_path / "p.cs")
    assert len(ds) == 5
    np.testing.assert_allclose(ds["ctf/df1_A"], t.data["defocus_u_a"], rtol=1e-6)
    np.testing.assert_allclose(ds["ctf/df_angle_rad"], np.deg2rad(t.data["defocus_angle_deg"]), rtol=1e-6)
    np.testing.assert_allclose(ds["location/center_x_frac"] * 3838, t.data["coord_x_px"], rtol=1e-5)
    np.testing.assert_allclose(ds["blob/psize_A"], 2.806, rtol=1e-6)
    assert ds["blob/path"][0] == "relion31.mrcs"
    # and the trip back through our reader gives the same particles
    back = read_particles(tmp_path / "p.cs").data
    assert_same_values(
        t.data,
        back,
        [
            "defocus_u_a",
            "defocus_v_a",
            "defocus_angle_deg",
            "coord_x_px",
            "coord_y_px",
            "pixel_size_a",
            "box_px",
            "image_index",
            "image_path",
            "shift_x_a",
        ],
    )
    np.testing.assert_allclose(back["angle_tilt_deg"], t.data["angle_tilt_deg"], atol=1e-3)


def test_newer_csdat_format_and_exported_paths(tmp_path):
    from cryosparc.dataset import CSDAT_FORMAT, Dataset

    ds = Dataset.allocate(
        3,
        [
            ("blob/path", "O"),
            ("blob/idx", "u4"),
            ("blob/shape", "u4", (2,)),
            ("blob/psize_A", "f4"),
            ("ctf/df1_A", "f4"),
            ("ctf/df2_A", "f4"),
            ("ctf/df_angle_rad", "f4"),
            ("ctf/accel_kv", "f4"),
            ("ctf/cs_mm", "f4"),
            ("ctf/amp_contrast", "f4"),
            ("location/micrograph_shape", "u4", (2,)),
            ("location/center_x_frac", "f4"),
            ("location/center_y_frac", "f4"),
            ("location/micrograph_path", "O"),
        ],
    )
    ds["blob/path"] = [">J5/extract/a.mrc"] * 3
    ds["blob/idx"] = [0, 1, 2]
    ds["blob/shape"] = [[256, 256]] * 3
    ds["blob/psize_A"] = 1.06
    ds["ctf/df1_A"], ds["ctf/df2_A"], ds["ctf/df_angle_rad"] = 20000.0, 19000.0, np.pi / 2
    ds["ctf/accel_kv"], ds["ctf/cs_mm"], ds["ctf/amp_contrast"] = 300.0, 2.7, 0.1
    ds["location/micrograph_shape"] = [[4092, 5760]] * 3
    ds["location/center_x_frac"], ds["location/center_y_frac"] = [0.5, 0.25, 0.0], [0.5, 0.1, 1.0]
    ds["location/micrograph_path"] = [">J2/motioncorrected/m.mrc"] * 3
    for fmt, name in ((CSDAT_FORMAT, "new.cs"), (1, "old.cs")):
        ds.save(tmp_path / name, format=fmt)
        d = read_particles(tmp_path / name).data
        assert d["image_path"].tolist() == ["J5/extract/a.mrc"] * 3  # leading '>' of exports stripped
        assert d["micrograph_name"].iloc[0] == "J2/motioncorrected/m.mrc"
        np.testing.assert_allclose(d["coord_x_px"], [2880, 1440, 0])  # x fraction x micrograph_shape[1]
        np.testing.assert_allclose(d["coord_y_px"], [2046, 409.2, 4092], rtol=1e-6)
        assert d["micrograph_width_px"].iloc[0] == 5760 and d["micrograph_height_px"].iloc[0] == 4092
        assert d["defocus_angle_deg"].iloc[0] == pytest.approx(90)


def test_empty_cs_dataset(tmp_path):
    rec = np.zeros(
        0, dtype=[("uid", "u8"), ("ctf/df1_A", "f4"), ("ctf/df2_A", "f4"), ("blob/path", "S10"), ("blob/idx", "u4")]
    )
    np.save(tmp_path / "empty.npy", rec)
    (tmp_path / "empty.npy").rename(tmp_path / "empty.cs")
    t = read_particles(tmp_path / "empty.cs")
    assert len(t) == 0 and "defocus_u_a" in t.data
    write_cs(tmp_path / "again.cs", t)
    assert len(np.load(tmp_path / "again.cs")) == 0


def _relion30_block(n=4):
    return pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@stack.mrcs" for i in range(n)],
            "rlnMicrographName": ["m.mrc"] * n,
            "rlnDefocusU": np.linspace(15000, 16000, n),
            "rlnDefocusV": np.linspace(14000, 15000, n),
            "rlnDefocusAngle": 10.0,
            "rlnVoltage": 300.0,
            "rlnSphericalAberration": 2.7,
            "rlnAmplitudeContrast": 0.1,
            "rlnDetectorPixelSize": 5.0,
            "rlnMagnification": 50000.0,
            "rlnOriginX": [1.0, -2.0, 0.5, 0.0],
            "rlnOriginY": 0.0,
        }
    )


@pytest.mark.parametrize("block_name", ["", "images", "whatever"])
def test_relion30_single_block_any_name(tmp_path, block_name):
    write_star_blocks(tmp_path / "p.star", {block_name: _relion30_block()})
    t = read_particles(tmp_path / "p.star")
    d = t.data
    assert t.source_format == "relion3.0" and len(t) == 4
    np.testing.assert_allclose(d["pixel_size_a"], 1.0)  # 5 µm * 1e4 / 50000
    np.testing.assert_allclose(d["shift_x_a"], [1.0, -2.0, 0.5, 0.0])  # px x 1 Å/px
    assert d["image_index"].tolist() == [0, 1, 2, 3]
    # written back as RELION 3.1: an optics table appears, values kept
    write_star(tmp_path / "p31.star", t)
    t31 = read_particles(tmp_path / "p31.star")
    assert t31.source_format == "relion3.1"
    assert_same_values(
        d, t31.data, ["defocus_u_a", "pixel_size_a", "voltage_kv", "shift_x_a", "image_index", "image_path"]
    )


def test_relion30_image_pixel_size_label(tmp_path):
    b = _relion30_block().drop(columns=["rlnDetectorPixelSize", "rlnMagnification"])
    b["rlnImagePixelSize"] = 1.25
    write_star_blocks(tmp_path / "p.star", {"images": b})
    assert read_particles(tmp_path / "p.star").data["pixel_size_a"].iloc[0] == 1.25


def test_several_optics_groups(tmp_path):
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1, 2],
            "rlnOpticsGroupName": ["a", "b"],
            "rlnVoltage": [300.0, 200.0],
            "rlnSphericalAberration": [2.7, 2.0],
            "rlnAmplitudeContrast": [0.1, 0.07],
            "rlnImagePixelSize": [1.06, 0.85],
            "rlnImageSize": [256, 320],
            "rlnImageDimensionality": [2, 2],
        }
    )
    parts = pd.DataFrame(
        {
            "rlnImageName": ["000001@a.mrcs", "000001@b.mrcs", "000002@a.mrcs"],
            "rlnOpticsGroup": [1, 2, 1],
            "rlnDefocusU": [1e4, 2e4, 3e4],
            "rlnDefocusV": [1e4, 2e4, 3e4],
            "rlnDefocusAngle": [0.0, 0.0, 0.0],
        }
    )
    write_star_blocks(tmp_path / "p.star", {"particles": parts, "optics": optics})
    d = read_particles(tmp_path / "p.star").data
    assert d["voltage_kv"].tolist() == [300, 200, 300] and d["pixel_size_a"].tolist() == [1.06, 0.85, 1.06]
    assert d["box_px"].tolist() == [256, 320, 256] and d["optics_group_name"].tolist() == ["a", "b", "a"]
    write_star(tmp_path / "again.star", read_particles(tmp_path / "p.star"))
    back = read_star_blocks(tmp_path / "again.star")
    assert back["optics"]["rlnVoltage"].tolist() == [300, 200]


def test_micrographs_star(tmp_path):
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["g"],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
            "rlnMicrographPixelSize": [0.83],
            "rlnMicrographOriginalPixelSize": [0.415],
        }
    )
    mics = pd.DataFrame(
        {
            "rlnMicrographName": ["a.mrc", "b.mrc"],
            "rlnOpticsGroup": [1, 1],
            "rlnDefocusU": [1e4, 2e4],
            "rlnDefocusV": [0.9e4, 1.9e4],
            "rlnDefocusAngle": [5.0, 6.0],
            "rlnCtfMaxResolution": [3.1, 4.2],
        }
    )
    write_star_blocks(tmp_path / "micrographs_ctf.star", {"optics": optics, "micrographs": mics})
    t = read_particles(tmp_path / "micrographs_ctf.star")
    assert t.kind == "micrographs" and len(t) == 2 and t.data["pixel_size_a"].iloc[0] == pytest.approx(0.83)
    write_star(tmp_path / "again.star", t)
    back = read_star_blocks(tmp_path / "again.star")
    assert "micrographs" in back and back["optics"]["rlnMicrographPixelSize"].iloc[0] == pytest.approx(0.83)


def _make_relion_inputs(tmp_path, box=64):
    rng = np.random.default_rng(0)
    for i in range(2):
        with mrcfile.new(tmp_path / f"mic{i}.mrc") as m:
            m.set_data(rng.normal(size=(300, 400)).astype(np.float32))
            m.voxel_size = 1.5
        write_star_blocks(
            tmp_path / f"mic{i}_pick.star",
            {"": pd.DataFrame({"rlnCoordinateX": [100.0, 200.0, 390.0], "rlnCoordinateY": [100.0, 150.0, 290.0]})},
        )
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnMicrographOriginalPixelSize": [1.5],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
            "rlnMicrographPixelSize": [1.5],
        }
    )
    mics = pd.DataFrame(
        {
            "rlnMicrographName": ["mic0.mrc", "mic1.mrc"],
            "rlnOpticsGroup": [1, 1],
            "rlnDefocusU": [20000.0, 25000.0],
            "rlnDefocusV": [19000.0, 24000.0],
            "rlnDefocusAngle": [30.0, -45.0],
            "rlnCtfBfactor": [0.0, 0.0],
            "rlnCtfScalefactor": [1.0, 1.0],
            "rlnPhaseShift": [0.0, 0.0],
        }
    )
    write_star_blocks(tmp_path / "micrographs.star", {"optics": optics, "micrographs": mics})


@needs_relion
def test_reads_what_relion_preprocess_writes(tmp_path):
    """RELION reads our micrographs STAR, extracts, and we read its particles STAR back."""
    _make_relion_inputs(tmp_path)
    run_relion(
        [
            "relion_preprocess",
            "--i",
            "micrographs.star",
            "--coord_dir",
            "./",
            "--coord_suffix",
            "_pick.star",
            "--part_star",
            "particles.star",
            "--part_dir",
            "Extract/",
            "--extract",
            "--extract_size",
            "64",
        ],
        cwd=tmp_path,
    )
    t = read_particles(tmp_path / "particles.star")
    d = t.data
    assert t.source_format == "relion3.1" and len(t) == 6
    assert d["box_px"].tolist() == [64] * 6 and d["pixel_size_a"].iloc[0] == pytest.approx(1.5)
    assert d["coord_x_px"].tolist() == [100, 200, 390] * 2
    assert d["defocus_u_a"].tolist() == [20000] * 3 + [25000] * 3
    assert d["image_index"].tolist() == [0, 1, 2] * 2
    with mrcfile.open(tmp_path / d["image_path"].iloc[0], permissive=True) as m:
        assert m.data.shape == (3, 64, 64)
    # and a STAR we write from it is one RELION reads: ask relion_star_handler to count it
    write_star(tmp_path / "ours.star", t)
    proc = run_relion(["relion_star_handler", "--i", "ours.star", "--o", "copy.star"], cwd=tmp_path)
    assert len(read_particles(tmp_path / "copy.star")) == 6, proc.stdout


# ----------------------------------------------------------------------------- bad input


def test_bad_defocus_is_rejected(tmp_path):
    for bad in (np.nan, -100.0):
        b = _relion30_block()
        b.loc[2, "rlnDefocusU"] = bad
        write_star_blocks(tmp_path / "p.star", {"images": b})
        with pytest.raises(InputError, match="defocus_u_a"):
            read_particles(tmp_path / "p.star")


def test_zero_pixel_size_is_rejected(tmp_path):
    b = _relion30_block()
    b["rlnMagnification"] = np.inf
    write_star_blocks(tmp_path / "p.star", {"images": b})
    with pytest.raises(InputError, match="pixel size"):
        read_particles(tmp_path / "p.star")


def test_table_from_records_requires_named_fields():
    t = particles_from_cs(np.zeros(2, dtype=[("uid", "u8"), ("ctf/df1_A", "f4"), ("ctf/df2_A", "f4")]))
    assert isinstance(t, ParticleTable) and len(particles_to_cs(t)) == 2


def test_pose_to_euler_closed_form_matches_scipy():
    from scipy.spatial.transform import Rotation

    from cryobox.io.cryosparc import _euler_from_pose, _pose_from_euler

    rng = np.random.default_rng(7)
    pose = Rotation.random(2000, random_state=7).as_rotvec() * rng.choice([1.0, -1.0], (2000, 1))
    pose[:3] = [[0, 0, 0], [0, 0, 1.0], [np.pi, 0, 0]]  # identity, tilt 0 and tilt 180: the degenerate rows
    eul = _euler_from_pose(pose)
    expected = Rotation.from_rotvec(-pose)
    got = Rotation.from_euler("ZYZ", eul, degrees=True)
    assert np.all((expected.inv() * got).magnitude() < 1e-6)
    assert np.all((eul[:, 1] >= 0) & (eul[:, 1] <= 180))
    back = Rotation.from_rotvec(_pose_from_euler(eul[:, 0], eul[:, 1], eul[:, 2]))
    assert np.all((Rotation.from_rotvec(pose).inv() * back).magnitude() < 1e-6)


def test_relion_matrix_is_expmap_of_pose():
    """The convention: RELION's A(rot, tilt, psi) (Euler_angles2matrix) equals expmap(pose)."""
    from scipy.spatial.transform import Rotation

    from cryobox.io.cryosparc import _euler_from_pose

    rot, tilt, psi = np.deg2rad([30.0, 50.0, -70.0])

    def relion_matrix(a, b, g):  # RELION's Euler_angles2matrix, written out
        ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
        cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
        return np.array(
            [
                [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
                [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
                [sc, ss, cb],
            ]
        )

    pose = Rotation.from_matrix(relion_matrix(rot, tilt, psi)).as_rotvec()
    np.testing.assert_allclose(_euler_from_pose(pose[None])[0], [30.0, 50.0, -70.0], atol=1e-6)


def test_fixed_bytes_factorisation_matches_pandas():
    from cryobox.io.cryosparc import _factorize_fixed_bytes, _str_column

    rng = np.random.default_rng(2)
    names = np.array([f"J{i}/extract/mic_{i:05d}_particles.mrc".encode() for i in range(300)], dtype="S41")
    values = names[rng.integers(0, 300, 5000)]
    codes, uniques = _factorize_fixed_bytes(values)
    np.testing.assert_array_equal(uniques[codes], values)
    assert len(uniques) == len(set(values.tolist()))
    cat = _str_column(np.array([b">a/b.mrc", b"a/b.mrc", b"c.mrc"], dtype="S8"), strip_prefix=">")
    assert list(cat) == ["a/b.mrc", "a/b.mrc", "c.mrc"] and len(cat.categories) == 2


def test_mrc_reader_on_real_sloppy_files():
    """Real headers are sloppy: the EMDB map has a pre-MRC2014 header and a non-zero origin, the
    RELION stack lacks the MAP id and machine stamp. Both are read (permissively, with warnings)."""
    import warnings

    from cryobox.io.mrc import read_mrc, read_mrc_header_shape

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vol, px = read_mrc(real_file("EMD-3197.map"))
        stack, spx = read_mrc(real_file("relion31.mrcs"))
    assert vol.shape == (20, 20, 20) and px == pytest.approx(11.4, rel=1e-3)
    assert stack.shape == (5, 256, 256) and stack.dtype == np.float32
    assert read_mrc_header_shape(real_file("relion31.mrcs")) == (256, 256)


def test_mrc_write_is_atomic_and_keeps_pixel_size(tmp_path):
    from cryobox.io.mrc import read_mrc, write_mrc

    data = np.arange(2 * 9 * 9, dtype=np.float64).reshape(2, 9, 9)
    write_mrc(tmp_path / "s.mrcs", data, pixel_size_a=1.06)
    back, px = read_mrc(tmp_path / "s.mrcs")
    np.testing.assert_array_equal(back, data.astype(np.float32))
    assert px == pytest.approx(1.06)
    # no temporary file left behind; the ledger names what cryobox wrote
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cryobox-written.jsonl", "s.mrcs"]
    with pytest.raises(ValueError):
        write_mrc(tmp_path / "t.mrc", data, pixel_size_a=0)
    assert not (tmp_path / "t.mrc").exists()


COORDS_RELION = """
# version 30001

data_

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnClassNumber #3
_rlnAutopickFigureOfMerit #4
_rlnAnglePsi #5
  1022.500000   376.000000            0     1.234500  -999.00000
   -12.250000  4100.750000            0    -0.500000  -999.00000
# a comment between rows
 3.0e2  7.5E+01 1 2 3
"""


def test_numeric_loop_fast_path_matches_starfile(tmp_path):
    """The coordinate-file fast path gives what starfile gives, column by column."""
    path = tmp_path / "mic_autopick.star"
    path.write_text(COORDS_RELION)
    fast = read_numeric_loop(path)
    ref = read_star_blocks(path)[""]
    assert list(fast) == list(ref.columns)
    for col in ref.columns:
        np.testing.assert_array_equal(fast[col], ref[col].to_numpy(float), err_msg=col)
    # what cryobox writes (shortest exact floats) reads back exactly
    xy = np.random.default_rng(0).uniform(0, 4096, size=(50, 2))
    write_star_blocks(
        tmp_path / "ours.star", {"": pd.DataFrame({"rlnCoordinateX": xy[:, 0], "rlnCoordinateY": xy[:, 1]})}
    )
    ours = read_numeric_loop(tmp_path / "ours.star")
    np.testing.assert_array_equal(np.stack([ours["rlnCoordinateX"], ours["rlnCoordinateY"]], 1), xy)
    # an empty loop: empty columns
    (tmp_path / "empty.star").write_text("data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n")
    empty = read_numeric_loop(tmp_path / "empty.star")
    assert empty["rlnCoordinateX"].size == 0 and empty["rlnCoordinateY"].size == 0


@pytest.mark.parametrize(
    "text",
    [
        'data_\nloop_\n_rlnCoordinateX #1\n_rlnMicrographName #2\n1.0 "a b.mrc"\n',  # text in the loop
        "data_optics\nloop_\n_rlnOpticsGroup #1\n1\n\ndata_particles\nloop_\n_rlnCoordinateX #1\n2.0\n",  # two blocks
        "data_general\n_rlnFinalResolution 3.5\n",  # key-value pairs, no loop
        "data_\n_rlnSomething 1\nloop_\n_rlnCoordinateX #1\n2.0\n",  # pairs before the loop
        "data_\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1.0 2.0 3.0\n",  # ragged rows
    ],
)
def test_numeric_loop_fast_path_declines_anything_else(tmp_path, text):
    path = tmp_path / "x.star"
    path.write_text(text)
    assert read_numeric_loop(path) is None


def test_numeric_loop_fast_path_declines_real_particle_files():
    for name in ("relion31.star", "relion5.star"):
        assert read_numeric_loop(real_file(name)) is None
