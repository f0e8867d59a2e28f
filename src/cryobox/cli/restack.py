"""`cryobox restack`: window, rescale, premultiply-then-crop or phase flip particles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cryobox.cli.common import console, err_console, handle_input_errors, print_json
from cryobox.jobs.particle_ops import FLOAT16_NOTE

EPILOG = """Examples:

  cryobox restack Extract576/particles.star --premultiply --box 280 --out Restack280_pm/

  cryobox restack J42_particles.cs --box 320 --rescale 160 --norm --out Binned/
"""


@handle_input_errors
def restack_command(
    particles: Path = typer.Argument(
        ..., help="Particle STAR or .cs whose images are in MRC stacks.", show_default=False
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: Particles/*.mrcs, particles.star, particles.cs and .csg."
    ),
    box: Optional[int] = typer.Option(None, "--box", help="Window (centred crop or pad) to this box (px)."),
    rescale: Optional[int] = typer.Option(
        None, "--rescale", help="Fourier crop/pad to this size (px) after windowing; pixel size updated."
    ),
    premultiply: bool = typer.Option(
        False,
        "--premultiply",
        help="Multiply by each particle's CTF on the input box, then window (extract big, premultiply, crop small).",
    ),
    phase_flip: bool = typer.Option(False, "--phase-flip", help="Flip CTF phases on the input box, then window."),
    norm: bool = typer.Option(
        False,
        "--norm/--no-norm",
        help="Background normalisation as relion_preprocess --norm (off by default: extracted particles usually are).",
    ),
    bg_radius: Optional[float] = typer.Option(
        None, "--bg-radius", help="Background radius (px of the final box); default int(0.375 N)."
    ),
    no_ramp: bool = typer.Option(False, "--no-ramp", help="Subtract the background mean instead of a fitted plane."),
    invert: bool = typer.Option(False, "--invert", help="Invert contrast."),
    float16: bool = typer.Option(
        False, "--float16", help="Write float16 stacks (MRC mode 12: RELION 4.0+ reads them, RELION 3.1 does not)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo stacks already written with these settings."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Worker processes (default: all cores)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of a Dask distributed scheduler."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    project_dir: Optional[Path] = typer.Option(
        None,
        "--project-dir",
        help="The folder the file's stack paths are relative to: a cryoSPARC project folder (P3/) for a .cs "
        "exported elsewhere (blob/path is relative to it); looked in first.",
    ),
) -> None:
    """Window, rescale, premultiply-then-crop, phase flip, normalise or invert already-extracted particles."""
    from cryobox.io.particles import read_particles
    from cryobox.jobs.restack import RestackOptions, run_restack

    if project_dir is not None and not project_dir.is_dir():
        from cryobox.errors import InputError

        raise InputError(
            f"--project-dir {project_dir}: no such folder; give the project folder (the one holding J42/)."
        )
    table = read_particles(particles)
    table.project_dir = project_dir
    options = RestackOptions(
        box_px=box,
        rescale_px=rescale,
        premultiply=premultiply,
        phase_flip=phase_flip,
        norm=norm,
        bg_radius_px=bg_radius,
        ramp=not no_ramp,
        invert=invert,
        float16=float16,
    )
    if float16:
        err_console.print(f"note: {FLOAT16_NOTE}")
    summary = run_restack(
        table,
        options,
        out,
        overwrite=overwrite,
        workers=jobs,
        scheduler=scheduler,
        log=None if json_out else (lambda m: err_console.print(m)),
    )
    if json_out:
        print_json(summary)
        return
    console.print(
        f"restacked {summary['n_restacked']:,} particles ({summary['n_stacks_skipped']} stacks already done) to "
        f"{summary['box_px']} px at "
        f"{summary['pixel_size_a']:.4g} Å/px in {summary['wall_s']:.1f} s ({summary['particles_per_s'] or 0:.0f} "
        f"particles/s): {', '.join(p for p in (summary['star'], summary['cs']) if p)}"
        + (" (and its .csg, for cryoSPARC's Import Result Group)" if summary["cs"] else "")
    )
    for note in summary["notes"]:
        err_console.print(f"note: {note}")
