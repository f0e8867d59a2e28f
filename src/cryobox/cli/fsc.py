"""`cryobox fsc`: the FSC of two half maps, as relion_postprocess computes it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from cryobox.cli.common import (
    check_output_flags,
    console,
    flag_words,
    fmt,
    handle_input_errors,
    print_json,
)

FSC_EPILOG = """Examples:

  cryobox fsc run_half1_class001_unfil.mrc run_half2_class001_unfil.mrc --mask mask.mrc --plot fsc.png

  cryobox fsc half1.mrc half2.mrc --auto-mask --mask-out automask.mrc --star fsc.star --json > fsc.json
"""


@handle_input_errors
def fsc_command(
    half1: Path = typer.Argument(..., help="First half map (MRC).", show_default=False),
    half2: Path = typer.Argument(..., help="Second half map (MRC).", show_default=False),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Soft mask (MRC, values in [0, 1]) for the masked FSC."),
    auto_mask: bool = typer.Option(
        False, "--auto-mask", help="Build a mask from the averaged half maps (like relion_mask_create) and write it."
    ),
    mask_threshold: Optional[float] = typer.Option(
        None, "--mask-threshold", help="Auto-mask threshold (default: mean + 3 sd of the low-passed average)."
    ),
    mask_lowpass: float = typer.Option(15.0, "--mask-lowpass", help="Low-pass (Å) of the average before thresholding."),
    mask_extend: float = typer.Option(3.0, "--mask-extend", help="Extend the thresholded mask by this much (Å)."),
    mask_soft_edge: float = typer.Option(6.0, "--mask-soft-edge", help="Raised-cosine soft edge (Å)."),
    mask_out: Path = typer.Option(Path("automask.mrc"), "--mask-out", help="Where --auto-mask writes its mask."),
    randomise_at: Optional[float] = typer.Option(
        None,
        "--randomise-at",
        "--randomize-at",
        help="Randomise phases from this resolution (Å); default: where the unmasked FSC drops below 0.8.",
    ),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size (Å/px); overrides the headers."),
    force_mask: bool = typer.Option(
        False, "--force-mask", help="Keep the masked result even when the unmasked FSC reaches further."
    ),
    seed: Optional[int] = typer.Option(
        None,
        "--seed",
        min=0,
        help="Use one random phase draw, as relion_postprocess does, seeded from the maps' content and this number "
        "(default: the phase-randomised FSC's expectation over all draws, computed exactly: no randomness).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print resolutions and curves as JSON."),
    star: Optional[Path] = typer.Option(
        None, "--star", help="Write data_general + data_fsc with relion_postprocess's labels."
    ),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the FSC plot (PNG/PDF/SVG)."),
) -> None:
    """FSC of two half maps: unmasked, masked, phase-randomised and corrected; resolution at 0.143 and 0.5."""
    check_output_flags(
        {"--star": star, "--plot": plot, "--mask-out": mask_out if auto_mask else None}, [half1, half2, mask]
    )
    from cryobox.jobs.fsc import fsc_to_dict, run_fsc, write_fsc_star

    job = run_fsc(
        half1,
        half2,
        mask=mask,
        auto=auto_mask,
        mask_threshold=mask_threshold,
        mask_lowpass_a=mask_lowpass,
        mask_extend_a=mask_extend,
        mask_soft_edge_a=mask_soft_edge,
        mask_out=mask_out,
        pixel_size_a=pixel_size,
        randomise_at_a=randomise_at,
        seed=seed,
        force_mask=force_mask,
    )
    d = fsc_to_dict(job)
    from cryobox.jobs.outputs import written_together

    with written_together() as wrote:  # the mask, the STAR and the plot stand or fall together
        if auto_mask:
            wrote(mask_out)
        if star is not None:
            wrote(write_fsc_star(star, job) or star)
        if plot is not None:
            from cryobox.report.plots import figure_fsc, save_figure

            title = f"{Path(job.half1).name} vs {Path(job.half2).name}: {d['box_px']} px at {d['pixel_size_a']:g} Å/px"
            wrote(save_figure(figure_fsc(d, title=title), plot))
    if json_out:
        print_json(d)
        return
    t = Table(title=f"FSC: {job.half1} vs {job.half2}", title_justify="left")
    t.add_column("threshold")
    t.add_column("resolution (Å), RELION rule", justify="right")
    t.add_column("shell", justify="right")
    t.add_column("interpolated (Å)", justify="right")
    for thr, r in d["resolutions"].items():
        if r.get("limited_by_nyquist"):
            bound = f"limited by Nyquist (≤ {r['resolution_a']:.2f})"
            t.add_row(thr, bound, str(r["shell"]), bound)
        else:
            t.add_row(thr, fmt(r["resolution_a"], ".2f"), str(r["shell"]), fmt(r["interpolated_resolution_a"], ".2f"))
    console.print(t)
    console.print(
        f"box {d['box_px']} px at {d['pixel_size_a']:g} Å/px ({d['box_px'] * d['pixel_size_a']:.0f} Å); "
        f"unmasked FSC = 0.143 at {fmt(d['unmasked_resolution_a'], '.2f')} Å"
    )
    if d["randomise_at_a"] is not None:
        console.print(
            f"mask: {d['mask']}; phases randomised from {d['randomise_at_a']:.2f} Å (shell {d['randomise_at_shell']}; "
            f"{d['phase_randomisation']})"
        )
    if d.get("resolution_measurement_sd_a") is not None:
        console.print(
            f"measurement spread of the 0.143 crossing: ± {d['resolution_measurement_sd_a']:.2f} Å (SD; the FSC's own "
            "sampling; refinements repeated with other seeds spread further)"
        )
    for n in d["notes"]:
        console.print(flag_words(n))
    for w in d["warnings"]:
        console.print(f"[yellow]! {flag_words(w)}[/]")
    for what, path in (("STAR", star), ("plot", plot)):
        if path is not None:
            console.print(f"{what} written to {path}")
