"""The bad-input corpus: every command, fed broken, odd or impossible files and values, stops with
exit status 2 and one sentence that names the file (or flag), the field and the fix; no traceback;
every input byte-identical afterwards.

The cases are built as a matrix (each kind of bad particle file x each command that reads particle
files, each kind of bad map x each command that reads maps, ...) so that a new command or a new kind
of damage is one line. They run in-process (typer's CliRunner) to keep the suite fast; the
subprocess path (exit status, stderr) is covered by tests/test_bad_values.py.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cryobox.cli.main import app
from cryobox.io.mrc import write_mrc
from cryobox.io.star import write_star_blocks

BOX = 32
PX = 4.0

# ---------------------------------------------------------------------------------------------
# files


def _good_particles(n: int = 4, **change) -> dict:
    optics = {
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnImagePixelSize": [PX],
        "rlnImageSize": [BOX],
        "rlnImageDimensionality": [2],
        "rlnVoltage": [300.0],
        "rlnSphericalAberration": [2.7],
        "rlnAmplitudeContrast": [0.1],
    }
    parts = {
        "rlnImageName": [f"{i:06d}@stack.mrcs" for i in range(1, n + 1)],
        "rlnMicrographName": ["mic.mrc"] * n,
        "rlnCoordinateX": [100.0 + 10 * i for i in range(n)],
        "rlnCoordinateY": [120.0] * n,
        "rlnDefocusU": [20000.0] * n,
        "rlnDefocusV": [19000.0] * n,
        "rlnDefocusAngle": [10.0] * n,
        "rlnAngleRot": [10.0 * i for i in range(n)],
        "rlnAngleTilt": [90.0] * n,
        "rlnAnglePsi": [0.0] * n,
        "rlnOriginXAngst": [0.0] * n,
        "rlnOriginYAngst": [0.0] * n,
        "rlnRandomSubset": [1 + i % 2 for i in range(n)],
        "rlnOpticsGroup": [1] * n,
    }
    drop = change.pop("_drop", ())
    for k, v in change.items():
        (optics if k in optics and len(v) == 1 else parts)[k] = v
    for k in drop:
        optics.pop(k, None)
        parts.pop(k, None)
    return {"optics": pd.DataFrame(optics), "particles": pd.DataFrame(parts)}


def _star(path: Path, **change) -> None:
    write_star_blocks(path, _good_particles(**change))


def _mrc_bytes(data: np.ndarray, mode: int | None = None) -> bytes:
    """An MRC file's bytes written by hand, so that the header can lie."""
    nz, ny, nx = data.shape
    header = bytearray(1024)
    struct.pack_into("<3i", header, 0, nx, ny, nz)
    struct.pack_into("<i", header, 12, 2 if mode is None else mode)
    struct.pack_into("<3i", header, 28, nx, ny, nz)
    struct.pack_into("<3f", header, 40, nx * PX, ny * PX, nz * PX)
    struct.pack_into("<3f", header, 52, 90.0, 90.0, 90.0)
    struct.pack_into("<3i", header, 64, 1, 2, 3)
    header[208:212] = b"MAP "
    header[212:216] = bytes([0x44, 0x44, 0, 0])
    return bytes(header) + data.astype(np.float32).tobytes()


def build_folder(root: Path) -> Path:
    rng = np.random.default_rng(7)
    half = rng.standard_normal((BOX, BOX, BOX)).astype(np.float32)
    write_mrc(root / "h1.mrc", half, pixel_size_a=PX)
    write_mrc(root / "h2.mrc", half + rng.standard_normal(half.shape).astype(np.float32), pixel_size_a=PX)
    write_mrc(root / "stack.mrcs", rng.standard_normal((4, BOX, BOX)).astype(np.float32), pixel_size_a=PX)
    write_mrc(root / "mic.mrc", rng.standard_normal((1, 400, 400)).astype(np.float32)[0], pixel_size_a=PX)
    _star(root / "good.star")
    _star(root / "particles.star")
    _star(root / "stacks_only.star", _drop=("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY"))

    # particle files, each with one defect
    (root / "folder.star").mkdir()
    (root / "empty.star").write_bytes(b"")
    (root / "random.star").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    text = (root / "good.star").read_text()
    (root / "truncated.star").write_text(text[: text.index("data_particles") + 40])
    write_star_blocks(root / "optics_only.star", {"optics": _good_particles()["optics"]})
    _star(root / "no_defocus.star", _drop=("rlnDefocusU",))
    _star(root / "no_image.star", _drop=("rlnImageName",))
    _star(root / "no_poses.star", _drop=("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"))
    _star(root / "nan_defocus.star", rlnDefocusU=[20000.0, np.nan, 20000.0, 20000.0])
    _star(root / "neg_defocus.star", rlnDefocusU=[20000.0, -5.0, 20000.0, 20000.0])
    _star(root / "amp1.star", rlnAmplitudeContrast=[1.0])
    _star(root / "px0.star", rlnImagePixelSize=[0.0])
    _star(root / "kv0.star", rlnVoltage=[0.0])
    _star(root / "box0.star", rlnImageSize=[0])
    _star(root / "text_defocus.star", rlnDefocusU=["20000", "abc", "20000", "20000"])
    _star(root / "bad_group.star", rlnOpticsGroup=[1, 2, 1, 1])
    _star(root / "index0.star", rlnImageName=["000000@stack.mrcs"] + [f"{i:06d}@stack.mrcs" for i in (2, 3, 4)])
    _star(root / "missing_stack.star", rlnImageName=[f"{i:06d}@nowhere.mrcs" for i in (1, 2, 3, 4)])
    _star(root / "beyond_stack.star", rlnImageName=[f"{i:06d}@stack.mrcs" for i in (1, 2, 3, 9)])
    (root / "dup_label.star").write_text("data_particles\nloop_\n_rlnDefocusU #1\n_rlnDefocusU #2\n1 2\n")
    (root / "particles.txt").write_text("not a particle file\n")
    (root / "random.cs").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    np.save(root / "nofields.npy", np.zeros(3, dtype=[("uid", "u8"), ("foo", "f4")]))
    (root / "nofields.npy").rename(root / "nofields.cs")
    # zero rows with every field an Extract job writes (cryosparc-tools' own test dataset is such a file)
    fields = [("uid", "u8"), ("blob/path", "S64"), ("blob/idx", "u4"), ("blob/shape", "u4", (2,))]
    fields += [(f, "f4") for f in ("blob/psize_A", "ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad", "ctf/accel_kv")]
    fields += [("ctf/cs_mm", "f4"), ("ctf/amp_contrast", "f4"), ("location/micrograph_shape", "u4", (2,))]
    np.save(root / "zero_rows.npy", np.zeros(0, dtype=fields))
    (root / "zero_rows.npy").rename(root / "zero_rows.cs")
    text = (root / "good.star").read_text()
    head, loop = text.split("data_particles", 1)
    (root / "zero_rows.star").write_text(
        head
        + "data_particles"
        + "\n".join(ln for ln in loop.split("\n") if not ln.strip() or ln.startswith(("_", "loop_")))
    )

    # particles whose micrographs are damaged (extract reads them)
    for name in ("random", "truncated", "mode9", "absent"):
        _star(root / f"mic_{name}.star", rlnMicrographName=[f"{name}.mrc"] * 4)

    # maps, each with one defect
    (root / "folder.mrc").mkdir()
    (root / "empty.mrc").write_bytes(b"")
    (root / "random.mrc").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "truncated.mrc").write_bytes((root / "h1.mrc").read_bytes()[:-1000])
    (root / "mode9.mrc").write_bytes(_mrc_bytes(half, mode=9))
    big = _mrc_bytes(half)
    (root / "small_header.mrc").write_bytes(big + b"\0" * 4096)
    nan = half.copy()
    nan[1, 2, 3] = np.nan
    write_mrc(root / "nan.mrc", nan, pixel_size_a=PX)
    inf = half.copy()
    inf[1, 2, 3] = np.inf
    write_mrc(root / "inf.mrc", inf, pixel_size_a=PX)
    write_mrc(root / "zero.mrc", np.zeros_like(half), pixel_size_a=PX)
    write_mrc(root / "flat.mrc", np.full_like(half, 2.5), pixel_size_a=PX)
    write_mrc(root / "flat2d.mrc", rng.standard_normal((BOX, BOX)).astype(np.float32), pixel_size_a=PX)
    write_mrc(root / "other_box.mrc", rng.standard_normal((BOX + 2,) * 3).astype(np.float32), pixel_size_a=PX)
    write_mrc(root / "other_px.mrc", half, pixel_size_a=2 * PX)
    write_mrc(root / "nonsquare.mrc", rng.standard_normal((BOX, BOX, BOX + 4)).astype(np.float32), pixel_size_a=PX)
    (root / "px0.mrc").write_bytes(_mrc_bytes(half)[:40] + b"\0" * 12 + _mrc_bytes(half)[52:])

    # FSC curves
    (root / "fsc_empty.json").write_text("{}")
    (root / "fsc_bad.json").write_text("{not json")
    (root / "fsc_text.txt").write_text("shell fsc\n0 1\n1 abc\n")
    (root / "fsc_short.txt").write_text("0 1\n")
    return root


# ---------------------------------------------------------------------------------------------
# cases: (command line, words the message must hold)

# a bad particle file and what its message must name: the file, the field, the fix
PARTICLE_FILES = {
    "missing": ("absent.star", ["absent.star"]),
    "a folder": ("folder.star", ["folder.star", "is a folder"]),
    "empty": ("empty.star", ["empty.star"]),
    "random bytes": ("random.star", ["random.star"]),
    "cut short": ("truncated.star", ["truncated.star"]),
    "optics only": ("optics_only.star", ["optics_only.star", "particles"]),
    "no defocus": ("no_defocus.star", ["no_defocus.star", "rlnDefocusU"]),
    "NaN defocus": ("nan_defocus.star", ["nan_defocus.star", "rlnDefocusU", "row"]),
    "negative defocus": ("neg_defocus.star", ["neg_defocus.star", "rlnDefocusU"]),
    "amplitude contrast 1": ("amp1.star", ["amp1.star", "rlnAmplitudeContrast"]),
    "pixel size 0": ("px0.star", ["px0.star", "rlnImagePixelSize"]),
    "voltage 0": ("kv0.star", ["kv0.star", "rlnVoltage"]),
    "text in a number": ("text_defocus.star", ["text_defocus.star", "rlnDefocusU", "abc"]),
    "unknown optics group": ("bad_group.star", ["bad_group.star", "rlnOpticsGroup", "2"]),
    "duplicated label": ("dup_label.star", ["dup_label.star", "rlnDefocusU", "twice"]),
    "unknown format": ("particles.txt", ["particles.txt", ".star", ".cs"]),
    "random .cs": ("random.cs", ["random.cs"]),
    ".cs without CTF": ("nofields.cs", ["nofields.cs", "cryoSPARC"]),
    "zero rows .cs": ("zero_rows.cs", ["zero_rows.cs", "0 particles"]),
    "zero rows .star": ("zero_rows.star", ["zero_rows.star", "0 particles"]),
}

SWEEP = ["sweep", "--dry-run", "--reference", "h1.mrc", "--particle-diameter", 60]

# commands reading one particle file; {P} is the file
PARTICLE_COMMANDS = {
    "inspect": ["inspect", "{P}"],
    "advise": ["advise", "{P}", "--diameter", 100, "--resolution", 10],
    "ctf": ["ctf", "--from", "{P}"],
    "restack": ["restack", "{P}", "--box", 24, "--out", "out_restack"],
    "reconstruct": ["reconstruct", "{P}", "--out", "out_rec"],
    "report": ["report", "{P}", "--diameter", 100, "--resolution", 10, "--out", "out_report.html"],
    "sweep": SWEEP + ["{P}", "--boxes", "24,32", "--out", "out_sweep"],
}

# defects that only the commands reading images see
IMAGE_FILES = {
    "no image name": ("no_image.star", ["no_image.star", "rlnImageName"]),
    "image number 0": ("index0.star", ["index0.star", "000000@", "000001@"]),
    "stack absent": ("missing_stack.star", ["nowhere.mrcs"]),
    "image beyond the stack": ("beyond_stack.star", ["stack.mrcs", "9"]),
}
IMAGE_COMMANDS = ("restack", "reconstruct")

MAP_FILES = {
    "missing": ("absent.mrc", ["absent.mrc"]),
    "a folder": ("folder.mrc", ["folder.mrc", "folder"]),
    "empty": ("empty.mrc", ["empty.mrc"]),
    "random bytes": ("random.mrc", ["random.mrc", "MRC"]),
    "cut short": ("truncated.mrc", ["truncated.mrc", "bytes"]),
    "unsupported mode": ("mode9.mrc", ["mode9.mrc", "mode 9"]),
    "header smaller than the data": ("small_header.mrc", ["small_header.mrc", "header"]),
    "NaN": ("nan.mrc", ["nan.mrc", "NaN"]),
    "inf": ("inf.mrc", ["inf.mrc"]),
    "all zero": ("zero.mrc", ["zero.mrc", "constant"]),
    "constant": ("flat.mrc", ["flat.mrc", "constant"]),
    "2D image": ("flat2d.mrc", ["flat2d.mrc", "3D"]),
    "not cubic": ("nonsquare.mrc", ["nonsquare.mrc"]),
}

MAP_COMMANDS = {
    "fsc half 1": ["fsc", "{M}", "h2.mrc"],
    "fsc half 2": ["fsc", "h1.mrc", "{M}"],
    "fsc mask": ["fsc", "h1.mrc", "h2.mrc", "--mask", "{M}"],
    "filter": ["filter", "{M}", "--lowpass", 12, "--out", "out_filter.mrc"],
    "resample": ["resample", "{M}", "--to-pixel-size", 5, "--out", "out_resample.mrc"],
    "judge": ["judge", "a={M}:h2.mrc", "b=h1.mrc:h2.mrc", "--out", "out_judge"],
    "diagnose": ["diagnose", "{M}", "h2.mrc", "--out", "out_diagnose"],
}
# a mask that is all zero or constant is a user's choice to refuse differently; these words apply
MASK_WORDS = {"all zero": ["zero.mrc", "mask"], "constant": ["flat.mrc", "mask"], "2D image": ["flat2d.mrc"]}

FSC_FILES = {
    "missing": ("absent.json", ["absent.json"]),
    "empty JSON": ("fsc_empty.json", ["fsc_empty.json"]),
    "not JSON": ("fsc_bad.json", ["fsc_bad.json"]),
    "text in a number": ("fsc_text.txt", ["fsc_text.txt"]),
    "one shell": ("fsc_short.txt", ["fsc_short.txt"]),
    "a map": ("h1.mrc", ["h1.mrc", "binary"]),
}
FSC_COMMANDS = {
    "compare": ["compare", "{F}@32:4", "h1.mrc:h2.mrc"],
    "report --fsc": [
        "report",
        "good.star",
        "--diameter",
        100,
        "--resolution",
        10,
        "--fsc",
        "{F}@32:4",
        "--out",
        "out_report.html",
    ],
}

# values and flags, one per command at least
VALUES = {
    "advise diameter 0": (["advise", "good.star", "--diameter", 0, "--resolution", 10], ["--diameter"]),
    "advise resolution negative": (["advise", "good.star", "--diameter", 100, "--resolution", -3], ["--resolution"]),
    "advise boxes text": (
        ["advise", "good.star", "--diameter", 100, "--resolution", 10, "--boxes", "280,abc"],
        ["--boxes", "abc"],
    ),
    "advise boxes 0": (["advise", "good.star", "--diameter", 100, "--resolution", 10, "--boxes", "0"], ["--boxes"]),
    "advise no input": (["advise", "--diameter", 100, "--resolution", 10], ["--example"]),
    "advise plot extension": (
        ["advise", "good.star", "--diameter", 100, "--resolution", 10, "--plot", "x.tiff"],
        ["--plot", ".png"],
    ),
    "inspect plot extension": (["inspect", "good.star", "--plot", "x.doc"], ["--plot", ".png"]),
    "ctf box 0": (["ctf", "--box", 0, "--pixel-size", 1, "--defocus-u", 2e4, "--voltage", 300, "--cs", 2.7], ["--box"]),
    "ctf pixel size 0": (
        ["ctf", "--box", 64, "--pixel-size", 0, "--defocus-u", 2e4, "--voltage", 300, "--cs", 2.7],
        ["--pixel-size"],
    ),
    "ctf negative voltage": (
        ["ctf", "--box", 64, "--pixel-size", 1, "--defocus-u", 2e4, "--voltage", -300, "--cs", 2.7],
        ["--voltage"],
    ),
    "ctf amplitude contrast 1": (
        ["ctf", "--box", 64, "--pixel-size", 1, "--defocus-u", 2e4, "--voltage", 300, "--cs", 2.7, "--amp-contrast", 1],
        ["--amp-contrast"],
    ),
    "ctf no defocus": (["ctf", "--box", 64, "--pixel-size", 1, "--voltage", 300, "--cs", 2.7], ["--defocus-u"]),
    "ctf huge box": (
        ["ctf", "--box", 200000, "--pixel-size", 1, "--defocus-u", 2e4, "--voltage", 300, "--cs", 2.7],
        ["GiB"],
    ),
    "ctf percentile 150": (["ctf", "--from", "good.star", "--percentile", 150], ["--percentile"]),
    "ctf out extension": (
        ["ctf", "--box", 64, "--pixel-size", 1, "--defocus-u", 2e4, "--voltage", 300, "--cs", 2.7, "--out", "c.bmp2"],
        ["--out", ".png"],
    ),
    "restack box 0": (["restack", "good.star", "--box", 0, "--out", "o"], ["--box"]),
    "restack rescale 0": (["restack", "good.star", "--box", 24, "--rescale", 0, "--out", "o"], ["--rescale"]),
    "restack out is input folder": (["restack", "particles.star", "--box", 24, "--out", "."], ["particles.star"]),
    "restack bg radius negative": (
        ["restack", "good.star", "--box", 24, "--bg-radius", -3, "--out", "o"],
        ["--bg-radius"],
    ),
    "restack out with space": (["restack", "good.star", "--box", 24, "--out", "my run"], ["my run"]),
    "extract a map": (["extract", "h1.mrc", "--box", 24, "--out", "o"], ["h1.mrc"]),
    "extract box 0": (["extract", "good.star", "--box", 0, "--out", "o"], ["--box"]),
    "extract bg radius negative": (
        ["extract", "good.star", "--box", 24, "--bg-radius", -3, "--out", "o"],
        ["--bg-radius"],
    ),
    "extract missing": (["extract", "absent.star", "--box", 24, "--out", "o"], ["absent.star"]),
    "extract random bytes": (["extract", "random.star", "--box", 24, "--out", "o"], ["random.star"]),
    "extract folder": (["extract", "folder.star", "--box", 24, "--out", "o"], ["folder.star"]),
    "extract micrograph of random bytes": (
        ["extract", "mic_random.star", "--box", 24, "--out", "o"],
        ["random.mrc", "not an MRC file"],
    ),
    "extract micrograph cut short": (
        ["extract", "mic_truncated.star", "--box", 24, "--out", "o"],
        ["truncated.mrc", "bytes", "cut short"],
    ),
    "extract micrograph mode 9": (["extract", "mic_mode9.star", "--box", 24, "--out", "o"], ["mode9.mrc", "mode 9"]),
    "extract micrograph absent": (
        ["extract", "mic_absent.star", "--box", 24, "--out", "o"],
        ["absent.mrc", "rlnMicrographName"],
    ),
    "simulate box 0": (["simulate", "--out", "s", "--stack", "--n", 4, "--box", 0], ["--box"]),
    "simulate micrographs 0": (["simulate", "--out", "s", "--micrographs", 0], ["--micrographs"]),
    "simulate pixel size negative": (["simulate", "--out", "s", "--pixel-size", -1], ["--pixel-size"]),
    "simulate size text": (["simulate", "--out", "s", "--size", "big"], ["--size"]),
    "simulate map absent": (["simulate", "--out", "s", "--map", "absent.mrc"], ["absent.mrc"]),
    "simulate map random": (["simulate", "--out", "s", "--map", "random.mrc"], ["random.mrc"]),
    "simulate out is a file": (["simulate", "--out", "h1.mrc/sub"], ["h1.mrc"]),
    "example out is a file": (["example", "--out", "h1.mrc/sub"], ["h1.mrc"]),
    "fsc mask and auto mask": (["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask", "h1.mrc"], ["--mask"]),
    "fsc pixel size 0": (["fsc", "h1.mrc", "h2.mrc", "--pixel-size", 0], ["--pixel-size"]),
    "fsc other box": (["fsc", "h1.mrc", "other_box.mrc"], ["other_box.mrc", "32"]),
    "fsc other pixel size": (["fsc", "h1.mrc", "other_px.mrc"], ["other_px.mrc", "Å"]),
    "fsc mask other box": (["fsc", "h1.mrc", "h2.mrc", "--mask", "other_box.mrc"], ["other_box.mrc"]),
    "fsc header pixel size 0": (["fsc", "px0.mrc", "h2.mrc"], ["px0.mrc", "--pixel-size"]),
    "fsc mask-out is half 1": (
        ["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "h1.mrc"],
        ["h1.mrc", "--mask-out"],
    ),
    "fsc mask-out is a folder": (
        ["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "folder.mrc"],
        ["folder.mrc", "--mask-out", "is a folder"],
    ),
    "filter out is a folder": (["filter", "h1.mrc", "--lowpass", 10, "--out", "folder.mrc"], ["folder.mrc", "--out"]),
    "resample out is a folder": (["resample", "h1.mrc", "--box", 24, "--out", "folder.mrc"], ["folder.mrc", "--out"]),
    "report out is a folder": (
        ["report", "good.star", "--diameter", 100, "--resolution", 10, "--out", "folder.mrc"],
        ["folder.mrc", "--out", "is a folder"],
    ),
    "fsc randomise at 0": (["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--randomise-at", 0], ["--randomise-at"]),
    "fsc randomise beyond Nyquist": (
        ["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--randomise-at", 5],
        ["Nyquist"],
    ),
    "fsc plot extension": (["fsc", "h1.mrc", "h2.mrc", "--plot", "f.gif9"], ["--plot"]),
    "filter no operation": (["filter", "h1.mrc", "--out", "f.mrc"], ["--lowpass"]),
    "filter lowpass 0": (["filter", "h1.mrc", "--lowpass", 0, "--out", "f.mrc"], ["--lowpass"]),
    "filter bfactor huge": (["filter", "h1.mrc", "--bfactor", -100000, "--out", "f.mrc"], ["--bfactor"]),
    "filter out is input": (["filter", "h1.mrc", "--lowpass", 12, "--out", "h1.mrc"], ["h1.mrc", "--out"]),
    "filter mask other box": (
        ["filter", "h1.mrc", "--lowpass", 12, "--mask", "other_box.mrc", "--out", "f.mrc"],
        ["other_box.mrc"],
    ),
    "resample pixel size 0": (["resample", "h1.mrc", "--to-pixel-size", 0, "--out", "r.mrc"], ["--to-pixel-size"]),
    "resample huge": (["resample", "h1.mrc", "--to-pixel-size", 0.01, "--out", "r.mrc"], ["GiB"]),
    "resample box 0": (["resample", "h1.mrc", "--box", 0, "--out", "r.mrc"], ["--box"]),
    "resample out is input": (["resample", "h1.mrc", "--to-pixel-size", 5, "--out", "h1.mrc"], ["h1.mrc", "--out"]),
    "reconstruct padding 3": (["reconstruct", "good.star", "--padding", 3, "--out", "o"], ["--padding"]),
    "reconstruct no poses": (
        ["reconstruct", "no_defocus.star", "--out", "o"],
        ["no_defocus.star", "rlnDefocusU"],
    ),
    "compare nothing": (["compare"], ["runs"]),
    "compare box contradicts shells": (["compare", "fsc32.json@576:1.06"], ["576"]),
    "compare plot extension": (["compare", "fsc32.json@32:4", "--plot", "c.txt"], ["--plot"]),
    "compare bad run spec": (["compare", "fsc32.json@abc"], ["abc", "@280"]),
    "sweep box twice": (SWEEP + ["good.star", "--boxes", "32,32", "--out", "o"], ["--boxes"]),
    "sweep box larger than the stacks": (SWEEP + ["stacks_only.star", "--boxes", "24,48", "--out", "o"], ["48"]),
    "sweep repeats 0": (SWEEP + ["good.star", "--boxes", "24,32", "--repeats", 0, "--out", "o"], ["--repeats"]),
    "sweep reference 2D": (
        SWEEP[:3] + ["flat2d.mrc"] + SWEEP[4:] + ["good.star", "--boxes", "24,32", "--out", "o"],
        ["flat2d.mrc"],
    ),
    "sweep reference absent": (
        SWEEP[:3] + ["absent.mrc"] + SWEEP[4:] + ["good.star", "--boxes", "24,32", "--out", "o"],
        ["absent.mrc"],
    ),
    "sweep mask larger than a box": (
        ["sweep", "--dry-run", "--reference", "h1.mrc", "--particle-diameter", 200, "good.star", "--boxes", "24,32"]
        + ["--out", "o"],
        ["--particle-diameter"],
    ),
    "judge no equals": (["judge", "h1.mrc:h2.mrc", "b=h1.mrc:h2.mrc", "--out", "o"], ["="]),
    "judge run absent": (["judge", "a=absent_folder", "b=h1.mrc:h2.mrc", "--out", "o"], ["absent_folder"]),
    "judge other pixel size": (
        ["judge", "a=other_px.mrc:other_px.mrc", "b=h1.mrc:h2.mrc", "--out", "o"],
        ["--resample"],
    ),
    "judge out is input": (["judge", "a=h1.mrc:h2.mrc", "b=h1.mrc:h2.mrc", "--out", "h1.mrc"], ["h1.mrc"]),
    "report no out": (["report", "good.star", "--diameter", 100, "--resolution", 10], ["--out"]),
    "report sweep absent": (
        ["report", "good.star", "--diameter", 100, "--resolution", 10, "--sweep", "nosweep", "--out", "r.html"],
        ["nosweep"],
    ),
    "report judge absent": (
        ["report", "good.star", "--diameter", 100, "--resolution", 10, "--judge", "nojudge", "--out", "r.html"],
        ["nojudge"],
    ),
    "report out is input": (
        ["report", "good.star", "--diameter", 100, "--resolution", 10, "--out", "good.star"],
        ["good.star", "--out"],
    ),
    "demo out is a file": (["demo", "--out", "h1.mrc/sub"], ["h1.mrc"]),
    "diagnose directions 3": (["diagnose", "h1.mrc", "h2.mrc", "--directions", 3, "--out", "o"], ["--directions"]),
    "diagnose cone angle 0": (["diagnose", "h1.mrc", "h2.mrc", "--cone-angle", 0, "--out", "o"], ["--cone-angle"]),
    "diagnose particles without poses": (
        ["diagnose", "h1.mrc", "h2.mrc", "--particles", "no_poses.star", "--out", "o"],
        ["no_poses.star", "rlnAngleRot"],
    ),
    "diagnose particles absent": (
        ["diagnose", "h1.mrc", "h2.mrc", "--particles", "absent.star", "--out", "o"],
        ["absent.star"],
    ),
    "diagnose out is input": (["diagnose", "h1.mrc", "h2.mrc", "--out", "h1.mrc"], ["h1.mrc"]),
    "demo out with space": (["demo", "--quick", "--out", "my demo"], ["my demo"]),
    "simulate out with space": (["simulate", "--out", "my sim", "--micrographs", 1], ["my sim"]),
    "sweep out with space": (SWEEP + ["good.star", "--boxes", "24,32", "--out", "my sweep"], ["my sweep"]),
}


# what a command accepts on purpose: inspect summarises files without CTF (picks, selections);
# filter and resample take 2D images, and constant or zero maps are valid (if dull) input there
ACCEPTED = {
    "inspect": {"no defocus", ".cs without CTF", "zero rows .cs", "zero rows .star"},  # reports 0 particles
    "restack": {"no defocus"},  # windowing needs no CTF (premultiplying does, tested below)
    "filter": {"2D image", "all zero", "constant"},
    "resample": {"2D image", "all zero", "constant"},
}


def _cases() -> list:
    cases = []
    for cmd, argv in PARTICLE_COMMANDS.items():
        for kind, (name, words) in PARTICLE_FILES.items():
            if kind in ACCEPTED.get(cmd, ()):
                continue
            cases.append((f"{cmd}: {kind}", [name if a == "{P}" else a for a in argv], words))
        if cmd in IMAGE_COMMANDS:
            for kind, (name, words) in IMAGE_FILES.items():
                cases.append((f"{cmd}: {kind}", [name if a == "{P}" else a for a in argv], words))
    for cmd, argv in MAP_COMMANDS.items():
        for kind, (name, words) in MAP_FILES.items():
            if kind in ACCEPTED.get(cmd, ()):
                continue
            if cmd == "fsc mask":
                words = MASK_WORDS.get(kind, words)
            cases.append((f"{cmd}: {kind}", [a.replace("{M}", name) if isinstance(a, str) else a for a in argv], words))
    for cmd, argv in FSC_COMMANDS.items():
        for kind, (name, words) in FSC_FILES.items():
            cases.append((f"{cmd}: {kind}", [a.replace("{F}", name) if isinstance(a, str) else a for a in argv], words))
    for case, (argv, words) in VALUES.items():
        cases.append((case, argv, words))
    return cases


CASES = _cases()


def digest(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _folders(root: Path, files) -> list:
    keep = {root / "folder.star", root / "folder.mrc"}
    for name in files:
        keep.update((root / name).parents)
    return sorted(keep)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = build_folder(tmp_path_factory.mktemp("corpus"))
    fsc = CliRunner().invoke(app, ["fsc", str(root / "h1.mrc"), str(root / "h2.mrc"), "--json"])
    assert fsc.exit_code == 0, fsc.output
    (root / "fsc32.json").write_text(fsc.stdout)
    return root


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 150, len(CASES)
    commands = {argv[0] for _, argv, _ in CASES}
    assert commands >= {
        "advise",
        "inspect",
        "ctf",
        "example",
        "extract",
        "restack",
        "simulate",
        "fsc",
        "compare",
        "filter",
        "resample",
        "reconstruct",
        "sweep",
        "judge",
        "report",
        "demo",
        "diagnose",
    }


@pytest.mark.parametrize("case,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_sentence(corpus, monkeypatch, case, argv, words):
    monkeypatch.chdir(corpus)
    before = digest(corpus)
    try:
        _check_case(corpus, before, case, argv, words)
    finally:
        for path in sorted(set(corpus.rglob("*")) - {corpus / p for p in before} - set(_folders(corpus, before))):
            if path.is_file():
                path.unlink()


def _check_case(corpus, before, case, argv, words):
    result = CliRunner().invoke(app, [str(a) for a in argv])
    message = result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"{case}: traceback {result.exception!r}\n{message}"
    )
    assert result.exit_code == 2, f"{case}: exit {result.exit_code}\n{result.output}"
    assert message.count("cryobox: error:") == 1 or "Usage:" in message, message
    lines = [line for line in message.strip().splitlines() if line.strip()]
    assert len(lines) <= 4, message  # one sentence (rich may wrap a long one), never a dump
    flat = " ".join(message.split())
    for word in words:
        assert word in flat, f"{case}: {word!r} not in {flat!r}"
    after = digest(corpus)
    assert {k: v for k, v in after.items() if k in before} == before, f"{case}: an input changed"
    written = sorted(set(after) - set(before))
    leftovers = [w for w in written if not w.endswith((".cryobox.lock", ".cryobox-run.json"))]
    assert not leftovers, f"{case}: a refused run wrote {written}"
