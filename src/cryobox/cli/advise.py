"""`cryobox advise`: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from cryobox.cli.common import (
    check_output_flags,
    console,
    fail,
    fmt,
    handle_input_errors,
    parse_boxes,
    parse_size,
    print_json,
)

EPILOG = """Examples:

  cryobox advise --example

  cryobox advise particles.star --diameter 220 --resolution 3.7

  cryobox advise J42_particles.cs --diameter 220 --resolution 3.7 --boxes 280,576

  cryobox advise J42_particles.cs --diameter 220 --resolution 3.7 --json --plot advise.png

  cryobox advise --pixel-size 1.06 --defocus-min 18000 --defocus-max 30000 --voltage 300 --cs 2.7 \
--diameter 220 --resolution 3.7
"""


@handle_input_errors
def advise_command(
    files: Optional[List[Path]] = typer.Argument(
        None, help="RELION .star or cryoSPARC .cs particle files (or use flags).", show_default=False
    ),
    diameter: Optional[float] = typer.Option(None, "--diameter", help="Particle's longest dimension (Å). Required."),
    resolution: Optional[float] = typer.Option(
        None, "--resolution", help="Resolution aimed for (Å). Required; no default."
    ),
    example: bool = typer.Option(
        False,
        "--example",
        help="Use the bundled example (130,675 particles like the motivating dataset; D 220 Å, 3.7 Å).",
    ),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size (Å/px); overrides the files."),
    defocus_min: Optional[float] = typer.Option(None, "--defocus-min", help="Lowest defocus (Å), without files."),
    defocus_max: Optional[float] = typer.Option(None, "--defocus-max", help="Highest defocus (Å), without files."),
    voltage: Optional[float] = typer.Option(None, "--voltage", help="Acceleration voltage (kV); overrides the files."),
    cs: Optional[float] = typer.Option(None, "--cs", help="Spherical aberration (mm); overrides the files."),
    micrograph_size: Optional[str] = typer.Option(
        None, "--micrograph-size", help="WIDTHxHEIGHT (px) of the micrographs, for edge losses when the files lack it."
    ),
    optics_group: Optional[int] = typer.Option(None, "--optics-group", help="Only particles of this optics group."),
    boxes: Optional[str] = typer.Option(
        None,
        "--boxes",
        help="Your boxes (px), comma-separated, e.g. 280,576: always rows of the table, marked 'yours' (the file's "
        "own box is too).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the fractions-vs-box plot (PNG/PDF/SVG)."),
) -> None:
    """Which box to refine in, and which to extract in: aliasing, delocalisation, edges, cost."""
    check_output_flags({"--plot": plot}, files or [])
    from cryobox.jobs.advise import advise_files, run_advise
    from cryobox.jobs.example import EXAMPLE, example_particles
    from cryobox.jobs.inputs import inputs_from_range, inputs_from_tables

    files = files or []
    if example:
        if files:
            fail("give either particle files or --example, not both.")
        diameter = EXAMPLE["diameter_a"] if diameter is None else diameter
        resolution = EXAMPLE["resolution_a"] if resolution is None else resolution
    if diameter is None:
        fail("--diameter (Å, the particle's longest dimension) is required.")
    if resolution is None:
        fail("--resolution (Å, the resolution you aim for) is required; cryobox has no default target.")
    if (files or example) and (defocus_min is not None or defocus_max is not None):
        fail(
            "--defocus-min/--defocus-max describe particles when there is no file; with a particle file (or "
            "--example) its own defoci are used: drop them, or drop the file."
        )
    size = parse_size(micrograph_size, flag="--micrograph-size")
    user_boxes = parse_boxes(boxes, flag="--boxes")
    overrides = dict(
        pixel_size_a=pixel_size, voltage_kv=voltage, cs_mm=cs, micrograph_size_px=size, optics_group=optics_group
    )
    if example:
        table = example_particles()
        inputs = inputs_from_tables([table], **overrides)
        inputs.source = f"bundled example ({len(table):,} particles)"
    elif files:
        result = advise_files(files, diameter_a=diameter, resolution_a=resolution, boxes_px=user_boxes, **overrides)
        inputs = None
    else:
        missing = [
            f
            for f, v in (
                ("--pixel-size", pixel_size),
                ("--defocus-min", defocus_min),
                ("--defocus-max", defocus_max),
                ("--voltage", voltage),
                ("--cs", cs),
            )
            if v is None
        ]
        if missing:
            fail(f"without particle files, give {', '.join(missing)} (or particle files, or --example).")
        inputs = inputs_from_range(
            pixel_size_a=pixel_size, defocus_min_a=defocus_min, defocus_max_a=defocus_max, voltage_kv=voltage, cs_mm=cs
        )
    if inputs is not None:
        result = run_advise(inputs, diameter_a=diameter, resolution_a=resolution, boxes_px=user_boxes)
    if plot is not None:
        from cryobox.report.plots import figure_advice, save_figure

        save_figure(figure_advice(result.advice), plot)
    if json_out:
        print_json(result.to_dict())
        return
    _print(result, plot)


def _print(result, plot) -> None:
    a = result.advice
    head = Table(show_header=False, title=f"box advice: {result.source}", title_justify="left")
    head.add_column("what", style="bold")
    head.add_column("value")
    if not result.defocus_from_range:
        head.add_row("particles", f"{result.n_particles:,}")
    head.add_row("particle diameter D", f"{a.diameter_a:g} Å")
    head.add_row("target resolution d", f"{a.resolution_a:g} Å")
    head.add_row("pixel size", f"{a.pixel_size_a:g} Å/px  (Nyquist {2 * a.pixel_size_a:.2f} Å)")
    head.add_row("wavelength", f"{a.wavelength_a:.6f} Å")
    head.add_row("defocus (max of U, V)", f"95th percentile {a.defocus_p95_a:,.0f} Å, highest {a.defocus_max_a:,.0f} Å")
    head.add_row(
        "Rosenthal & Henderson box",
        f"{a.rosenthal_henderson_box_a:.0f} Å ({a.rosenthal_henderson_box_a / a.pixel_size_a:.0f} px) at the highest "
        "defocus, Cs included",
    )
    head.add_row(
        "CTF alias-free box",
        f"{a.aliasing_free_box_a:.0f} Å ({a.aliasing_free_box_a / a.pixel_size_a:.0f} px); CTF² "
        f"{a.ctf2_aliasing_free_box_a:.0f} Å",
    )
    console.print(head)
    t = Table(title="candidate boxes (fractions of particles)", title_justify="left")
    for col, j in (
        ("box px", "right"),
        ("box Å", "right"),
        ("CTF alias-free", "right"),
        ("CTF² alias-free", "right"),
        ("alias limit p95 Å", "right"),
        ("R&H fits", "right"),
        ("edge loss", "right"),
        ("cost B²", "right"),
        ("cost B³", "right"),
        ("", "left"),
    ):
        t.add_column(col, justify=j, no_wrap=not col)
    for c in a.candidates:
        mark = []
        if c.box_px == a.recommended_refine_box_px:
            mark.append("refine")
        if c.box_px == a.recommended_extract_box_px and a.premultiply:
            mark.append("extract")
        if c.user_box:
            mark.append("yours" + (", the file's" if c.box_px == result.file_box_px else ""))
        style = "bold green" if len(mark) > (1 if c.user_box else 0) else ("bold cyan" if c.user_box else None)
        t.add_row(
            str(c.box_px),
            f"{c.box_a:.0f}",
            f"{100 * c.aliasing_free_fraction:.1f}%",
            f"{100 * c.ctf2_aliasing_free_fraction:.1f}%",
            fmt(c.aliasing_limited_resolution_p95_a, ".2f"),
            f"{100 * c.delocalisation_fraction:.1f}%",
            "-" if c.edge_loss_fraction is None else f"{100 * c.edge_loss_fraction:.1f}%",
            f"{c.relative_cost_2d:.2f}x",
            f"{c.relative_cost_3d:.2f}x",
            " + ".join(mark),
            style=style,
        )
    console.print(t)
    if not result.edge_known:
        console.print(
            "edge loss: unknown (no coordinates with micrograph sizes; give --micrograph-size WxH).", style="dim"
        )
    else:
        console.print(
            "edge loss: particles whose box leaves their micrograph; cryoSPARC drops them, RELION fills their edges.",
            style="dim",
        )
    _print_cryosparc_window(a)
    console.print("[bold]recommendation[/]")
    for r in a.reasons:
        console.print(f"  • {r}", soft_wrap=False)
    for w in a.warnings:
        console.print(f"  [yellow]! {w}[/]")
    if result.explanation is not None:
        console.print("[bold]why your boxes differ[/] (cryobox explain gives each cause in Å)")
        console.print(f"  {result.explanation.paragraph}", soft_wrap=False, markup=False)
    if plot is not None:
        console.print(f"plot written to {plot}")


def _print_cryosparc_window(a) -> None:
    """cryoSPARC's default real-space window at each of the user's boxes (and the recommended ones), in Å."""
    from cryobox.core.boxsize import CRYOSPARC_WINDOW_INNER, CRYOSPARC_WINDOW_OUTER

    rows = [
        c for c in a.candidates if c.user_box or c.box_px in (a.recommended_refine_box_px, a.recommended_extract_box_px)
    ]
    t = Table(
        title=f"cryoSPARC's real-space window (refinement defaults: inner {CRYOSPARC_WINDOW_INNER:g}, outer "
        f"{CRYOSPARC_WINDOW_OUTER:g} of the box) and the fractions that keep the {a.window_reference_box_px} px "
        "window in Å",
        title_justify="left",
    )
    for col in (
        "box px",
        "full weight to (Å)",
        "zero at (Å)",
        "full weight beyond D (Å)",
        "inner fraction",
        "outer fraction",
    ):
        t.add_column(col, justify="right")
    for c in rows:

        def frac(v):
            return f"{v:.3f}" if v <= 1.0 else f"{v:.3f} (> 1: impossible)"

        t.add_row(
            str(c.box_px),
            f"{c.cryosparc_window_inner_a:.0f}",
            f"{c.cryosparc_window_outer_a:.0f}",
            f"{c.cryosparc_window_inner_a - a.diameter_a:.0f}",
            frac(c.cryosparc_inner_fraction_same_a),
            frac(c.cryosparc_outer_fraction_same_a),
            style="bold cyan" if c.user_box else None,
        )
    console.print(t)
