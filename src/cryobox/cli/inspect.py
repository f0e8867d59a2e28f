"""`cryobox inspect FILE...`"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from cryobox.cli.common import check_output_flags, console, fmt, handle_input_errors, print_json
from cryobox.core.stats import STAT_NAMES

EPILOG = """Examples:

  cryobox inspect particles.star

  cryobox inspect J42_particles.cs --json

  cryobox inspect run_data.star --plot defocus.png
"""


@handle_input_errors
def inspect_command(
    files: List[Path] = typer.Argument(
        ..., help="RELION .star or cryoSPARC .cs particle / micrograph files.", show_default=False
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the summary as JSON (a list when several files are given)."
    ),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Write a defocus histogram (PNG/PDF/SVG) of the first file."
    ),
) -> None:
    """Summarise particles: counts, optics, defocus statistics (Å), particles per micrograph."""
    check_output_flags({"--plot": plot}, files)
    from cryobox.io.particles import fill_box_from_stacks, read_particles
    from cryobox.jobs.inspect import inspect_table

    results = []
    tables = []
    for f in files:
        table = read_particles(f, full=False)
        if "box_px" not in table.data and "rlnImageName" in table.source_fields:
            table = read_particles(f)  # RELION 3.0: the image size is in the stacks' MRC headers
            fill_box_from_stacks(table)
        tables.append(table)
        results.append(inspect_table(table))
    if plot is not None:
        from cryobox.report.plots import figure_defocus_histogram, save_figure

        t = tables[0]
        t.require("defocus_u_a", "defocus_v_a", purpose="the defocus histogram")
        save_figure(
            figure_defocus_histogram(
                t.column("defocus_u_a"), t.column("defocus_v_a"), title=f"{t.path.name}: {len(t):,} {t.kind}"
            ),
            plot,
        )
    if json_out:
        print_json(results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results])
        return
    for r in results:
        _print_result(r)
    if plot is not None:
        console.print(f"defocus histogram written to {plot}")


def _print_result(r) -> None:
    head = Table(title=f"{r.path}  ({r.source_format}, {r.kind})", show_header=False, title_justify="left")
    head.add_column("what", style="bold")
    head.add_column("value")
    head.add_row("particles", fmt(r.n_particles))
    head.add_row("micrographs", fmt(r.n_micrographs))
    head.add_row("optics groups", fmt(r.n_optics_groups))
    head.add_row("pixel size (Å/px)", fmt(r.pixel_size_a, ".4g"))
    head.add_row("box (px)", fmt(r.box_px))
    if isinstance(r.pixel_size_a, float) and isinstance(r.box_px, int):
        head.add_row("box (Å)", fmt(r.pixel_size_a * r.box_px, ".4g"))
    head.add_row("voltage (kV)", fmt(r.voltage_kv, ".4g"))
    head.add_row("Cs (mm)", fmt(r.cs_mm, ".4g"))
    head.add_row("amplitude contrast", fmt(r.amplitude_contrast, ".4g"))
    head.add_row("CTF-premultiplied", fmt(r.ctf_premultiplied))
    head.add_row(
        "coordinates / micrograph shape / poses",
        # a file with no rows has the fields but no values: say so rather than "yes"
        "none (the file has no rows; its fields: "
        + f"{fmt(r.has_coordinates)} / {fmt(r.has_micrograph_shape)} / {fmt(r.has_poses)})"
        if r.n_particles == 0
        else f"{fmt(r.has_coordinates)} / {fmt(r.has_micrograph_shape)} / {fmt(r.has_poses)}",
    )
    console.print(head)
    rows = [
        ("defocus U (Å)", r.defocus_u_a),
        ("defocus V (Å)", r.defocus_v_a),
        ("(U + V) / 2 (Å)", r.defocus_mean_a),
        ("astigmatism |U - V| (Å)", r.astigmatism_a),
        ("particles per micrograph", r.particles_per_micrograph),
    ]
    if any(v is not None for _, v in rows):
        stats = Table(title="statistics", title_justify="left")
        stats.add_column("")
        for s in STAT_NAMES:
            stats.add_column(s, justify="right")
        for name, v in rows:
            if v is not None:
                spec = ".1f" if "per micrograph" in name else ".0f"
                stats.add_row(name, *(format(v[s], spec) for s in STAT_NAMES))
        console.print(stats)
    if len(r.optics_groups) > 1:
        og = Table(title="optics groups", title_justify="left")
        keys = list(r.optics_groups[0].keys())
        for k in keys:
            og.add_column(k)
        for g in r.optics_groups:
            og.add_row(*(fmt(g.get(k), ".4g") for k in keys))
        console.print(og)
