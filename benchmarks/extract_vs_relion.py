"""Benchmark: `cryobox extract` against relion_preprocess on the same generated micrographs.

Workload (issue 3): 8 micrographs of 4096 x 4096 float32, 300 coordinates each. RELION's best is
the faster of `relion_preprocess` and `mpirun -n 2 relion_preprocess_mpi`. Printed per case:
wall time and peak memory of each program, the ratio, and the target.
- norm + invert at box 256: cryobox <= 1/3 of RELION's best, and within 3x of the I/O floor
  (reading the micrographs and writing the same output bytes with plain file copies);
- premultiply 512 -> 256 + norm + invert: cryobox <= 1/2 of RELION's best;
- --premultiply-micrograph (+ norm + invert): >= 4x faster than RELION's best premultiply.
- restack 512 -> 256 with premultiply on 10,000 particles: particles/s.
The data live on a RAM disk (/dev/shm) when there is one, so both programs are measured rather
than this machine's disk (give --dir to choose).
Run:  python benchmarks/extract_vs_relion.py [--mics 8] [--size 4096] [--per-mic 300] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import measure


def make_data(work: Path, n_mics: int, size: int, per_mic: int) -> None:
    import mrcfile
    import pandas as pd

    from cryobox.io.star import write_star_blocks

    rng = np.random.default_rng(0)
    (work / "Pick").mkdir(parents=True, exist_ok=True)
    for i in range(n_mics):
        with mrcfile.new(work / f"mic{i:02d}.mrc", overwrite=True) as m:
            m.set_data(rng.standard_normal((size, size), dtype=np.float32))
            m.voxel_size = 1.06
        xy = rng.uniform(100, size - 100, size=(per_mic, 2))
        write_star_blocks(
            work / "Pick" / f"mic{i:02d}_pick.star",
            {"": pd.DataFrame({"rlnCoordinateX": xy[:, 0], "rlnCoordinateY": xy[:, 1]})},
        )
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnMicrographOriginalPixelSize": [1.06],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
            "rlnMicrographPixelSize": [1.06],
        }
    )
    df = rng.uniform(18000, 30000, n_mics)
    mics = pd.DataFrame(
        {
            "rlnMicrographName": [f"mic{i:02d}.mrc" for i in range(n_mics)],
            "rlnOpticsGroup": 1,
            "rlnDefocusU": df + 150,
            "rlnDefocusV": df - 150,
            "rlnDefocusAngle": rng.uniform(-90, 90, n_mics),
            "rlnCtfBfactor": 0.0,
            "rlnCtfScalefactor": 1.0,
            "rlnPhaseShift": 0.0,
        }
    )
    write_star_blocks(work / "micrographs.star", {"optics": optics, "micrographs": mics})


def io_floor(work: Path, n_mics: int, n_particles: int, box: int) -> float:
    """Read every micrograph and write as many bytes as the output stacks, with plain copies."""
    out = work / "floor"
    out.mkdir(exist_ok=True)
    t = time.perf_counter()
    per = n_particles // n_mics * box * box * 4
    for i in range(n_mics):
        data = (work / f"mic{i:02d}.mrc").read_bytes()
        (out / f"s{i}.mrcs").write_bytes(data[:per] if len(data) >= per else (data * (per // len(data) + 1))[:per])
    os.sync()
    el = time.perf_counter() - t
    shutil.rmtree(out)
    return el


def relion_best(work: Path, extra: list[str], tag: str) -> tuple[float, float, str]:
    base = [
        "--i",
        "micrographs.star",
        "--coord_dir",
        "Pick/",
        "--coord_suffix",
        "_pick.star",
        "--extract",
        "--extract_size",
        "256",
        *extra,
    ]
    serial, mem_s = measure(
        ["relion_preprocess", *base, "--part_star", f"r1_{tag}.star", "--part_dir", f"r1_{tag}/"], work
    )
    mpi_cmd = ["mpirun", "-n", "2"] + (["--allow-run-as-root"] if os.geteuid() == 0 else []) + ["relion_preprocess_mpi"]
    try:
        mpi, mem_m = measure([*mpi_cmd, *base, "--part_star", f"r2_{tag}.star", "--part_dir", f"r2_{tag}/"], work)
    except (SystemExit, subprocess.CalledProcessError):
        mpi, mem_m = float("inf"), 0.0
    for d in (f"r1_{tag}", f"r2_{tag}"):
        shutil.rmtree(work / d, ignore_errors=True)
    if mpi < serial:
        return mpi, mem_m, f"mpirun -n 2 relion_preprocess_mpi {mpi:.2f} s (serial {serial:.2f} s)"
    return serial, mem_s, f"relion_preprocess {serial:.2f} s (mpirun -n 2: {mpi:.2f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mics", type=int, default=8)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--per-mic", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="parent folder of the work folder",
    )
    ap.add_argument("--restack-particles", type=int, default=10_000)
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cryobox-extract-bench-", dir=args.dir))
    make_data(work, args.mics, args.size, args.per_mic)
    n = args.mics * args.per_mic
    floor = io_floor(work, args.mics, n, 256)
    ours = [
        sys.executable,
        "-m",
        "cryobox",
        "extract",
        "micrographs.star",
        "--coords-dir",
        "Pick",
        "--coords-suffix",
        "_pick.star",
        "--box",
        "256",
        "--json",
    ]
    print(
        f"{args.mics} micrographs of {args.size}^2 float32, {n} particles; I/O floor (read micrographs + write the "
        f"output bytes): {floor:.2f} s\n"
    )

    cases = [
        ("norm + invert, box 256", ["--invert"], ["--norm", "--bg_radius", "96", "--invert_contrast"], 1 / 3),
        (
            "premultiply 512->256 + norm + invert",
            ["--premultiply-box", "512", "--invert"],
            [
                "--premultiply_ctf",
                "--premultiply_extract_size",
                "512",
                "--norm",
                "--bg_radius",
                "96",
                "--invert_contrast",
            ],
            1 / 2,
        ),
    ]
    relion_premultiply = None
    for i, (name, our_args, rel_args, target) in enumerate(cases):
        rel, rel_mem, rel_note = relion_best(work, rel_args, f"c{i}")
        if "premultiply" in name:
            relion_premultiply = rel
        t, mem = measure([*ours, *our_args, "--out", f"o{i}", "--overwrite"], work)
        ratio = t / rel
        verdict = "met" if ratio <= target else "MISSED"
        line = (
            f"{name}: cryobox {t:.2f} s ({mem:.0f} MiB), RELION best {rel:.2f} s ({rel_mem:.0f} MiB) [{rel_note}]; "
            f"ratio {ratio:.3f} (target <= {target:.3f}: {verdict})"
        )
        if i == 0:
            line += f"; {t / floor:.2f}x the I/O floor (target <= 3: {'met' if t / floor <= 3 else 'MISSED'})"
        print(line)
        shutil.rmtree(work / f"o{i}", ignore_errors=True)
    t, mem = measure([*ours, "--premultiply-micrograph", "--invert", "--out", "o_pm", "--overwrite"], work)
    speedup = relion_premultiply / t
    print(
        f"--premultiply-micrograph + norm + invert: cryobox {t:.2f} s ({mem:.0f} MiB); {speedup:.2f}x faster than "
        "RELION's best premultiply "
        f"(target >= 4: {'met' if speedup >= 4 else 'MISSED'})"
    )
    shutil.rmtree(work / "o_pm", ignore_errors=True)
    # restack: premultiply 512 -> 256 on already-extracted particles
    n_re = args.restack_particles
    per = max(1, n_re // args.mics)
    make_data(work / "re", args.mics, args.size, per)
    assert (
        subprocess.run(
            [
                *ours[:3],
                "extract",
                "micrographs.star",
                "--coords-dir",
                "Pick",
                "--coords-suffix",
                "_pick.star",
                "--box",
                "512",
                "--no-norm",
                "--out",
                "big",
                "--json",
            ],
            cwd=work / "re",
            capture_output=True,
        ).returncode
        == 0
    )
    t, mem = measure(
        [
            sys.executable,
            "-m",
            "cryobox",
            "restack",
            "big/particles.star",
            "--premultiply",
            "--box",
            "256",
            "--norm",
            "--invert",
            "--out",
            "small",
            "--json",
        ],
        work / "re",
    )
    print(
        f"restack 512 -> 256 with premultiply (+ norm + invert) on {per * args.mics:,} particles: {t:.2f} s, "
        f"{per * args.mics / t:.0f} particles/s ({mem:.0f} MiB)"
    )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
