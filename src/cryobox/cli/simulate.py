"""`cryobox simulate`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cryobox.cli.common import console, err_console, fail, handle_input_errors, parse_size, print_json

EPILOG = """Examples:

  cryobox simulate --out sim/ --micrographs 4 --size 4096x4096 --per-micrograph 300 \
--defocus-min 18000 --defocus-max 30000

  cryobox simulate --out sim_stack/ --stack --n 2000 --box 128 --pixel-size 3.0 --snr 1

  cryobox simulate --out sim_model/ --model 6vxx.cif --micrographs 2 --size 2048x2048
"""


@handle_input_errors
def simulate_command(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    map_path: Optional[Path] = typer.Option(
        None, "--map", help="Density to image (MRC); default: the built-in two-domain particle."
    ),
    model: Optional[Path] = typer.Option(None, "--model", help="Atomic model (PDB / mmCIF) to image instead."),
    stack: bool = typer.Option(False, "--stack", help="Write a particle stack instead of micrographs."),
    n: int = typer.Option(1000, "--n", help="Particles in the stack (--stack)."),
    angles: Optional[Path] = typer.Option(
        None,
        "--angles",
        help="--stack: take orientations (and shifts, if present) from this particle STAR / .cs instead of random "
        "ones.",
    ),
    box: Optional[int] = typer.Option(None, "--box", help="Particle box (px); default: the map's, or 1.3 x 220 Å."),
    micrographs: int = typer.Option(4, "--micrographs", help="Number of micrographs."),
    size: str = typer.Option("4096x4096", "--size", help="Micrograph WIDTHxHEIGHT (px)."),
    per_micrograph: int = typer.Option(300, "--per-micrograph", help="Particles per micrograph."),
    pixel_size: float = typer.Option(1.06, "--pixel-size", help="Pixel size (Å/px)."),
    voltage: float = typer.Option(300.0, "--voltage", help="Voltage (kV)."),
    cs: float = typer.Option(2.7, "--cs", help="Spherical aberration (mm)."),
    amp_contrast: float = typer.Option(0.1, "--amp-contrast", help="Amplitude contrast."),
    defocus_min: float = typer.Option(18000.0, "--defocus-min", help="Lowest defocus (Å)."),
    defocus_max: float = typer.Option(30000.0, "--defocus-max", help="Highest defocus (Å)."),
    astigmatism: float = typer.Option(500.0, "--astigmatism", help="Largest |defocus U - V| (Å)."),
    bfactor: float = typer.Option(50.0, "--bfactor", help="B-factor envelope (Å²)."),
    snr: float = typer.Option(
        0.05, "--snr", help="Signal-to-noise ratio (variance of the CTF'd particle signal / noise variance)."
    ),
    crowding: bool = typer.Option(False, "--crowding", help="Let neighbours come closer than a particle diameter."),
    ice_ramp: float = typer.Option(0.5, "--ice-ramp", help="Background ramp across each micrograph (noise sd units)."),
    diameter: float = typer.Option(
        220.0, "--diameter", help="Particle diameter (Å) used for spacing and the SNR disc."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (0 or more): same seed, same bytes."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Synthetic micrographs (whole-micrograph CTF, noise, ice ramp) or stacks, with the true poses, CTF and map."""
    from cryobox.jobs.simulate import (
        SimulationSettings,
        load_density,
        poses_from_particles,
        simulate_micrographs,
        simulate_stack,
    )

    if defocus_min > defocus_max or defocus_min < 0:
        fail(f"--defocus-min ({defocus_min:g} Å) must be >= 0 and <= --defocus-max ({defocus_max:g} Å).")
    if not snr >= 0:
        fail(f"--snr must be 0 or more, got {snr:g}.")
    if not pixel_size > 0:
        fail(f"--pixel-size must be a positive number of Å/px, got {pixel_size:g}.")
    settings = SimulationSettings(
        pixel_size_a=pixel_size,
        voltage_kv=voltage,
        cs_mm=cs,
        amplitude_contrast=amp_contrast,
        defocus_min_a=defocus_min,
        defocus_max_a=defocus_max,
        astigmatism_max_a=astigmatism,
        bfactor_a2=bfactor,
        snr=snr,
        seed=seed,
        crowding=crowding,
        ice_ramp=ice_ramp,
    )
    density, source = load_density(map_path=map_path, model_path=model, pixel_size_a=pixel_size, box_px=box)
    log = None if json_out else (lambda m: err_console.print(m))
    if angles is not None and not stack:
        fail("--angles goes with --stack.")
    if stack:
        given = shifts = None
        if angles is not None:
            given, shifts = poses_from_particles(angles, pixel_size_a=pixel_size)
            n = len(given)
        summary = simulate_stack(
            out,
            density,
            n_particles=n,
            settings=settings,
            angles_deg=given,
            shifts_px=shifts,
            log=log,
            inputs=[p for p in (map_path, model, angles) if p is not None],
        )
    else:
        w, h = parse_size(size, flag="--size")
        summary = simulate_micrographs(
            out,
            density,
            n_micrographs=micrographs,
            size_px=(w, h),
            per_micrograph=per_micrograph,
            settings=settings,
            diameter_a=diameter,
            log=log,
            inputs=[p for p in (map_path, model) if p is not None],
        )
    summary["density"] = source
    for note in summary.get("notes", []):
        err_console.print(f"note: {note}")
    if json_out:
        print_json(summary)
    else:
        console.print(
            f"simulated {summary['n_particles']:,} particles ({source}; {summary['box_px']} px at {pixel_size:g} "
            "Å/px) in "
            f"{summary['wall_s']:.1f} s: {summary['particles_star']}, true map {summary['true_map']}"
        )
