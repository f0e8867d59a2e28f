"""`cryobox demo`: the whole story on generated data."""

from __future__ import annotations

from pathlib import Path

import typer

from cryobox.cli.common import console, handle_input_errors, print_json
from cryobox.cli.runs_table import print_sweep_table, progress_log

DEMO_EPILOG = """Examples:

  cryobox demo --out demo/

  cryobox demo --quick --out demo_quick/
"""


@handle_input_errors
def demo_command(
    out: Path = typer.Option(Path("cryobox_demo"), "--out", help="Output folder."),
    quick: bool = typer.Option(False, "--quick", help="A smaller, faster run (under 6 minutes on 2 cores)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed of the simulation (0 or more)."),
    json_out: bool = typer.Option(False, "--json", help="Print the demo summary as JSON."),
) -> None:
    """The whole story on generated data: simulate, advise, sweep (refine, delocalisation, premultiplied), report."""
    from cryobox.jobs.demo import run_demo

    log = progress_log(json_out)
    d = run_demo(out, quick=quick, seed=seed, log=log)
    if json_out:
        print_json(d)
        return
    print_sweep_table(d["sweep"])
    console.print(f"report: {d['report']}")
    if d["own_fraction"] is None:  # every run was done before: nothing was refined this time
        console.print(
            f"demo took {d['wall_s'] / 60:.1f} min (every refinement was done before and read back; "
            f"cryobox's own work {d['own_s']:.0f} s)"
        )
    else:
        console.print(
            f"demo took {d['wall_s'] / 60:.1f} min (engine {d['sweep']['timings']['engine_s'] / 60:.1f} min; "
            f"cryobox's own work {d['own_s']:.0f} s = {100 * d['own_fraction']:.1f}% of the engine's time)"
        )
