"""`cryobox fsc`, `compare`, `filter`, `resample`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from cryobox.cli.common import (
    check_output_flags,
    check_plot_path,
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

COMPARE_EPILOG = """Examples:

  cryobox compare box280=job050/postprocess.star box576=job051/postprocess.star --plot compare.png

  cryobox compare cs576=J80_fsc.txt@576:1.06 cs280=J50_fsc.txt@280:1.06 --plot compare.png

  cryobox compare fsc_280.json fsc_360.json cs576=J80_fsc.txt --box 576 --pixel-size 1.06
"""

FILTER_EPILOG = """Examples:

  cryobox filter map.mrc --lowpass 4.1 --out map_lp.mrc

  cryobox filter map.mrc --bfactor -80 --lowpass 3.7 --mask mask.mrc --out sharpened.mrc
"""

RESAMPLE_EPILOG = """Examples:

  cryobox resample map_576.mrc --box 280 --out map_280.mrc

  cryobox resample map.mrc --to-pixel-size 1.5 --out map_1.5A.mrc
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


@handle_input_errors
def compare_command(
    runs: List[str] = typer.Argument(
        ...,
        help="FSC results: [LABEL=]PATH[@BOX:PIXELSIZE] (cryobox JSON/STAR, postprocess.star, run_model.star, "
        "relion_image_handler --fsc, cryoSPARC FSC .txt; @280:1.06 gives a text table its box and pixel size).",
        show_default=False,
    ),
    box: Optional[int] = typer.Option(
        None,
        "--box",
        help="Box (px) for cryoSPARC text tables that have no @BOX of their own (checked against each file's shells).",
    ),
    pixel_size: Optional[float] = typer.Option(
        None,
        "--pixel-size",
        help="Pixel size (Å/px) for cryoSPARC text tables that have no @BOX:PIXELSIZE of their own.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the overlay (PNG/PDF/SVG)."),
) -> None:
    """Overlay FSC curves of several runs on one Å axis, with box sizes and resolutions side by side."""
    check_plot_path(plot)
    from cryobox.io.fsc_files import resolution_text
    from cryobox.jobs.compare import compare_curves, load_curve

    curves = [load_curve(r, box_px=box, pixel_size_a=pixel_size) for r in runs]
    check_output_flags({"--plot": plot}, [c.source for c in curves])
    result = compare_curves(curves)
    if plot is not None:
        from cryobox.report.plots import figure_compare, save_figure

        save_figure(figure_compare(curves, result["runs"]), plot)
    if json_out:
        print_json(result)
        return
    t = Table(
        title="FSC comparison (resolution at FSC = 0.143 / 0.5; FSC values at common resolutions)", title_justify="left"
    )
    t.add_column("")
    for s in result["runs"]:
        t.add_column(s["label"], justify="right")
    rows = [
        ("curve", [s["curve"] for s in result["runs"]]),
        ("box", [f"{s['box_px']} px ({s['box_a']:.0f} Å)" for s in result["runs"]]),
        ("pixel size", [f"{s['pixel_size_a']:.4g} Å" for s in result["runs"]]),
        ("0.143 (RELION rule)", [resolution_text(s, 0.143, interpolated=False) for s in result["runs"]]),
        ("0.143 (interpolated)", [resolution_text(s, 0.143) for s in result["runs"]]),
        ("0.5 (interpolated)", [resolution_text(s, 0.5) for s in result["runs"]]),
    ]
    for d in result["common_resolutions_a"]:
        vals = [s["fsc_at"][f"{d:g}"] for s in result["runs"]]
        if any(v is not None for v in vals):
            rows.append((f"FSC at {d:g} Å", ["-" if v is None or math.isnan(v) else f"{v:.3f}" for v in vals]))
    for name, vals in rows:
        t.add_row(name, *vals)
    console.print(t)
    if plot is not None:
        console.print(f"plot written to {plot}")


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
