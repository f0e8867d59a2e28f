"""`cryobox judge`: is one box really better? From refinements made in cryoSPARC, RELION or anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cryobox.cli.common import console, handle_input_errors, print_json

EPILOG = """Examples:

  cryobox judge box280=J50,J51,J52 box576=J80,J81,J82 --out Judge/

  cryobox judge box280=Refine3D/job050,Refine3D/job052 box576=Refine3D/job051 --mask mask.mrc --out Judge/

  cryobox judge a=h1_280.mrc:h2_280.mrc b=h1_576.mrc:h2_576.mrc --no-mask --out Judge/

  cryobox report particles.cs --diameter 220 --resolution 3.7 --judge Judge/ --out report.html
"""


@handle_input_errors
def judge_command(
    variants: List[str] = typer.Argument(
        ...,
        metavar="VARIANT=RUN,RUN...",
        show_default=False,
        help="Each variant and its runs; a run is half1.mrc:half2.mrc, a cryoSPARC job folder (J50) or a RELION "
        "Refine3D folder.",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: judge.json, judge.png, masks/."),
    mask: Optional[Path] = typer.Option(
        None, "--mask", help="FSC mask (MRC, any box at the runs' pixel size); windowed to each box."
    ),
    auto_mask: bool = typer.Option(
        True,
        "--auto-mask/--no-mask",
        help="Without --mask: build one soft mask from the runs' average (default), or compare unmasked FSCs.",
    ),
    particles: Optional[Path] = typer.Option(
        None,
        "--particles",
        help="The particle file the runs were refined from (.cs / .star): with --diameter, explain why the boxes "
        "differ (cryobox explain), in judge.json and after the table.",
    ),
    diameter: Optional[float] = typer.Option(None, "--diameter", help="Particle diameter (Å), with --particles."),
    unmasked_across_boxes: bool = typer.Option(
        False,
        "--unmasked-across-boxes",
        help="With --no-mask and variants of different boxes: compare anyway (an unmasked FSC pays for the solvent "
        "in its box, so a bigger box looks worse; every output says so).",
    ),
    resample: bool = typer.Option(
        False, "--resample", help="Fourier-resample runs at other pixel sizes to the first run's (otherwise refused)."
    ),
    seed: Optional[int] = typer.Option(
        None,
        "--seed",
        min=0,
        help="Use one random phase draw per run, as relion_postprocess does, seeded from the run's maps and this "
        "number (default: the phase-randomised FSC's expectation over all draws, which has no randomness).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print judge.json instead of the table."),
) -> None:
    """Judge the box-size experiment from runs made anywhere: one mask in Å, one FSC per run, honest statistics."""
    from cryobox.cli.runs_table import print_sweep_table, progress_log
    from cryobox.jobs.judge import parse_variants, run_judge

    d = run_judge(
        parse_variants(variants),
        out=out,
        mask=mask,
        auto_mask=auto_mask,
        resample=resample,
        seed=seed,
        unmasked_across_boxes=unmasked_across_boxes,
        particles=particles,
        diameter_a=diameter,
        log=progress_log(json_out),
    )
    if json_out:
        print_json(d)
        return
    print_sweep_table(d)
    if d.get("explain"):
        console.print(
            "why the boxes differ (cryobox explain):", d["explain"]["paragraph"], soft_wrap=False, markup=False
        )
    console.print(
        f"written: {out / 'judge.json'}, {out / 'judge.png'}; `cryobox report ... --judge {out}` puts it in the report"
    )
