"""Benchmark: `cryobox inspect` and `cryobox advise` on 1,000,000 particles, against starfile.read.

Targets (issue 2): the `.cs` in under 2 s wall per command; the `.star` in no more than 1.5x the
time `starfile.read` alone takes on the same file; peak memory under 2 GiB.

Each measurement runs in a fresh process (imports and start-up included), timed by wall clock,
with the child's peak resident memory from getrusage. The peer, `starfile.read`, is timed the
same way (a process that imports starfile and reads the file) and also in-process (the read
alone). Run:  python benchmarks/bench_inspect_advise.py [--n 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import measure

STARFILE_INPROCESS = r"""
import sys, time
import starfile
t = time.perf_counter()
starfile.read(sys.argv[1])
print(time.perf_counter() - t)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="particles (default 1,000,000)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per measurement; the best wall time is kept")
    ap.add_argument("--keep", type=Path, default=None, help="write the generated files here and keep them")
    args = ap.parse_args()

    from cryobox.io.particles import write_cs, write_star
    from cryobox.jobs.example import example_particles

    work = args.keep or Path(tempfile.mkdtemp(prefix="cryobox-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cs_path, star_path = work / "particles_1M.cs", work / "particles_1M.star"
    t = time.perf_counter()
    table = example_particles(n_particles=args.n, n_micrographs=max(1, args.n // 150))
    # a refinement-like file: poses and shifts too
    import numpy as np

    rng = np.random.default_rng(1)
    table.data["angle_rot_deg"] = rng.uniform(-180, 180, args.n)
    table.data["angle_tilt_deg"] = np.rad2deg(np.arccos(rng.uniform(-1, 1, args.n)))
    table.data["angle_psi_deg"] = rng.uniform(-180, 180, args.n)
    table.data["shift_x_a"] = rng.normal(0, 3, args.n)
    table.data["shift_y_a"] = rng.normal(0, 3, args.n)
    write_cs(cs_path, table)
    write_star(star_path, table)
    print(
        f"generated {args.n:,} particles in {time.perf_counter() - t:.1f} s: {cs_path.stat().st_size / 2**20:.0f} "
        "MiB .cs, "
        f"{star_path.stat().st_size / 2**20:.0f} MiB .star ({work})"
    )

    peer_process, peer_mem = measure(
        [sys.executable, "-c", "import sys, starfile; starfile.read(sys.argv[1])", str(star_path)], repeats=args.repeats
    )
    peer_inproc = min(
        float(
            subprocess.run(
                [sys.executable, "-c", STARFILE_INPROCESS, str(star_path)], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(args.repeats)
    )
    print(
        f"\npeer: starfile.read on the .star: {peer_inproc:.2f} s in-process, {peer_process:.2f} s as a process "
        f"(peak {peer_mem:.0f} MiB)\n"
    )
    cryobox = [sys.executable, "-m", "cryobox"]
    jobs = {
        "inspect": ["inspect", "--json"],
        "advise": ["advise", "--diameter", "220", "--resolution", "3.7", "--micrograph-size", "5760x4092", "--json"],
    }
    print(f"{'command':<10}{'file':<7}{'wall s':>8}{'peak MiB':>10}   target")
    ok = True
    for name, extra in jobs.items():
        for kind, path in (("cs", cs_path), ("star", star_path)):
            cmd = cryobox + [extra[0], str(path)] + extra[1:]
            wall, mem = measure(cmd, repeats=args.repeats)
            if kind == "cs":
                good = wall < 2.0 and mem < 2048
                target = f"< 2 s and < 2048 MiB: {'met' if good else 'MISSED'}"
            else:
                ratio_p, ratio_i = wall / peer_process, wall / peer_inproc
                good = ratio_p <= 1.5 and mem < 2048
                target = (
                    f"{ratio_p:.2f}x starfile.read as a process, {ratio_i:.2f}x its in-process read "
                    f"(<= 1.5x, < 2048 MiB): {'met' if good else 'MISSED'}"
                )
            ok &= good
            print(f"{name:<10}{kind:<7}{wall:>8.2f}{mem:>10.0f}   {target}")
    print("\nall targets met" if ok else "\nsome targets missed")


if __name__ == "__main__":
    main()
