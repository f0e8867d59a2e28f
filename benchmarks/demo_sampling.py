"""Benchmark: does the quick demo converge, and what makes it (issue 22: every run's median angular
error under 10° against the truth, and a verdict, within 6 minutes on 2 cores).

Runs the quick demo's sweep twice on the same simulated data and seeds: with RELION's default
sampling schedule (global searches until HEALPix order 4, finer sampling only once the orientations
settle) and with the demo's (``--faster-sampling --auto-local-healpix-order 2``). Prints, per
schedule, each run's median angular error against the true poses, the decided comparisons and the
wall time.

Run:  python benchmarks/demo_sampling.py [--out DIR] [--iterations N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from cryobox.jobs.demo import QUICK, run_demo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--iterations", type=int, default=QUICK.auto_iter_max, help="iterations per run")
    a = ap.parse_args()
    root = a.out or Path(tempfile.mkdtemp(prefix="cryobox-demo-sampling-"))
    schedules = {
        "RELION's default schedule": dict(faster_sampling=False, auto_local_healpix_order=4),
        "the demo's schedule": dict(faster_sampling=True, auto_local_healpix_order=2),
    }
    rows = []
    for name, kw in schedules.items():
        settings = dataclasses.replace(QUICK, auto_iter_max=a.iterations, **kw)
        folder = root / ("default" if not kw["faster_sampling"] else "demo")
        t0 = time.perf_counter()
        summary = run_demo(folder, settings=settings, log=lambda _: None)
        wall = time.perf_counter() - t0
        sweep = summary["sweep"]
        medians = {
            v["variant"]: [round(x, 2) for x in v["median_angle_deg"]["values"]] for v in sweep["alignment"]["variants"]
        }
        decided = [c["sentence"].split(":")[0] for c in sweep["comparisons"] if c["verdict"] != "undecided"]
        rows.append({"schedule": name, "wall_s": round(wall, 1), "median_angle_deg": medians, "decided": decided})
        worst = max(x for values in medians.values() for x in values)
        print(f"{name}: {wall:.0f} s; median angular error per run (°): {medians}; worst {worst:.2f}°")
        print(f"  decided: {'; '.join(decided) if decided else 'none'}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
