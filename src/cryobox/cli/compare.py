"""`cryobox compare`: overlay FSC curves of several runs on one Å axis."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from cryobox.cli.common import (
    check_output_flags,
    check_plot_path,
    console,
    handle_input_errors,
    print_json,
)

EPILOG = """Examples:

  cryobox compare box280=job050/postprocess.star box576=job051/postprocess.star --plot compare.png

  cryobox compare cs576=J80_fsc.txt@576:1.06 cs280=J50_fsc.txt@280:1.06 --plot compare.png

  cryobox compare fsc_280.json fsc_360.json cs576=J80_fsc.txt --box 576 --pixel-size 1.06
"""


@handle_input_errors
def compare_command(
    runs: List[str] = typer.Argument(
        ...,
        help="FSC results: [LABEL=]PATH[@BOX:PIXELSIZE] (cryobox JSON/STAR, postprocess.star, run_model.star, "
        "relion_image_handler --fsc, cryoSPARC FSC .txt; @280:1.06 gives a text table its box and pixel size).",
        show_default=False,
    ),
    box: Optional[int] = typer.Option(
        None,
        "--box",
        help="Box (px) for cryoSPARC text tables that have no @BOX of their own (checked against each file's shells).",
    ),
    pixel_size: Optional[float] = typer.Option(
        None,
        "--pixel-size",
        help="Pixel size (Å/px) for cryoSPARC text tables that have no @BOX:PIXELSIZE of their own.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the overlay (PNG/PDF/SVG)."),
) -> None:
    """Overlay FSC curves of several runs on one Å axis, with box sizes and resolutions side by side."""
    check_plot_path(plot)
    from cryobox.io.fsc_files import resolution_text
    from cryobox.jobs.compare import compare_curves, load_curve

    curves = [load_curve(r, box_px=box, pixel_size_a=pixel_size) for r in runs]
    check_output_flags({"--plot": plot}, [c.source for c in curves])
    result = compare_curves(curves)
    if plot is not None:
        from cryobox.report.plots import figure_compare, save_figure

        save_figure(figure_compare(curves, result["runs"]), plot)
    if json_out:
        print_json(result)
        return
    t = Table(
        title="FSC comparison (resolution at FSC = 0.143 / 0.5; FSC values at common resolutions)", title_justify="left"
    )
    t.add_column("")
    for s in result["runs"]:
        t.add_column(s["label"], justify="right")
    rows = [
        ("curve", [s["curve"] for s in result["runs"]]),
        ("box", [f"{s['box_px']} px ({s['box_a']:.0f} Å)" for s in result["runs"]]),
        ("pixel size", [f"{s['pixel_size_a']:.4g} Å" for s in result["runs"]]),
        ("0.143 (RELION rule)", [resolution_text(s, 0.143, interpolated=False) for s in result["runs"]]),
        ("0.143 (interpolated)", [resolution_text(s, 0.143) for s in result["runs"]]),
        ("0.5 (interpolated)", [resolution_text(s, 0.5) for s in result["runs"]]),
    ]
    for d in result["common_resolutions_a"]:
        vals = [s["fsc_at"][f"{d:g}"] for s in result["runs"]]
        if any(v is not None for v in vals):
            rows.append((f"FSC at {d:g} Å", ["-" if v is None or math.isnan(v) else f"{v:.3f}" for v in vals]))
    for name, vals in rows:
        t.add_row(name, *vals)
    console.print(t)
    if plot is not None:
        console.print(f"plot written to {plot}")
