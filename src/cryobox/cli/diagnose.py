"""`cryobox diagnose`: why the FSC looks the way it does."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cryobox.cli.common import console, handle_input_errors, print_json

EPILOG = """Examples:

  cryobox diagnose run_half1_class001_unfil.mrc run_half2_class001_unfil.mrc --out Diag/

  cryobox diagnose J50_map_half_A.mrc J50_map_half_B.mrc --particles J50_particles.cs --out Diag/

  cryobox diagnose h1.mrc h2.mrc --mask mask.mrc --particles run_data.star --directions 1000 --out Diag/

  cryobox report particles.star --diameter 220 --resolution 3.7 --diagnose Diag/ --out report.html
"""


@handle_input_errors(flags={"n_directions": "--directions", "half_angle_deg": "--cone-angle"})
def diagnose_command(
    half1: Path = typer.Argument(..., help="First half map (MRC)."),
    half2: Path = typer.Argument(..., help="Second half map (MRC)."),
    out: Path = typer.Option(..., "--out", help="Output folder: diagnose.json, directional.png, power.png, views.png."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="FSC mask (MRC), as cryobox fsc --mask."),
    auto_mask: bool = typer.Option(
        True, "--auto-mask/--no-mask", help="Without --mask: cryobox fsc's auto mask (default), or none."
    ),
    particles: Optional[Path] = typer.Option(
        None,
        "--particles",
        help="The refinement's particles (run_data.star or a .cs with 3D alignments): viewing directions "
        "(SCF, SCF*), and with defocus and box the CTF-aliasing onset.",
    ),
    box: Optional[int] = typer.Option(None, "--box", help="The particles' box (px), when the file does not say."),
    directions: int = typer.Option(500, "--directions", help="Cone axes over the hemisphere."),
    cone_angle: float = typer.Option(20.0, "--cone-angle", help="Half-angle of each cone (degrees)."),
    pixel_size: Optional[float] = typer.Option(
        None, "--pixel-size", help="Pixel size (Å/px) if the headers are wrong."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print diagnose.json."),
) -> None:
    """Why the FSC looks the way it does: directional resolution (conical FSC, cFAR), orientation coverage (SCF*),
    power spectra with ice rings and CTF aliasing, and a summary in words."""
    from cryobox.jobs.diagnose import run_diagnose

    d = run_diagnose(
        half1,
        half2,
        out=out,
        mask=mask,
        auto_mask=auto_mask,
        particles=particles,
        box_px=box,
        n_directions=directions,
        half_angle_deg=cone_angle,
        pixel_size_a=pixel_size,
    )
    if json_out:
        print_json(d)
        return
    dd = d["directional"]
    console.print(
        f"global resolution {d['global_resolution_a']:.2f} Å (FSC 0.143, as cryobox fsc; mask: {d['mask']}) at "
        f"{d['box_px']} px, {d['pixel_size_a']:g} Å/px"
    )
    console.print(
        f"directional: {dd['n_directions']} cones of {dd['half_angle_deg']:g}°, {dd['best_a']:.2f}-{dd['worst_a']:.2f} "
        f"Å (median {dd['median_a']:.2f}, quartiles {dd['iqr_a'][0]:.2f}-{dd['iqr_a'][1]:.2f}), cFAR {dd['cfar']:.2f}"
    )
    v = d.get("views")
    if v and v["scf_star"] is not None:
        console.print(
            f"views: {v['n_particles']:,} particles, SCF* {v['scf_star']:.2f} (SCF {v['scf']:.2f}, "
            f"{v['unsampled_fraction']:.0%} of Fourier directions unsampled)"
        )
    elif v:
        console.print(f"views: {v['note']}")
    for s in d["summary"]:
        console.print(f"  - {s}", soft_wrap=True)
    console.print(f"wrote {out / 'diagnose.json'} and the figures in {out}")
