"""`cryobox resample`: put a map on another grid (Fourier rescale, window)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cryobox.cli.common import (
    console,
    handle_input_errors,
    print_json,
)

EPILOG = """Examples:

  cryobox resample map_576.mrc --box 280 --out map_280.mrc

  cryobox resample map.mrc --to-pixel-size 1.5 --out map_1.5A.mrc
"""


@handle_input_errors
def resample_command(
    map_path: Path = typer.Argument(..., metavar="MAP", help="Map (MRC).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output map (MRC)."),
    pixel_size_new: Optional[float] = typer.Option(
        None, "--to-pixel-size", help="New pixel size (Å/px): exact Fourier crop/pad."
    ),
    box: Optional[int] = typer.Option(None, "--box", help="New box (px): centred crop/pad (centre stays at N//2)."),
    input_pixel_size: Optional[float] = typer.Option(
        None, "--pixel-size", help="The map's pixel size (Å/px), as everywhere else; overrides the header."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Put a map on another grid: Fourier rescale to a pixel size, then window to a box."""
    from cryobox.jobs.fsc import run_resample

    info = run_resample(map_path, out, new_pixel_size_a=pixel_size_new, box_px=box, pixel_size_a=input_pixel_size)
    if json_out:
        print_json(info)
    else:
        console.print(
            f"wrote {out}: {info['box_px']} px at {info['pixel_size_a']:.5g} Å/px (from {info['input_box_px']} px at "
            f"{info['input_pixel_size_a']:g} Å/px)"
        )
