"""Shared benchmark plumbing: run a command in a fresh process, report wall time and peak memory."""

from __future__ import annotations

import subprocess
import sys

WRAP = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(cmd, cwd=None, repeats: int = 1) -> tuple[float, float]:
    """(best wall seconds, peak resident MiB) of ``cmd`` run ``repeats`` times, each in a new process."""
    best, peak = float("inf"), 0.0
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", WRAP, *map(str, cmd)], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.split()
        if int(out[0]) != 0:
            raise SystemExit(f"command failed ({out[0]}): {' '.join(map(str, cmd))}")
        best, peak = min(best, float(out[1])), max(peak, float(out[2]) / 1024)
    return best, peak
