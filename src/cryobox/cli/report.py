"""`cryobox report`: the HTML report of a particle file, with a sweep or judge beside it."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cryobox.cli.common import console, handle_input_errors, parse_boxes

REPORT_EPILOG = """Examples:

  cryobox report particles.star --diameter 220 --resolution 3.5 --out report.html

  cryobox report particles.cs --diameter 220 --resolution 3.5 --sweep Sweep/ --fsc fsc_280.json --out report.html

  cryobox report J42_particles.cs --diameter 220 --resolution 3.7 --boxes 280,576 --judge Judge/ \
--fsc cs280=J50_fsc.txt@280:1.06 --out report.html
"""


@handle_input_errors
def report_command(
    particles: Path = typer.Argument(..., metavar="PARTICLES", help="Particle STAR / .cs (the dataset)."),
    out: Path = typer.Option(..., "--out", help="The HTML file to write."),
    diameter: float = typer.Option(..., "--diameter", help="Particle diameter (Å)."),
    resolution: float = typer.Option(..., "--resolution", help="Target resolution (Å)."),
    sweep: Optional[Path] = typer.Option(None, "--sweep", help="A sweep folder (or its sweep.json) to include."),
    judge: Optional[Path] = typer.Option(None, "--judge", help="A judge folder (or its judge.json) to include."),
    diagnose: Optional[Path] = typer.Option(
        None, "--diagnose", help="A diagnose folder (or its diagnose.json) to include."
    ),
    fsc: List[str] = typer.Option(
        [],
        "--fsc",
        help="FSC results to overlay, as `cryobox compare` takes them: [LABEL=]PATH[@BOX:PIXELSIZE] (repeatable).",
    ),
    boxes: Optional[str] = typer.Option(
        None, "--boxes", help="Your boxes (px), comma-separated: rows of the advice table, marked."
    ),
    title: Optional[str] = typer.Option(None, "--title", help="Page title."),
) -> None:
    """One self-contained HTML page: inspect, advise, CTF aliasing, an interactive box slider, FSC and sweep results."""
    from cryobox.jobs.report import build_report

    info = build_report(
        particles,
        out=out,
        diameter_a=diameter,
        resolution_a=resolution,
        sweep=sweep,
        judge=judge,
        diagnose=diagnose,
        fsc=list(fsc),
        boxes_px=parse_boxes(boxes, flag="--boxes"),
        title=title,
    )
    console.print(
        f"wrote {info['path']} ({info['bytes'] / 1e6:.1f} MB, {info['figures']} figures; open it in a browser, no "
        "network needed)"
    )
