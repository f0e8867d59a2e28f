"""Benchmark: `cryobox reconstruct` against `relion_reconstruct` on the same generated stack.

A stack of the built-in particle is simulated with known poses and CTFs (``cryobox simulate
--stack``), split into two half sets (rlnRandomSubset), and both half maps are reconstructed by
each program: RELION as ``relion_reconstruct --ctf --subset k --j <cores>`` run for k = 1, 2;
cryobox as one ``cryobox reconstruct`` call. Printed: wall time and peak memory of each, the ratio,
particles/s, and how alike the maps are (correlation of cryobox's and RELION's half 1, and each
program's half-map FSC resolution at 0.143).

Run:  python benchmarks/reconstruct_vs_relion.py [--n 5000] [--box 128] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--pixel-size", type=float, default=2.0)
    ap.add_argument("--dir", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    args = ap.parse_args()
    if shutil.which("relion_reconstruct") is None:
        raise SystemExit("relion_reconstruct is not on PATH (apt-get install -y relion)")
    import mrcfile
    import starfile

    from cryobox.core.fsc import fsc_curve, resolution_interpolated

    work = Path(tempfile.mkdtemp(prefix="cryobox-rec-bench-", dir=args.dir))
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cryobox",
                "simulate",
                "--out",
                "sim",
                "--stack",
                "--n",
                str(args.n),
                "--box",
                str(args.box),
                "--pixel-size",
                str(args.pixel_size),
                "--snr",
                "0.5",
                "--json",
            ],
            cwd=work,
            check=True,
            capture_output=True,
        )
        blocks = starfile.read(work / "sim" / "particles.star", always_dict=True)
        parts = blocks["particles"]
        parts["rlnRandomSubset"] = 1 + np.arange(len(parts)) % 2
        starfile.write(blocks, work / "sim" / "halves.star", overwrite=True)
        cores = len(os.sched_getaffinity(0))
        rel_t, rel_mem = 0.0, 0.0
        for h in (1, 2):
            t, m = measure(
                [
                    "relion_reconstruct",
                    "--i",
                    "sim/halves.star",
                    "--o",
                    f"relion_half{h}.mrc",
                    "--ctf",
                    "--subset",
                    str(h),
                    "--j",
                    str(cores),
                ],
                work,
            )
            rel_t, rel_mem = rel_t + t, max(rel_mem, m)
        ours_t, ours_mem = measure(
            [sys.executable, "-m", "cryobox", "reconstruct", "sim/halves.star", "--out", "ours", "--json"], work
        )
        theirs = [mrcfile.read(work / f"relion_half{h}.mrc") for h in (1, 2)]
        ours = [mrcfile.read(work / "ours" / f"half{h}_unfil.mrc") for h in (1, 2)]
        corr = float(np.corrcoef(ours[0].ravel(), theirs[0].ravel())[0, 1])
        res = [
            resolution_interpolated(fsc_curve(*m), 0.143, size=args.box, pixel_size_a=args.pixel_size)
            for m in (ours, theirs)
        ]
        print(f"{args.n:,} particles of {args.box} px at {args.pixel_size} Å/px, two half maps, {cores} cores")
        print(f"  relion_reconstruct (2 runs, --j {cores})  {rel_t:7.2f} s  ({rel_mem:.0f} MiB)")
        print(
            f"  cryobox reconstruct                   {ours_t:7.2f} s  ({ours_mem:.0f} MiB), {args.n / ours_t:.0f} "
            "particles/s"
        )
        print(f"  ratio cryobox / RELION                {ours_t / rel_t:7.3f}")
        print(
            f"  maps: correlation of half 1 {corr:.4f}; half-map FSC 0.143 at {res[0]:.2f} Å (cryobox), {res[1]:.2f} "
            "Å (RELION)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
