"""`cryobox explain`: why one box beat another, each cause in Å."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from cryobox.cli.common import (
    check_output_flags,
    console,
    fail,
    flag_words,
    fmt,
    handle_input_errors,
    parse_boxes,
    parse_size,
    print_json,
)
from cryobox.report.text import cause_cost

EPILOG = """Examples:

  cryobox explain J42_particles.cs --diameter 220 --boxes 280,360,576 --resolution 3.7

  cryobox explain J42_particles.cs --diameter 220 --boxes 280,576 --fsc cs280=J50_fsc.txt@280:1.06 \\
--fsc cs576=J80_fsc.txt@576:1.06

  cryobox explain particles.star --diameter 220 --boxes 280,576 --judge Judge/ --json > explain.json

  cryobox explain J42_particles.cs --diameter 220 --boxes 280,576 --resolution 3.7 --plot explain.png
"""

FLAGS = {
    "bfactor_a2": "--bfactor",
    "window_inner": "--window-inner",
    "window_outer": "--window-outer",
    "fsc": "--fsc",
    "boxes_px": "--boxes",
    "mask_diameter_a": "--mask-diameter",
}


@handle_input_errors(flags=FLAGS)
def explain_command(
    files: List[Path] = typer.Argument(..., help="RELION .star or cryoSPARC .cs particle files.", show_default=False),
    diameter: float = typer.Option(..., "--diameter", help="Particle's longest dimension (Å)."),
    boxes: str = typer.Option(..., "--boxes", help="The boxes to compare (px), comma-separated, e.g. 280,576."),
    resolution: Optional[float] = typer.Option(
        None,
        "--resolution",
        help="Resolution (Å) at which to weigh the causes (default: the first --fsc's, else the judged or swept "
        "runs', else 3.5 x the pixel size, said in a note).",
    ),
    fsc: Optional[List[str]] = typer.Option(
        None,
        "--fsc",
        help="A measured FSC of one box, as compare reads it ([LABEL=]PATH[@BOX:PIXELSIZE]); the first is the basis "
        "of the prediction, every one is shown as measured. Repeatable.",
    ),
    judge: Optional[Path] = typer.Option(None, "--judge", help="A judge folder (or judge.json): measured per box."),
    sweep: Optional[Path] = typer.Option(None, "--sweep", help="A sweep folder (or sweep.json): measured per box."),
    program: Optional[str] = typer.Option(
        None,
        "--program",
        help="cryosparc, relion or none: whose window and edge rule (default: .cs -> cryosparc, STAR -> relion; "
        "none: no window, a reconstruction from the images as cut).",
    ),
    bfactor: float = typer.Option(
        100.0, "--bfactor", help="B (Å²) of ResLog and the model curve when no --fsc gives one (default 100 Å²)."
    ),
    window_inner: float = typer.Option(0.85, "--window-inner", help="cryoSPARC window inner radius (fraction of box)."),
    window_outer: float = typer.Option(0.99, "--window-outer", help="cryoSPARC window outer radius (fraction of box)."),
    mask_diameter: Optional[float] = typer.Option(
        None, "--mask-diameter", help="RELION's --particle_diameter (Å) (default: --diameter)."
    ),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size (Å/px); overrides the files."),
    voltage: Optional[float] = typer.Option(None, "--voltage", help="Acceleration voltage (kV); overrides the files."),
    cs: Optional[float] = typer.Option(None, "--cs", help="Spherical aberration (mm); overrides the files."),
    micrograph_size: Optional[str] = typer.Option(
        None, "--micrograph-size", help="WIDTHxHEIGHT (px) of the micrographs, when the files lack it."
    ),
    optics_group: Optional[int] = typer.Option(None, "--optics-group", help="Only particles of this optics group."),
    json_out: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Write signal kept and neighbours against box (PNG/PDF/SVG)."
    ),
) -> None:
    """Why one box beat another: each cause (signal kept, CTF aliasing, particles, neighbours, solvent, settings)
    with its effect in Å, the box it favours and its basis; the prediction for each box."""
    from cryobox.jobs.explain import explain_files
    from cryobox.jobs.report import load_runs_result

    check_output_flags({"--plot": plot}, [*files, judge, sweep])
    if program is not None and program not in ("cryosparc", "relion", "none"):
        fail(f"--program takes cryosparc, relion or none (no window beyond the box), got {program!r}.")
    runs = [load_runs_result(p, kind) for p, kind in ((judge, "judge"), (sweep, "sweep")) if p is not None]
    e = explain_files(
        files,
        diameter_a=diameter,
        boxes_px=parse_boxes(boxes, flag="--boxes"),
        resolution_a=resolution,
        fsc=fsc or [],
        runs=runs,
        program=program,
        bfactor_a2=bfactor,
        window_inner=window_inner,
        window_outer=window_outer,
        mask_diameter_a=mask_diameter,
        pixel_size_a=pixel_size,
        voltage_kv=voltage,
        cs_mm=cs,
        micrograph_size_px=parse_size(micrograph_size, flag="--micrograph-size"),
        optics_group=optics_group,
    )
    if plot is not None:
        from cryobox.report.plots import figure_explain, save_figure

        save_figure(figure_explain(e), plot)
    if json_out:
        print_json(e.to_dict())
        return
    print_explanation(e)
    if plot is not None:
        console.print(f"plot written to {plot}")


def print_explanation(e) -> None:
    """The paragraph, the cause table and the box table, for the terminal."""
    s = e.settings
    for n in e.notes:
        console.print(f"note: {flag_words(n, FLAGS)}", soft_wrap=False, markup=False)
    console.print(e.paragraph, soft_wrap=False, markup=False)
    boxes = [r.box_px for r in e.boxes]
    t = Table(
        title=f"causes at {s.resolution_a:.2f} Å (cost in Å at each box: + is worse; {s.program}'s window)",
        title_justify="left",
    )
    t.add_column("cause")
    for b in boxes:
        t.add_column(f"{b} px", justify="right")
    t.add_column("favours", justify="right")
    t.add_column("basis")
    for c in e.causes:
        cells = [cause_cost(c.effect_by_box_a[b]) if c.effect_by_box_a else "-" for b in boxes]
        fav = f"{c.favours_box_px} px" if c.favours_box_px else "-"
        t.add_row(c.cause, *cells, fav, c.basis)
    console.print(t)
    b = Table(title="per box", title_justify="left")
    for col in (
        "box px",
        "box Å",
        f"signal kept at {s.resolution_a:.2f} Å",
        "CTF alias-free",
        "CTF² alias-free",
        "particles kept",
        "with a neighbour in the window",
        "predicted Å",
        "measured Å",
        "defocus max for 90% kept (µm)",
    ):
        b.add_column(col, justify="right")
    for r in e.boxes:
        b.add_row(
            str(r.box_px),
            f"{r.box_a:.0f}",
            f"{100 * r.signal_kept_at_resolution:.0f}%",
            f"{100 * r.ctf_alias_free_fraction:.1f}%",
            f"{100 * r.ctf2_alias_free_fraction:.1f}%",
            f"{r.particles_kept:,}",
            "-" if r.neighbours_fraction is None else f"{100 * r.neighbours_fraction:.0f}%",
            fmt(r.predicted_resolution_a, ".2f"),
            fmt(r.measured_resolution_a, ".2f"),
            f"{r.highest_defocus_a / 1e4:.2f}",
        )
    console.print(b)
    if s.program == "cryosparc":
        w = Table(
            title=f"cryoSPARC window fractions that keep the {min(r.box_px for r in e.boxes)} px window in Å",
            title_justify="left",
        )
        for col in ("box px", "full weight to (Å, radius)", "zero at (Å, radius)", "inner fraction", "outer fraction"):
            w.add_column(col, justify="right")
        for r in e.boxes:
            w.add_row(
                str(r.box_px),
                f"{r.window_radii_a[0]:.0f}",
                f"{r.window_radii_a[1]:.0f}",
                f"{r.window_fractions_same_a[0]:.3f}",
                f"{r.window_fractions_same_a[1]:.3f}",
            )
        console.print(w)
    console.print(f"model: {e.model} B = {e.bfactor_a2:.0f} Å² ({e.bfactor_source}).", soft_wrap=False, markup=False)
    for c in e.causes:
        console.print(f"• {c.cause} [{c.basis}]: {c.detail}", soft_wrap=False, markup=False)
