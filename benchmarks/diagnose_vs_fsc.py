"""Benchmark: `cryobox diagnose` (500 cones of 20°) against `cryobox fsc` on the same 256³ half
maps, both with the auto mask (issue 27: diagnose, whole process, within 2x the time of fsc at 96³
and at 256³; issue 16 asked for 3x).

Generates a pair of 256³ half maps (a textured blob plus noise, 1.0 Å/px), runs each command in a
fresh process (best of ``--repeats``), and prints both times, the ratio and peak memory.

Run:  python benchmarks/diagnose_vs_fsc.py [--box 256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measure  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    import scipy.ndimage as ndi

    from cryobox.io.mrc import write_mrc

    root = Path(tempfile.mkdtemp(prefix="cryobox-diag-bench-"))
    n = a.box
    rng = np.random.default_rng(0)
    x = np.indices((n, n, n), dtype=np.float32) - n // 2
    r = np.sqrt((x**2).sum(0))
    del x
    s = (
        np.exp(-((r / (n / 6)) ** 2)) + 2 * ndi.gaussian_filter(rng.standard_normal((n, n, n)), 1.2) * (r < n / 3)
    ).astype(np.float32)
    for h in (1, 2):
        write_mrc(
            root / f"h{h}.mrc", s + 0.5 * s.std() * rng.standard_normal(s.shape).astype(np.float32), pixel_size_a=1.0
        )
    del s, r
    cli = [sys.executable, "-m", "cryobox"]
    t_fsc, m_fsc = measure(
        [*cli, "fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "m.mrc"], cwd=root, repeats=a.repeats
    )
    t_diag, m_diag = measure([*cli, "diagnose", "h1.mrc", "h2.mrc", "--out", "D"], cwd=root, repeats=a.repeats)
    print(f"{n}³ half maps at 1.0 Å/px, auto mask, best of {a.repeats}")
    print(f"  cryobox fsc --auto-mask         {t_fsc:7.2f} s   peak {m_fsc:7.0f} MiB")
    print(f"  cryobox diagnose (500 cones)    {t_diag:7.2f} s   peak {m_diag:7.0f} MiB")
    ratio = t_diag / t_fsc
    print(f"  ratio diagnose / fsc            {ratio:7.2f}   (target <= 2: {'met' if ratio <= 2 else 'MISSED'})")


if __name__ == "__main__":
    main()
