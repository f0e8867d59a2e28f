"""Benchmark: the box-size sweep three ways (one run at a time, --parallel-runs 2, SLURM), and a
global sweep against a local one started from a consensus (issue 15).

On the quick demo's data (generated micrographs at 5 Å/px, boxes of 280 and 360 Å, 2 repeats, 4
iterations from 30° sampling), it runs the same `cryobox sweep` command

1. serially (`--parallel-runs 1`),
2. with `--parallel-runs 2`,
3. through SLURM (`--scheduler slurm`; skipped when no controller answers `squeue`),
4. from a consensus (`--from-consensus`, local searches only; the consensus is the simulation's
   true poses moved by 2° and 1 Å of noise, with alternating half sets, standing in for a converged
   consensus refinement),

and prints, for each, the wall time, the engine's time (the wall time while runs were out), and
cryobox's own time (extraction, references, submitting and collecting, half maps, FSC, summary)
as a share of the engine's; then the engine-time ratio of the local sweep to the global one and
whether both reach the same verdicts.

Run:  python benchmarks/sweep_scale.py [--out DIR] [--no-slurm]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "cryobox"]
HEALPIX = 1  # 30°, as the quick demo: at 15° and 6 iterations a run here takes 30-540 s, too long to repeat 16 times
ITERATIONS = 4


def sweep(root: Path, name: str, extra: list[str], boxes: str) -> tuple[dict, float]:
    from cryobox.jobs.demo import QUICK as Q

    cmd = [*CLI, "sweep", "sim/particles.star", "--reference", "sim/true_map.mrc"]
    cmd += ["--particle-diameter", f"{Q.mask_diameter_a:g}", "--boxes", boxes, "--repeats", str(Q.repeats)]
    cmd += ["--auto-iter-max", str(ITERATIONS), "--ini-high", f"{Q.ini_high_a:g}"]
    cmd += ["--healpix-order", str(HEALPIX), "--offset-range", f"{Q.offset_range_a:g}"]
    cmd += ["--offset-step", f"{Q.offset_step_a:g}", "--invert", "--truth", "sim/particles.star"]
    cmd += ["--out", name, "--json", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout), wall


def verdicts(d: dict) -> dict:
    return {(c["a"], c["b"]): c["verdict"] for c in d["comparisons"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="work here (default: a temporary folder)")
    ap.add_argument("--no-slurm", action="store_true", help="skip the SLURM run")
    a = ap.parse_args()
    from cryobox.jobs.demo import QUICK as Q

    root = a.out or Path(tempfile.mkdtemp(prefix="cryobox-sweep-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "sim" / "particles.star").exists():
        subprocess.run(
            [
                *CLI,
                "simulate",
                "--out",
                "sim",
                "--micrographs",
                str(Q.micrographs),
                "--size",
                "x".join(map(str, Q.size_px)),
            ]
            + ["--per-micrograph", str(Q.per_micrograph), "--pixel-size", f"{Q.pixel_size_a:g}", "--snr", f"{Q.snr:g}"]
            + ["--defocus-min", f"{Q.defocus_min_a:g}", "--defocus-max", f"{Q.defocus_max_a:g}", "--seed", "0"],
            cwd=root,
            check=True,
            capture_output=True,
        )
    boxes = "56,72"  # 280 and 360 Å at 5 Å/px: the 250 Å mask fits both
    rows = []
    for name, extra in (("serial", ["--parallel-runs", "1"]), ("parallel2", ["--parallel-runs", "2"])):
        shutil.rmtree(root / name, ignore_errors=True)
        rows.append((name, *sweep(root, name, extra, boxes)))
    have_slurm = shutil.which("sbatch") and subprocess.run(["squeue", "-h"], capture_output=True).returncode == 0
    if have_slurm and not a.no_slurm:
        shutil.rmtree(root / "slurm", ignore_errors=True)
        rows.append(("slurm", *sweep(root, "slurm", ["--scheduler", "slurm"], boxes)))
    # a consensus refinement's output stands in: the true poses, moved by 2° and 1 Å of noise, and
    # half sets assigned alternately (a tiny dataset's own refinement is too poor to start from)
    serial = rows[0][1]
    import numpy as np

    from cryobox.io.particles import read_particles, write_star

    cons = read_particles(root / "sim" / "particles.star")
    rng = np.random.default_rng(1)
    for col, sd in (
        ("angle_rot_deg", 2),
        ("angle_tilt_deg", 2),
        ("angle_psi_deg", 2),
        ("shift_x_a", 1),
        ("shift_y_a", 1),
    ):
        cons.data[col] = cons.data[col].to_numpy(float) + rng.normal(0, sd, len(cons.data))
    cons.data["rlnRandomSubset"] = 1 + np.arange(len(cons.data)) % 2
    write_star(root / "consensus.star", cons)
    shutil.rmtree(root / "local", ignore_errors=True)
    rows.append(("local from consensus", *sweep(root, "local", ["--from-consensus", "consensus.star"], boxes)))

    print(
        f"sweep of {serial['n_particles_refined']} particles at {serial['pixel_size_a']:g} Å/px, boxes {boxes} px, "
        f"{serial['settings']['repeats']} repeats, {ITERATIONS} iterations from HEALPix order {HEALPIX}; RELION 3.1 "
        "on this machine"
    )
    print(
        "own: everything cryobox does outside the engine's wall time; sched+post: of that, submitting, waiting "
        "on and collecting runs, half maps, FSC, alignment and summary (own less extraction and references)"
    )
    head = f"{'how':24s} {'wall (s)':>9s} {'engine (s)':>11s} {'own (s)':>8s} {'own/engine':>11s}"
    print(head + f" {'sched+post (s)':>15s} {'/engine':>8s}  verdicts")
    for name, d, wall in rows:
        tm = d["timings"]
        eng = tm.get("engine_wall_s") or tm["engine_s"]
        share = 100 * tm["overhead_s"] / eng if eng else float("nan")
        post = max(0.0, tm["overhead_s"] - tm["extraction_s"] - tm["references_s"])
        v = ", ".join(f"{x}-{y}: {r}" for (x, y), r in verdicts(d).items())
        print(
            f"{name:24s} {wall:9.1f} {eng:11.1f} {tm['overhead_s']:8.1f} {share:10.1f}% {post:15.1f} "
            f"{100 * post / eng if eng else float('nan'):7.1f}%  {v}"
        )
    base = rows[0][2]
    for name, _, wall in rows[1:3]:
        print(f"speed-up of {name} over serial: {base / wall:.2f}x")
    local = rows[-1][1]
    ratio = (local["timings"].get("engine_wall_s") or 1) / (serial["timings"].get("engine_wall_s") or 1)
    same = verdicts(local) == verdicts(serial)
    print(
        f"local sweep from a consensus / global sweep, engine time: {ratio:.2f}; "
        f"same verdicts: {'yes' if same else 'no'}"
    )
    for name, d, _ in rows:
        a_ = d.get("alignment") or {}
        for row in a_.get("variants", []):
            if "median_angle_deg" in row:
                print(
                    f"  {name:22s} {row['variant']:8s} angular error {row['median_angle_deg']['mean']:.2f}° "
                    f"shift error {row['median_shift_a']['mean']:.2f} Å"
                )
    print(f"(files in {root})")


if __name__ == "__main__":
    main()
