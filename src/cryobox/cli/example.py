"""`cryobox example`: write the bundled example particle set to files."""

from __future__ import annotations

from pathlib import Path

import typer

from cryobox.cli.common import console, handle_input_errors

EPILOG = """Examples:

  cryobox example --out example/

  cryobox inspect example/example_particles.cs
"""


@handle_input_errors
def example_command(
    out: Path = typer.Option(
        Path("cryobox-example"), "--out", help="Folder for example_particles.star and example_particles.cs."
    ),
) -> None:
    """Write the bundled example (130,675 particles like the motivating dataset) as .star and .cs."""
    from cryobox.io.particles import write_cs, write_star
    from cryobox.jobs.example import EXAMPLE, example_particles

    table = example_particles()
    star = write_star(out / "example_particles.star", table)
    cs = write_cs(out / "example_particles.cs", table)
    console.print(
        f"wrote {len(table):,} particles ({EXAMPLE['pixel_size_a']} Å/px, {EXAMPLE['voltage_kv']:g} kV, "
        f"{EXAMPLE['micrograph_width_px']} x {EXAMPLE['micrograph_height_px']} px micrographs) to {star} and {cs}.\n"
        "The .cs carries micrograph shapes (edge losses); for the .star give --micrograph-size "
        f"{EXAMPLE['micrograph_width_px']}x{EXAMPLE['micrograph_height_px']}."
    )
