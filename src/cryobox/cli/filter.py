"""`cryobox filter`: low-/high-pass, B-factor and mask a map."""

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

  cryobox filter map.mrc --lowpass 4.1 --out map_lp.mrc

  cryobox filter map.mrc --bfactor -80 --lowpass 3.7 --mask mask.mrc --out sharpened.mrc
"""


@handle_input_errors
def filter_command(
    map_path: Path = typer.Argument(..., metavar="MAP", help="Map (MRC).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output map (MRC)."),
    lowpass: Optional[float] = typer.Option(None, "--lowpass", help="Low-pass filter at this resolution (Å)."),
    highpass: Optional[float] = typer.Option(None, "--highpass", help="High-pass filter at this resolution (Å)."),
    edge_width: int = typer.Option(
        2, "--filter-edge-width", help="Raised-cosine edge width in Fourier shells (RELION default 2)."
    ),
    bfactor: float = typer.Option(0.0, "--bfactor", help="B-factor (Å²): negative sharpens, positive blurs."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Multiply by this mask afterwards."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size (Å/px); overrides the header."),
    json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Low-/high-pass (RELION's raised-cosine edge), B-factor and mask a map."""
    from cryobox.jobs.fsc import run_filter

    info = run_filter(
        map_path,
        out,
        lowpass_a=lowpass,
        highpass_a=highpass,
        bfactor_a2=bfactor,
        edge_width_shells=edge_width,
        mask=mask,
        pixel_size_a=pixel_size,
    )
    if json_out:
        print_json(info)
    else:
        console.print(f"wrote {out} ({info['box_px']} px at {info['pixel_size_a']:g} Å/px)")
