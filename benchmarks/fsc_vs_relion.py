"""Benchmark: `cryobox fsc --mask` against `relion_postprocess --mask` on the same half maps.

Targets (issue 4): on 256^3 half maps with a soft mask, cryobox's wall time <= 1/5 of
relion_postprocess's; 400^3 maps within 8 GiB of memory. Both programs run as processes on the
same generated files; wall time and peak resident memory of each are printed with the ratio.
Run:  python benchmarks/fsc_vs_relion.py [--sizes 256,400] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import measure


def make_maps(work: Path, n: int, px: float) -> None:
    import mrcfile

    from cryobox.core.fourier import filter_map
    from cryobox.core.fsc import soft_spherical_mask

    rng = np.random.default_rng(n)
    sig = filter_map(rng.normal(size=(n, n, n)).astype(np.float32), pixel_size_a=px, lowpass_a=4 * px)
    sig *= soft_spherical_mask(n, radius_px=0.3 * n, soft_edge_px=0.05 * n)
    sig /= sig.std()
    for i in (1, 2):
        with mrcfile.new(work / f"half{i}.mrc", overwrite=True) as m:
            m.set_data((sig + 0.7 * rng.normal(size=sig.shape).astype(np.float32)).astype(np.float32))
            m.voxel_size = px
    with mrcfile.new(work / "mask.mrc", overwrite=True) as m:
        m.set_data(soft_spherical_mask(n, radius_px=0.36 * n, soft_edge_px=0.08 * n))
        m.voxel_size = px


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,400", help="box sizes to run (default 256,400)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--no-relion-at", type=int, default=400, help="skip RELION at and above this size (default 400: memory only)"
    )
    args = ap.parse_args()
    have_relion = shutil.which("relion_postprocess") is not None
    print(f"{'box':>5} {'program':<20} {'wall s':>8} {'peak MiB':>9}   notes")
    for n in (int(s) for s in args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"cryobox-fsc{n}-"))
        make_maps(work, n, 1.06)
        ours, ours_mem = measure(
            [sys.executable, "-m", "cryobox", "fsc", "half1.mrc", "half2.mrc", "--mask", "mask.mrc", "--json"],
            work,
            args.repeats,
        )
        note = f"{'within' if ours_mem < 8192 else 'OVER'} 8 GiB"
        print(f"{n:>5} {'cryobox fsc --mask':<20} {ours:>8.2f} {ours_mem:>9.0f}   {note}")
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
            ratio = ours / rel
            print(
                f"{n:>5} {'relion_postprocess':<20} {rel:>8.2f} {rel_mem:>9.0f}   cryobox/RELION = {ratio:.3f} "
                f"(target <= 0.2: {'met' if ratio <= 0.2 else 'MISSED'})"
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
