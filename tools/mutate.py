"""Mutation testing of cryobox's core and statistics: do the tests catch realistic bugs?

Each mutant is one small, plausible mistake (a sign, an off-by-one shell, a factor of 2,
fftshift for ifftshift, a wrong unit, min for max, n - 1 for n, a missing complex conjugate,
a swapped verdict). For each, the repository's ``src`` and ``tests`` are copied to a temporary
folder, the one edit is made there (the working tree is never touched), and the tests named for
that part of the code run against the copy (``PYTHONPATH`` puts the copy first). A mutant is
"killed" when those tests fail. Prints one line per mutant and the kill rate.

Run:  python tools/mutate.py [--only NAME ...] [--keep]
(about 3 minutes on 2 cores; RELION must be installed for the peer tests among them)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository
    before: str  # the exact text to replace (must occur once)
    after: str
    tests: tuple[str, ...]  # pytest node ids or -k expressions (``-k:...``)


MUTANTS = (
    Mutant(
        "CTF B-factor envelope, factor 2 in the exponent",
        "src/cryobox/core/optics.py",
        "ctf *= np.exp((-0.25 * float(bfactor_a2)) * ky2) * np.exp((-0.25 * float(bfactor_a2)) * kx2)",
        "ctf *= np.exp((-0.5 * float(bfactor_a2)) * ky2) * np.exp((-0.5 * float(bfactor_a2)) * kx2)",
        ("tests/test_optics.py",),
    ),
    Mutant(
        "CTF B-factor envelope (1D), factor 2",
        "src/cryobox/core/optics.py",
        "ctf = ctf * np.exp(-0.25 * bfactor_a2 * k2)",
        "ctf = ctf * np.exp(-0.5 * bfactor_a2 * k2)",
        ("tests/test_optics.py",),
    ),
    Mutant(
        "CTF: sign of the spherical-aberration term",
        "src/cryobox/core/optics.py",
        "        - 0.5 * np.pi * cs_a * lam**3 * k2 * k2",
        "        + 0.5 * np.pi * cs_a * lam**3 * k2 * k2",
        ("tests/test_optics.py",),
    ),
    Mutant(
        "Cs in Å: wrong unit (1e6 for 1e7)",
        "src/cryobox/core/optics.py",
        "    cs_a = cs_mm * 1e7",
        "    cs_a = cs_mm * 1e6",
        ("tests/test_optics.py",),
    ),
    Mutant(
        "advisor: min instead of max of defocus U, V",
        "src/cryobox/core/boxsize.py",
        "df_max = np.broadcast_to(np.maximum(du, dv), (n,))",
        "df_max = np.broadcast_to(np.minimum(du, dv), (n,))",
        ("tests/test_boxsize.py",),
    ),
    Mutant(
        "FSC shells truncated instead of rounded (shell index)",
        "src/cryobox/core/fourier.py",
        "lut = np.floor(np.sqrt(np.arange(int(r2.max()) + 1, dtype=np.float64)) + 0.5).astype(np.intp)",
        "lut = np.floor(np.sqrt(np.arange(int(r2.max()) + 1, dtype=np.float64))).astype(np.intp)",
        ("tests/test_fsc.py",),
    ),
    Mutant(
        "FSC shells truncated instead of rounded (masked analysis)",
        "src/cryobox/core/fsc.py",
        "lut = np.floor(np.sqrt(np.arange(int(r2.max()) + 1, dtype=np.float64)) + 0.5).astype(np.intp)",
        "lut = np.floor(np.sqrt(np.arange(int(r2.max()) + 1, dtype=np.float64))).astype(np.intp)",
        ("tests/test_fsc.py",),
    ),
    Mutant(
        "RELION's rule: off by one shell",
        "src/cryobox/core/fsc.py",
        "last = (f.size - 1) if first is None else first - 1",
        "last = (f.size - 1) if first is None else first",
        ("tests/test_fsc.py",),
    ),
    Mutant(
        # (fftshift for ifftshift in the projector is no bug: its padded box, 2N, is always even,
        # where the two are the same; Fourier rescaling meets odd boxes)
        "Fourier rescale: fftshift for ifftshift",
        "src/cryobox/core/fourier.py",
        "ft = sfft.fftshift(sfft.fftn(sfft.ifftshift(vol, axes=axes), workers=fft_workers()), axes=axes)",
        "ft = sfft.fftshift(sfft.fftn(sfft.fftshift(vol, axes=axes), workers=fft_workers()), axes=axes)",
        ("tests/test_fsc.py", "tests/test_api.py"),
    ),
    Mutant(
        "reconstruction: Hermitian mirror without the complex conjugate",
        "src/cryobox/core/reconstruct.py",
        "values = np.where(flip, np.conj(values), values)",
        "values = np.where(flip, values, values)",
        ("tests/test_reconstruct.py",),
    ),
    Mutant(
        "reconstruction: centre half a pixel off",
        "src/cryobox/core/reconstruct.py",
        "cx = n // 2 - off[s:e, 0]",
        "cx = n // 2 + 0.5 - off[s:e, 0]",
        ("tests/test_reconstruct.py",),
    ),
    Mutant(
        "normalisation: variance over n - 1 instead of n",
        "src/cryobox/core/extract.py",
        'var = (s2 - np.einsum("ij,ij->i", coef, rhs)) / n_bg',
        'var = (s2 - np.einsum("ij,ij->i", coef, rhs)) / (n_bg - 1)',
        ("tests/test_extract.py",),
    ),
    Mutant(
        "Fourier rescale: a wrong row kept when cropping",
        "src/cryobox/core/extract.py",
        "        out[...] = ft[..., ip % n_old, : n_new // 2 + 1]",
        "        out[...] = ft[..., (ip + 1) % n_old, : n_new // 2 + 1]",
        ("tests/test_extract.py",),
    ),
    Mutant(
        "Welch's test: one-sided p",
        "src/cryobox/core/stats.py",
        "p = float(2.0 * stats.t.sf(abs(t), df))",
        "p = float(stats.t.sf(abs(t), df))",
        ("tests/test_stats.py", "tests/test_sweep.py"),
    ),
    Mutant(
        "statistics: the higher mean called lower",
        "src/cryobox/core/stats.py",
        'out["verdict"] = ("higher" if diff > 0 else "lower") if exceeds else "undecided"',
        'out["verdict"] = ("lower" if diff > 0 else "higher") if exceeds else "undecided"',
        ("tests/test_stats.py", "tests/test_sweep.py"),
    ),
    Mutant(
        "power: noncentrality with sqrt(1/n) for sqrt(2/n)",
        "src/cryobox/core/stats.py",
        "ncp = abs(difference) / (sd * np.sqrt(2.0 / np.maximum(n, 1)))",
        "ncp = abs(difference) / (sd * np.sqrt(1.0 / np.maximum(n, 1)))",
        ("tests/test_stats.py",),
    ),
    Mutant(
        "sweep: the coarser variant named finer",
        "src/cryobox/jobs/sweep.py",
        'finer = {"finer": a, "coarser": b}.get(c["verdict"])',
        'finer = {"finer": b, "coarser": a}.get(c["verdict"])',
        ("tests/test_sweep.py", "tests/test_judge.py"),
    ),
)


def run_mutant(m: Mutant, *, keep: bool) -> tuple[bool, float, str]:
    work = Path(tempfile.mkdtemp(prefix="cryobox-mutant-"))
    try:
        for part in ("src", "tests"):
            shutil.copytree(ROOT / part, work / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
        if (ROOT / "docs").is_dir():
            shutil.copytree(ROOT / "docs", work / "docs")
        target = work / m.path
        text = target.read_text()
        if text.count(m.before) != 1:
            return (
                False,
                0.0,
                f"the text to mutate occurs {text.count(m.before)} times in {m.path}; update tools/mutate.py",
            )
        target.write_text(text.replace(m.before, m.after))
        env = {**os.environ, "PYTHONPATH": str(work / "src")}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - t0
        last = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1:] or [""]
        return proc.returncode != 0, seconds, last[0]
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run only mutants whose name contains one of these words")
    ap.add_argument("--keep", action="store_true", help="keep the mutated copies (their paths are printed)")
    args = ap.parse_args()
    mutants = [m for m in MUTANTS if not args.only or any(w.lower() in m.name.lower() for w in args.only)]
    killed = 0
    for m in mutants:
        dead, seconds, last = run_mutant(m, keep=args.keep)
        killed += dead
        print(f"{'killed  ' if dead else 'SURVIVED'} {seconds:6.1f} s  {m.name}  [{last}]", flush=True)
    print(f"kill rate: {killed}/{len(mutants)} = {100 * killed / max(1, len(mutants)):.0f}%")
    return 0 if killed == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
