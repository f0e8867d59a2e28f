"""Benchmark: `cryobox explain` against `cryobox advise` on the same 2,000,000-particle `.cs`.

Target (issue 26): explain within 2x the wall time and the peak memory of advise (the same file,
boxes 280,360,576, D 220 Å, 3.7 Å). advise is given one box (its table and recommendation only);
explain computes signal kept per box and frequency on a grid of defoci, neighbours with one k-d
tree, edge losses and the prediction. Each run is a fresh process (imports included), best of
``--repeats``; peak resident memory from getrusage.

    python benchmarks/explain_vs_advise.py [--n 2000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000, help="particles (default 2,000,000)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per measurement; the best wall time is kept")
    ap.add_argument("--keep", type=Path, default=None, help="write the generated file here and keep it")
    args = ap.parse_args()

    from cryobox.io.particles import write_cs
    from cryobox.jobs.example import example_particles

    work = args.keep or Path(tempfile.mkdtemp(prefix="cryobox-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cs_path = work / "particles.cs"
    t = time.perf_counter()
    if not cs_path.exists():
        write_cs(cs_path, example_particles(n_particles=args.n, n_micrographs=max(1, args.n // 150)))
    print(f"{args.n:,} particles in {cs_path} ({time.perf_counter() - t:.1f} s to generate)")
    cryobox = [sys.executable, "-m", "cryobox"]
    common = [str(cs_path), "--diameter", "220", "--resolution", "3.7"]
    advise_wall, advise_mem = measure(cryobox + ["advise", *common, "--json"], repeats=args.repeats)
    explain_wall, explain_mem = measure(
        cryobox + ["explain", *common, "--boxes", "280,360,576", "--json"], repeats=args.repeats
    )
    print(f"advise : {advise_wall:6.2f} s, peak {advise_mem:6.0f} MiB")
    print(f"explain: {explain_wall:6.2f} s, peak {explain_mem:6.0f} MiB")
    print(f"ratio explain/advise: wall {explain_wall / advise_wall:.2f}x (target <= 2), "
          f"memory {explain_mem / advise_mem:.2f}x (target <= 2)")  # fmt: skip


if __name__ == "__main__":
    main()
