"""A stand-in refinement program for the scheduler tests (the sweep runs it as it runs RELION:
as a command, locally or as a SLURM job).

    python standin_refine.py RUN_DIR PARTICLES REFERENCE SEED DIAMETER_A [--sleep S] [--fail]

It writes half1.mrc and half2.mrc (the reference plus seeded noise that grows with the mask
diameter, so every run has a real FSC), data.star (the particles with poses: the input poses
when there are any, else zeros, plus seeded noise of 1° and 0.5 Å), and one ``iteration N`` line
per second to progress.txt. ``--fail`` prints an error line and exits 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    run_dir, star, ref_path, seed, diameter = argv[:5]
    sleep = float(argv[argv.index("--sleep") + 1]) if "--sleep" in argv else 0.0
    from cryobox.io.mrc import read_mrc, write_mrc
    from cryobox.io.particles import read_particles, write_star

    run_dir = Path(run_dir)
    steps = max(1, int(round(sleep)))
    for it in range(1, steps + 1):
        time.sleep(sleep / steps)
        with open(run_dir / "progress.txt", "a") as fh:
            fh.write(f"iteration {it} {40.0 / it:.2f}\n")
    if "--fail" in argv:
        print("ERROR: the stand-in failed on purpose", flush=True)
        return 1
    ref, px = read_mrc(Path(ref_path))
    rng = np.random.default_rng(int(seed))
    scale = 0.02 * float(diameter) / 100.0
    for h in (1, 2):
        write_mrc(
            run_dir / f"half{h}.mrc", ref + scale * rng.standard_normal(ref.shape).astype(np.float32), pixel_size_a=px
        )
    table = read_particles(Path(star))
    d = table.data
    rng = np.random.default_rng(int(seed) + 1000)  # the poses' noise depends on the seed only, not on the box
    n = len(d)
    for col, sd in (("angle_rot_deg", 1.0), ("angle_tilt_deg", 1.0), ("angle_psi_deg", 1.0)):
        base = d[col].to_numpy(float) if col in d else np.zeros(n)
        d[col] = base + rng.normal(0, sd, n)
    for col in ("shift_x_a", "shift_y_a"):
        base = d[col].to_numpy(float) if col in d else np.zeros(n)
        d[col] = base + rng.normal(0, 0.5, n)
    write_star(run_dir / "data.star", table)
    print("stand-in done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
