"""Benchmark: `cryobox judge` on her experiment at full size, 2 boxes x 3 repeats (576³ and 280³).

Targets (issue 27): peak memory <= 5 GB, wall time <= 6 x one 576³ `cryobox fsc` (same mask
rules: the auto mask in both). Generates one phantom (220 Å wide at 1.06 Å/px, as her particle),
and for each run two half maps with their own noise (a 280 px run holds the same phantom in a
280 px box); runs `cryobox fsc --auto-mask` on one 576³ pair and `cryobox judge` on all six runs,
each in a fresh process, and prints wall time, peak memory and the ratios. About 4.6 GB of maps
are written to a temporary folder and removed at the end.
Run:  python benchmarks/judge_full_size.py [--boxes 280,576] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measure  # noqa: E402

PX = 1.06


def make_runs(work: Path, boxes: list[int], repeats: int, diameter_a: float) -> dict[int, list[str]]:
    from cryobox.core.fourier import filter_map, window
    from cryobox.core.masks import soft_spherical_mask
    from cryobox.io.mrc import write_mrc

    big = max(boxes)
    rng = np.random.default_rng(27)
    phantom = filter_map(rng.normal(size=(big,) * 3).astype(np.float32), pixel_size_a=PX, lowpass_a=4 * PX)
    phantom *= soft_spherical_mask(big, radius_px=0.5 * diameter_a / PX, soft_edge_px=0.02 * big)
    phantom /= phantom.std()
    runs: dict[int, list[str]] = {}
    for box in boxes:
        sig = window(phantom, box, ndim=3) if box != big else phantom
        runs[box] = []
        for k in range(repeats):
            names = []
            for half in (1, 2):
                noise = rng.standard_normal(size=sig.shape, dtype=np.float32)
                noise *= np.float32(0.7)
                noise += sig
                name = f"b{box}_r{k}_h{half}.mrc"
                write_mrc(work / name, noise, pixel_size_a=PX)
                names.append(name)
                del noise
            runs[box].append(":".join(names))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", default="280,576")
    ap.add_argument("--repeats", type=int, default=3, help="runs per box (default 3)")
    ap.add_argument("--diameter-a", type=float, default=220.0)
    a = ap.parse_args()
    boxes = sorted(int(b) for b in a.boxes.split(","))
    work = Path(tempfile.mkdtemp(prefix="cryobox-judge-bench-"))
    try:
        runs = make_runs(work, boxes, a.repeats, a.diameter_a)
        big = max(boxes)
        h1, h2 = runs[big][0].split(":")
        cli = [sys.executable, "-m", "cryobox"]
        t_fsc, m_fsc = measure([*cli, "fsc", h1, h2, "--auto-mask", "--mask-out", "m.mrc", "--json"], work)
        variants = [f"box{b}={','.join(runs[b])}" for b in boxes]
        t_judge, m_judge = measure([*cli, "judge", *variants, "--out", "J", "--json"], work)
        n_runs = len(boxes) * a.repeats
        print(f"{n_runs} runs ({a.repeats} per box at {', '.join(map(str, boxes))} px, {PX} Å/px), auto mask")
        print(f"  cryobox fsc --auto-mask, one {big}³ pair  {t_fsc:7.2f} s   peak {m_fsc:7.0f} MiB")
        print(f"  cryobox judge, all runs                {t_judge:7.2f} s   peak {m_judge:7.0f} MiB")
        print(
            f"  judge / fsc time = {t_judge / t_fsc:.2f} (target <= 6: {'met' if t_judge <= 6 * t_fsc else 'MISSED'}); "
            f"judge peak = {m_judge / 1024:.2f} GiB (target <= 5 GB = 4.66 GiB: "
            f"{'met' if m_judge * 2**20 <= 5e9 else 'MISSED'})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
