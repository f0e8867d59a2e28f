"""`cryobox ctf`: the box-sampled CTF picture."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from cryobox.cli.common import check_output_flags, console, fail, fmt, handle_input_errors, print_json

EPILOG = """Examples:

  cryobox ctf --box 280 --pixel-size 1.06 --defocus-u 30000 --voltage 300 --cs 2.7 --resolution 3.7 --out ctf.png

  cryobox ctf --from particles.star --percentile 95 --box 280 --resolution 3.7 --out ctf.png --ctf2

  cryobox ctf --box 64 --pixel-size 1.06 --defocus-u 20000 --defocus-v 18000 --defocus-angle 30 --mrc ctf.mrc
"""


@handle_input_errors
def ctf_command(
    box: Optional[int] = typer.Option(None, "--box", help="Box size (px); with --from, defaults to the file's box."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size (Å/px)."),
    defocus_u: Optional[float] = typer.Option(None, "--defocus-u", help="Defocus U (Å, underfocus positive)."),
    defocus_v: Optional[float] = typer.Option(None, "--defocus-v", help="Defocus V (Å); default: defocus U."),
    defocus_angle: float = typer.Option(0.0, "--defocus-angle", help="Astigmatism angle (deg, RELION convention)."),
    voltage: Optional[float] = typer.Option(None, "--voltage", help="Acceleration voltage (kV)."),
    cs: Optional[float] = typer.Option(None, "--cs", help="Spherical aberration (mm)."),
    amp_contrast: float = typer.Option(0.1, "--amp-contrast", help="Amplitude contrast (fraction)."),
    phase_shift: float = typer.Option(0.0, "--phase-shift", help="Phase shift (deg)."),
    resolution: Optional[float] = typer.Option(None, "--resolution", help="Draw a ring at this resolution (Å)."),
    from_file: Optional[Path] = typer.Option(None, "--from", help="Take the CTF from a particle file (.star/.cs)."),
    percentile: float = typer.Option(
        95.0, "--percentile", help="With --from: the particle at this percentile of mean defocus."
    ),
    ctf2: bool = typer.Option(False, "--ctf2", help="Show CTF² (what premultiplied data carry) instead of the CTF."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the figure (PNG/PDF/SVG)."),
    mrc: Optional[Path] = typer.Option(
        None, "--mrc", help="Write the 2D CTF image (relion_ctf_toolbox --simulate layout)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """The CTF sampled on the box's own Fourier grid: where it aliases, and the profile beside it."""
    check_output_flags({"--out": out, "--mrc": mrc}, [from_file], figures=("--out",))
    from cryobox.jobs.ctf import CtfParameters, compute_ctf_picture, parameters_from_table

    if from_file is not None:
        from cryobox.io.particles import read_particles

        params = parameters_from_table(read_particles(from_file), percentile=percentile, box_px=box)
    else:
        missing = [
            f
            for f, v in (
                ("--box", box),
                ("--pixel-size", pixel_size),
                ("--defocus-u", defocus_u),
                ("--voltage", voltage),
                ("--cs", cs),
            )
            if v is None
        ]
        if missing:
            fail(f"give {', '.join(missing)} (or --from a particle file).")
        params = CtfParameters(
            box_px=box,
            pixel_size_a=pixel_size,
            defocus_u_a=defocus_u,
            defocus_v_a=defocus_u if defocus_v is None else defocus_v,
            defocus_angle_deg=defocus_angle,
            voltage_kv=voltage,
            cs_mm=cs,
            amplitude_contrast=amp_contrast,
            phase_shift_deg=phase_shift,
        )
    picture = compute_ctf_picture(params, resolution_a=resolution, power=2 if ctf2 else 1)
    if mrc is not None:
        from cryobox.io.mrc import write_mrc

        write_mrc(mrc, picture.image, pixel_size_a=params.pixel_size_a)
    if out is not None:
        from cryobox.report.plots import figure_ctf, save_figure

        save_figure(figure_ctf(picture), out)
    info = picture.to_dict()
    if json_out:
        print_json(info)
        return
    t = Table(
        show_header=False,
        title=f"CTF{'²' if ctf2 else ''} in a {params.box_px} px box: {params.source}",
        title_justify="left",
    )
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row(
        "box",
        f"{params.box_px} px = {info['box_a']:.1f} Å at {params.pixel_size_a:g} Å/px (Nyquist "
        f"{info['nyquist_a']:.2f} Å)",
    )
    t.add_row(
        "defocus U / V / angle",
        f"{params.defocus_u_a:,.0f} Å / {params.defocus_v_a:,.0f} Å / {params.defocus_angle_deg:g}°",
    )
    t.add_row(
        "voltage, Cs, Q0, phase shift",
        f"{params.voltage_kv:g} kV, {params.cs_mm:g} mm, {params.amplitude_contrast:g}, {params.phase_shift_deg:g}°",
    )
    t.add_row("wavelength", f"{info['wavelength_a']:.6f} Å")
    if info["aliasing_free_to_nyquist"]:
        t.add_row("aliasing", "none up to Nyquist")
    else:
        t.add_row("aliasing", f"begins at {info['first_aliased_resolution_a']:.2f} Å")
    if resolution is not None:
        t.add_row(f"alias-free at {resolution:g} Å", fmt(info["aliasing_free_at_resolution"]))
    console.print(t)
    for what, path in (("figure", out), ("CTF image", mrc)):
        if path is not None:
            console.print(f"{what} written to {path}")
