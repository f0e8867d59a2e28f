"""`cryobox extract`: (re)extract particles from micrographs, RELION-exact."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from cryobox.cli.common import console, err_console, fail, handle_input_errors, print_json
from cryobox.jobs.particle_ops import FLOAT16_NOTE

EPILOG = """Examples:

  cryobox extract micrographs_ctf.star --coords-dir Pick/ --coords-suffix _pick.star --box 256 --invert --out Extract/

  cryobox extract micrographs_ctf.star --coords-suffix _pick.star --box 256 --premultiply-box 512 --invert \
--out Extract_pm/

  cryobox extract run_data.star --recenter --box 280 --edge drop --out Reextract/ --jobs 8
"""


class Progress:
    """A progress bar (particles/s, ETA) on a terminal; plain log lines otherwise."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def start(self, *, total: int, done_units: int, units: int):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.units, self.units_done = units, done_units
        if done_units:
            err_console.print(
                f"{done_units} of {units} micrographs already extracted with these settings: skipped (--overwrite "
                "redoes them)."
            )
        if self.quiet:
            return
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self.bar = RichProgress(
                TextColumn("extracting {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("particles, ETA"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("", total=total)

    def advance(self, n: int):
        self.done += n
        self.units_done += 1
        if self.quiet:
            return
        rate = self.done / max(1e-9, time.perf_counter() - self.t0)
        if self.tty:
            self.bar.update(self.task, advance=n, description=f"({rate:.0f} particles/s)")
        else:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            err_console.print(
                f"micrographs {self.units_done}/{self.units}, particles {self.done}/{self.total}, {rate:.0f} "
                f"particles/s, ETA {eta:.0f} s"
            )

    def stop(self):
        if not self.quiet and self.tty:
            self.bar.stop()


# the options of `extract`, one constant each (the command reads as its flags)
_EXTRACT_SOURCE = typer.Argument(
    ...,
    help="RELION micrographs STAR (with CTF) plus coordinate files, or a particle STAR / .cs naming micrographs "
    "and coordinates.",
    show_default=False,
)
_EXTRACT_COORDS_SUFFIX = typer.Option(
    None, "--coords-suffix", help="Coordinate files: <micrograph stem><suffix> (e.g. _pick.star, .box)."
)
_EXTRACT_COORDS_DIR = typer.Option(
    None, "--coords-dir", help="Folder of the coordinate files (default: beside the micrographs)."
)
_EXTRACT_RECENTER = typer.Option(
    False,
    "--recenter",
    help="Re-extraction: move each coordinate by the particle's shift (as relion_preprocess --recenter).",
)
_EXTRACT_BG_RADIUS = typer.Option(
    None, "--bg-radius", help="Background radius (px of the final box); default int(0.375 N)."
)
_EXTRACT_BG_DIAMETER = typer.Option(None, "--bg-diameter", help="Background diameter (Å) instead of --bg-radius.")
_EXTRACT_PREMULTIPLY_BOX = typer.Option(
    None,
    "--premultiply-box",
    help="Extract at M px, multiply by the CTF, crop to --box (writes rlnCtfDataAreCtfPremultiplied 1).",
)
_EXTRACT_PREMULTIPLY_MICROGRAPH = typer.Option(
    False,
    "--premultiply-micrograph",
    help="Multiply the whole micrograph by its CTF, then window (needs one CTF per micrograph).",
)
_EXTRACT_PHASE_FLIP = typer.Option(
    False, "--phase-flip", help="Flip CTF phases before windowing (per particle, as RELION)."
)
_EXTRACT_RESCALE = typer.Option(
    None, "--rescale", help="Fourier crop/pad the particles to this size (px); pixel size updated."
)
_EXTRACT_EDGE = typer.Option(
    "keep",
    "--edge",
    help="keep: RELION (edge pixels repeated); drop: cryoSPARC (particles whose box leaves the micrograph are "
    "dropped).",
)
_EXTRACT_FLOAT16 = typer.Option(
    False, "--float16", help="Write float16 stacks (MRC mode 12: RELION 4.0+ reads them, RELION 3.1 does not)."
)
_EXTRACT_OVERWRITE = typer.Option(False, "--overwrite", help="Redo micrographs already extracted with these settings.")
_EXTRACT_KEEP_GOING = typer.Option(
    False, "--keep-going", help="Skip micrographs that fail (reported) instead of stopping."
)
_EXTRACT_SCHEDULER = typer.Option(
    None, "--scheduler", help="Address of a Dask distributed scheduler to run on instead."
)


@handle_input_errors
def extract_command(
    source: Path = _EXTRACT_SOURCE,
    box: int = typer.Option(..., "--box", help="Box size (px) of the extracted particles."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: Particles/*.mrcs, particles.star, particles.cs and .csg."
    ),
    coords_suffix: Optional[str] = _EXTRACT_COORDS_SUFFIX,
    coords_dir: Optional[Path] = _EXTRACT_COORDS_DIR,
    recenter: bool = _EXTRACT_RECENTER,
    norm: bool = typer.Option(True, "--norm/--no-norm", help="Background normalisation as relion_preprocess --norm."),
    bg_radius: Optional[float] = _EXTRACT_BG_RADIUS,
    bg_diameter: Optional[float] = _EXTRACT_BG_DIAMETER,
    no_ramp: bool = typer.Option(False, "--no-ramp", help="Subtract the background mean instead of a fitted plane."),
    invert: bool = typer.Option(False, "--invert", help="Invert contrast (black particles become white)."),
    premultiply_box: Optional[int] = _EXTRACT_PREMULTIPLY_BOX,
    premultiply_micrograph: bool = _EXTRACT_PREMULTIPLY_MICROGRAPH,
    phase_flip: bool = _EXTRACT_PHASE_FLIP,
    rescale: Optional[int] = _EXTRACT_RESCALE,
    edge: str = _EXTRACT_EDGE,
    float16: bool = _EXTRACT_FLOAT16,
    overwrite: bool = _EXTRACT_OVERWRITE,
    keep_going: bool = _EXTRACT_KEEP_GOING,
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Worker processes (default: all cores)."),
    scheduler: Optional[str] = _EXTRACT_SCHEDULER,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Extract (or re-extract) particles, RELION-exact, with edge losses reported and premultiply + crop."""
    from cryobox.io.coords import particles_from_micrographs
    from cryobox.io.particles import read_particles
    from cryobox.jobs.extract import ExtractOptions, background_radius_px, plan_extraction, run_extract

    def log(message: str) -> None:  # stderr, so --json output on stdout stays clean
        err_console.print(message)

    if float16:
        log(f"note: {FLOAT16_NOTE}")

    if coords_suffix is not None:
        table, notes = particles_from_micrographs(
            source, coords_dir=coords_dir, coords_suffix=coords_suffix, keep_going=keep_going
        )
        from_star = True
        for n in notes:
            log(n)
    else:
        table = read_particles(source)
        from_star = table.kind == "micrographs"
        if table.kind == "micrographs":
            fail(
                f"{source} is a micrographs STAR file: give --coords-suffix (and --coords-dir) to say where the "
                "coordinates are."
            )
    final = rescale or box
    radius = bg_radius
    if bg_diameter is not None:
        if bg_radius is not None:
            fail("give --bg-radius or --bg-diameter, not both.")
        radius = background_radius_px(table, bg_diameter, box_px=box, final_box_px=final, from_star=from_star)
    options = ExtractOptions(
        box_px=box,
        norm=norm,
        bg_radius_px=radius,
        ramp=not no_ramp,
        invert=invert,
        premultiply_box_px=premultiply_box,
        premultiply_micrograph=premultiply_micrograph,
        phase_flip=phase_flip,
        rescale_px=rescale,
        edge=edge,
        float16=float16,
    )
    # the edge report, before any work
    plan = plan_extraction(table, options, out, recenter=recenter, keep_going=keep_going, from_star=from_star)
    report = plan[1]
    what = (
        "dropped (cryoSPARC's behaviour)"
        if edge == "drop"
        else "kept, out-of-micrograph pixels repeating the nearest edge pixel (RELION's behaviour)"
    )
    log(
        f"{report['n_partly_outside']:,} of {report['n_particles']:,} particles lie partly outside their micrograph "
        f"at {report['box_px']} px: {what}."
    )
    summary = run_extract(
        table,
        options,
        out,
        recenter=recenter,
        overwrite=overwrite,
        keep_going=keep_going,
        workers=jobs,
        scheduler=scheduler,
        progress=Progress(quiet=json_out),
        log=log,
        from_star=from_star,
        plan=plan,
    )
    if json_out:
        print_json(summary.to_dict())
        return
    t = Table(show_header=False, title=f"extracted to {out}", title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row(
        "particles written",
        f"{summary.n_written:,} of {summary.n_particles_in:,} ({summary.n_micrographs} micrographs)",
    )
    t.add_row("edge particles", f"{summary.n_filled_at_edges:,} filled, {summary.n_dropped_at_edges:,} dropped")
    t.add_row(
        "box", f"{summary.box_px} px at {summary.pixel_size_a:.4g} Å/px ({summary.box_px * summary.pixel_size_a:.0f} Å)"
    )
    t.add_row("skipped (already done)", f"{summary.n_skipped_done} micrographs")
    if summary.failed:
        t.add_row("failed", f"{len(summary.failed)} micrographs (see above)")
    t.add_row("time", f"{summary.wall_s:.1f} s ({summary.n_written / max(summary.wall_s, 1e-9):.0f} particles/s)")
    t.add_row("outputs", ", ".join(p for p in (summary.star, summary.cs, summary.cs and summary.cs[:-3] + ".csg") if p))
    console.print(t)
    for note in summary.notes:
        err_console.print(f"note: {note}")
