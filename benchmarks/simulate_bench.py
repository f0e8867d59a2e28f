"""Benchmark: `cryobox simulate` wall time and memory, and projection throughput against
relion_project on the same map and angles (issue 5: cryobox at least as fast).

Run:  python benchmarks/simulate_bench.py [--micrographs 20] [--size 4096] [--per-micrograph 300]
                                          [--proj-box 128] [--proj-n 1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micrographs", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--per-micrograph", type=int, default=300)
    ap.add_argument("--pixel-size", type=float, default=1.06)
    ap.add_argument("--proj-box", type=int, default=128)
    ap.add_argument("--proj-n", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cryobox-sim-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        # projection throughput, same map and angles for both programs
        import mrcfile
        import pandas as pd

        from cryobox.core.simulate import default_particle_map, random_relion_angles
        from cryobox.io.star import write_star_blocks

        n, px = args.proj_box, 220.0 * 1.3 / args.proj_box
        with mrcfile.new(work / "vol.mrc") as m:
            m.set_data(default_particle_map(n, px))
            m.voxel_size = px
        ang = random_relion_angles(args.proj_n, np.random.default_rng(0))
        np.save(work / "ang.npy", ang)
        optics = pd.DataFrame(
            {
                "rlnOpticsGroup": [1],
                "rlnOpticsGroupName": ["g"],
                "rlnImagePixelSize": [px],
                "rlnImageSize": [n],
                "rlnImageDimensionality": [2],
                "rlnVoltage": [300.0],
                "rlnSphericalAberration": [2.7],
                "rlnAmplitudeContrast": [0.1],
            }
        )
        parts = pd.DataFrame(
            {
                "rlnAngleRot": ang[:, 0],
                "rlnAngleTilt": ang[:, 1],
                "rlnAnglePsi": ang[:, 2],
                "rlnOpticsGroup": 1,
                "rlnImageName": [f"{i + 1:06d}@x.mrcs" for i in range(len(ang))],
            }
        )
        write_star_blocks(work / "ang.star", {"optics": optics, "particles": parts})
        rel = None
        if shutil.which("relion_project"):
            rel, rel_mem = measure(["relion_project", "--i", "vol.mrc", "--o", "proj", "--ang", "ang.star"], work)
        code = (
            "import numpy as np, mrcfile; from cryobox.core.simulate import Projector; from cryobox.io.mrc import "
            "write_mrc; "
            "v = mrcfile.open('vol.mrc').data; a = np.load('ang.npy'); "
            "write_mrc('ours.mrcs', Projector(v).project(a), pixel_size_a=float(mrcfile.open('vol.mrc').voxel_size.x))"
        )
        ours, ours_mem = measure([sys.executable, "-c", code], work)
        line = (
            f"projections of a {n}^3 map, {args.proj_n} angles: "
            f"cryobox {ours:.2f} s ({args.proj_n / ours:.0f}/s, {ours_mem:.0f} MiB)"
        )
        if rel is not None:
            line += (
                f", relion_project {rel:.2f} s ({args.proj_n / rel:.0f}/s, {rel_mem:.0f} MiB); cryobox/RELION time "
                f"{ours / rel:.2f} "
                f"(target <= 1: {'met' if ours <= rel else 'MISSED'})"
            )
        print(line)
        t, mem = measure(
            [
                sys.executable,
                "-m",
                "cryobox",
                "simulate",
                "--out",
                "sim",
                "--micrographs",
                str(args.micrographs),
                "--size",
                f"{args.size}x{args.size}",
                "--per-micrograph",
                str(args.per_micrograph),
                "--pixel-size",
                str(args.pixel_size),
                "--json",
            ],
            work,
        )
        total = args.micrographs * args.per_micrograph
        print(
            f"simulate {args.micrographs} micrographs of {args.size}^2 with {args.per_micrograph} particles each: "
            f"{t:.1f} s wall, "
            f"{total / t:.0f} particles/s, peak {mem:.0f} MiB"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
