"""Benchmark: `cryobox fsc --mask` against `relion_postprocess --mask` on the same half maps.

Targets (issue 27): with a soft mask, cryobox's whole-process wall time <= 0.25x
relion_postprocess's at 256^3 and <= 0.2x at 576^3, its peak memory <= 0.5x RELION's; with
`--auto-mask` (cryobox builds the mask from the half maps) <= 1.3x the masked run's time and the
same memory bound. Both programs run as processes on the same generated files (a random phantom
of the particle's diameter, 220 Å by default as hers, never wider than 0.6 of the box, padded into
the box, plus noise); wall time and peak resident memory of each
are printed with the ratios.
Run:  python benchmarks/fsc_vs_relion.py [--sizes 256,576] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import measure


def make_maps(work: Path, n: int, px: float, diameter_a: float | None = None) -> None:
    import mrcfile

    from cryobox.core.fourier import filter_map
    from cryobox.core.masks import soft_spherical_mask

    rng = np.random.default_rng(n)
    sig = filter_map(rng.normal(size=(n, n, n)).astype(np.float32), pixel_size_a=px, lowpass_a=4 * px)
    radius = 0.3 * n if diameter_a is None else min(0.3 * n, 0.5 * diameter_a / px)
    sig *= soft_spherical_mask(n, radius_px=radius, soft_edge_px=0.05 * n)
    sig /= sig.std()
    for i in (1, 2):
        with mrcfile.new(work / f"half{i}.mrc", overwrite=True) as m:
            m.set_data((sig + 0.7 * rng.normal(size=sig.shape).astype(np.float32)).astype(np.float32))
            m.voxel_size = px
    with mrcfile.new(work / "mask.mrc", overwrite=True) as m:
        m.set_data(soft_spherical_mask(n, radius_px=radius + 0.06 * n, soft_edge_px=0.08 * n))
        m.voxel_size = px


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,576", help="box sizes to run (default 256,576)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--diameter-a",
        type=float,
        default=220.0,
        help="the phantom particle's diameter in Å (default 220, hers); never wider than 0.6 of the box",
    )
    ap.add_argument(
        "--no-relion-at", type=int, default=10**6, help="skip RELION at and above this size (default: never)"
    )
    args = ap.parse_args()
    have_relion = shutil.which("relion_postprocess") is not None
    print(f"phantom: {args.diameter_a:g} Å wide (at most 0.6 of the box), 1.06 Å/px")
    print(f"{'box':>5} {'program':<24} {'wall s':>8} {'peak MiB':>9}   notes")
    for n in (int(s) for s in args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"cryobox-fsc{n}-"))
        make_maps(work, n, 1.06, args.diameter_a)
        ours, ours_mem = measure(
            [sys.executable, "-m", "cryobox", "fsc", "half1.mrc", "half2.mrc", "--mask", "mask.mrc", "--json"],
            work,
            args.repeats,
        )
        print(f"{n:>5} {'cryobox fsc --mask':<24} {ours:>8.2f} {ours_mem:>9.0f}")
        auto, auto_mem = measure(
            [sys.executable, "-m", "cryobox", "fsc", "half1.mrc", "half2.mrc", "--auto-mask", "--json"],
            work,
            args.repeats,
        )
        print(
            f"{n:>5} {'cryobox fsc --auto-mask':<24} {auto:>8.2f} {auto_mem:>9.0f}   auto/masked time = "
            f"{auto / ours:.2f} (target <= 1.3: {'met' if auto <= 1.3 * ours else 'MISSED'})"
        )
        if have_relion and n < args.no_relion_at:
            (work / "post").mkdir()
            rel, rel_mem = measure(
                [
                    "relion_postprocess",
                    "--i",
                    "half1.mrc",
                    "--i2",
                    "half2.mrc",
                    "--mask",
                    "mask.mrc",
                    "--angpix",
                    "1.06",
                    "--o",
                    "post/postprocess",
                ],
                work,
                args.repeats,
            )
            target = 0.25 if n <= 256 else 0.2
            print(f"{n:>5} {'relion_postprocess':<24} {rel:>8.2f} {rel_mem:>9.0f}")
            for name, t, mem in (("--mask", ours, ours_mem), ("--auto-mask", auto, auto_mem)):
                # the memory target is her full-size maps' (576³); smaller maps print the ratio alone
                mem_target = f" (target <= 0.5: {'met' if mem <= 0.5 * rel_mem else 'MISSED'})" if n >= 512 else ""
                print(
                    f"{n:>5}   cryobox {name:<12} / RELION: time {t / rel:.3f} (target <= {target:g}: "
                    f"{'met' if t <= target * rel else 'MISSED'}), memory {mem / rel_mem:.3f}{mem_target}"
                )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
