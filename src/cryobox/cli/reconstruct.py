"""`cryobox reconstruct`: half maps from particles with poses (plain or CTF-premultiplied)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from cryobox.cli.common import console, err_console, fail, handle_input_errors, print_json

EPILOG = """Examples:

  cryobox reconstruct Refine3D/job050/run_it005_data.star --out halves/

  cryobox reconstruct premultiplied/particles.star --no-halves --out map/ --json
"""


@handle_input_errors
def reconstruct_command(
    particles: Path = typer.Argument(
        ...,
        help="RELION data STAR (or cryoSPARC .cs) with stacks, poses and CTF; rlnRandomSubset for half maps.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: half1_unfil.mrc and half2_unfil.mrc (or map_unfil.mrc with --no-halves)."
    ),
    halves: bool = typer.Option(
        True, "--halves/--no-halves", help="One map per half set (rlnRandomSubset 1 / 2), or one map of all particles."
    ),
    ctf: bool = typer.Option(
        True,
        "--ctf/--no-ctf",
        help="Weight by the CTF: sum CTF.X / sum CTF^2 (premultiplied images: sum X / sum CTF^2).",
    ),
    padding: Optional[int] = typer.Option(
        None, "--padding", help="Oversampling of the 3D transform, 1 or 2 (default: 2 up to 320 px, else 1)."
    ),
    regularisation: float = typer.Option(
        0.05, "--regularisation", help="Tikhonov term as a fraction of each shell's mean CTF weight."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Reconstruct half maps from particles with known poses, CTF-weighted the same way for plain
    and CTF-premultiplied stacks (RELION 3.1.3's relion_reconstruct ignores rlnCtfDataAreCtfPremultiplied)."""
    from cryobox.io.particles import read_particles
    from cryobox.jobs.reconstruct import reconstruct_into

    if padding not in (None, 1, 2):
        fail(f"--padding takes 1 or 2, got {padding}.")
    if not 0 <= regularisation < 10:
        fail(f"--regularisation takes a small non-negative fraction (0.05 by default), got {regularisation}.")
    table = read_particles(particles)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if json_out or (now - last[0] < 2.0 and done < total):
            return
        last[0] = now
        rate = done / max(1e-9, now - t0)
        end = "\r" if sys.stderr.isatty() and done < total else "\n"
        err_console.file.write(f"reconstructing: {done:,}/{total:,} particles, {rate:.0f} particles/s{end}")
        err_console.file.flush()

    paths, info = reconstruct_into(
        table, out, halves=halves, padding=padding, regularisation=regularisation, ctf=ctf, progress=progress
    )
    info["maps"] = {k: str(v) for k, v in paths.items()}
    if json_out:
        print_json(info)
        return
    weighting = (
        ("sum X / sum CTF^2 (premultiplied images)" if info["ctf_premultiplied"] else "sum CTF.X / sum CTF^2")
        if info["ctf_weighted"]
        else "no CTF weighting"
    )
    counts = ", ".join(f"{k} {v:,}" for k, v in info["particles"].items())
    console.print(
        f"reconstructed {counts} particles at {info['box_px']} px, {info['pixel_size_a']:.4g} Å/px "
        f"({weighting}, padding {info['padding']}) in {info['seconds']:.1f} s:"
    )
    for k, v in paths.items():
        console.print(f"  {k}: {v}")
