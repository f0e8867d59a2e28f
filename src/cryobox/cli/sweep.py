"""`cryobox sweep`, `report`, `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from cryobox.cli.common import console, err_console, fail, flag_words, fmt, handle_input_errors, print_json
from cryobox.report.text import half_maps_text

SWEEP_EPILOG = """Examples:

  cryobox sweep particles.star --reference ref.mrc --particle-diameter 240 --boxes 280,360,576 \
--premultiply-from 576 --repeats 3 --out Sweep/

  cryobox sweep J42_particles.cs --reference J40_map.mrc --particle-diameter 240 --boxes 280,576 \
--mask-policy both --repeats 3 --out Sweep/

  cryobox sweep particles.star --reference ref.mrc --particle-diameter 240 --boxes 64,96 --repeats 2 \
--auto-iter-max 4 --out QuickSweep/
"""

REPORT_EPILOG = """Examples:

  cryobox report particles.star --diameter 220 --resolution 3.5 --out report.html

  cryobox report particles.cs --diameter 220 --resolution 3.5 --sweep Sweep/ --fsc fsc_280.json --out report.html

  cryobox report J42_particles.cs --diameter 220 --resolution 3.7 --boxes 280,576 --judge Judge/ \
--fsc cs280=J50_fsc.txt@280:1.06 --out report.html
"""

DEMO_EPILOG = """Examples:

  cryobox demo --out demo/

  cryobox demo --quick --out demo_quick/
"""


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        fail(f"{flag} takes whole pixel sizes separated by commas, like 280,360,576; got {text!r}.")
    if not values:
        fail(f"{flag} takes at least one box size (px), like 280,360,576.")
    return values


def _policies(text: str) -> tuple[str, ...]:
    t = text.strip().lower()
    if t == "both":
        return ("fixed", "box-relative")
    return tuple(p.strip() for p in t.split(",") if p.strip())


def _log(json_out: bool):
    """Progress lines: on stdout, or on stderr when stdout carries the JSON."""
    target = err_console if json_out else console
    return lambda s: target.print(s, soft_wrap=True)


def print_sweep_table(d: dict) -> None:
    what = (
        f"Box-size sweep: {d['n_particles_refined']} particles"
        if d.get("cryobox") == "sweep"
        else f"Judged: {d.get('n_runs', 0)} runs made elsewhere"
    )
    t = Table(
        title=f"{what} at {d['pixel_size_a']:g} Å/px, resolution at FSC = 0.143 (masked, corrected)",
        title_justify="left",
    )
    for col, j in (
        ("variant", "left"),
        ("box (px)", "right"),
        ("box (Å)", "right"),
        ("mask (Å)", "right"),
        ("repeats, RELION rule (Å)", "right"),
        ("repeats, interpolated (Å)", "right"),
        ("mean ± SD (Å)", "right"),
    ):
        t.add_column(col, justify=j)
    for v in d["variants"]:
        sd = v["sd_a"]
        t.add_row(
            v["variant"] + (f" (premultiplied from {v['premultiply_from_px']} px)" if v["premultiply_from_px"] else ""),
            str(v["box_px"]),
            f"{v['box_a']:.0f}",
            "-" if v.get("mask_diameter_a") is None else f"{v['mask_diameter_a']:.0f} ({v['mask_policy']})",
            fmt(v["resolutions_a"], ".2f"),
            fmt(v["interpolated_resolutions_a"], ".2f"),
            "-" if v["mean_a"] is None else f"{v['mean_a']:.2f}" + (f" ± {sd:.2f}" if sd is not None else ""),
        )
    console.print(t)
    if d.get("mask"):
        console.print(f"FSC mask: {d['mask']}")
    for n in d.get("notes", []) if d.get("cryobox") == "judge" else []:
        console.print(f"note: {flag_words(n)}")
    console.print(f"test: {d['test']}")
    for c in d["comparisons"]:
        console.print(f"  {flag_words(c['sentence'])}")
    if d.get("half_maps_from"):
        console.print("half maps: " + half_maps_text(d["half_maps_from"]))
    tm = d.get("timings") or {}
    if tm.get("engine_s") is not None:
        console.print(
            f"time: engine {tm['engine_s']:.0f} s, cryobox overhead {tm['overhead_s']:.1f} s "
            f"(extraction {tm['extraction_s']:.1f} s, references {tm['references_s']:.1f} s, "
            f"half maps {tm.get('reconstruct_s', 0.0):.1f} s, FSC {tm['fsc_s']:.1f} s)"
            + (
                f" = {100 * tm['overhead_s'] / tm['engine_s']:.1f}% of the engine's time"
                if tm["engine_s"] > 0
                else "; no refinement ran this time (every run was done before)"
            )
        )


@handle_input_errors
def sweep_command(
    particles: Path = typer.Argument(
        ...,
        metavar="PARTICLES",
        help="Particle STAR / .cs naming micrographs and coordinates (re-extraction) or stacks (restack).",
    ),
    boxes: str = typer.Option(..., "--boxes", help="Box sizes (px), comma-separated: 280,360,576."),
    reference: Path = typer.Option(
        ..., "--reference", help="Initial reference (MRC); windowed to each box and low-passed to --ini-high."
    ),
    particle_diameter: float = typer.Option(
        ..., "--particle-diameter", help="Alignment-mask diameter (Å), RELION's --particle_diameter."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder (data/, references/, runs/, sweep.json, sweep.png)."),
    repeats: int = typer.Option(
        3, "--repeats", help="Refinements per variant, each with its own random seed (2+ to judge differences)."
    ),
    premultiply_from: Optional[int] = typer.Option(
        None,
        "--premultiply-from",
        help="Also extract at this box (px), premultiply by the CTF and crop to each smaller box.",
    ),
    mask_policy: str = typer.Option(
        "fixed", "--mask-policy", help="fixed (one mask diameter in Å), box-relative (scales with the box) or both."
    ),
    ini_high: float = typer.Option(60.0, "--ini-high", help="Low-pass (Å) of the reference, and RELION's --ini_high."),
    healpix_order: int = typer.Option(
        2, "--healpix-order", help="Initial angular sampling (RELION HEALPix order: 1 = 30°, 2 = 15°, 3 = 7.5°)."
    ),
    offset_range: Optional[float] = typer.Option(
        None, "--offset-range", help="Offset search range (Å); default RELION's 6 px."
    ),
    offset_step: Optional[float] = typer.Option(None, "--offset-step", help="Offset step (Å); default RELION's 2 px."),
    auto_iter_max: Optional[int] = typer.Option(
        None, "--auto-iter-max", help="Stop each refinement at this iteration (quick runs)."
    ),
    invert: bool = typer.Option(
        False, "--invert", help="Invert contrast when extracting (dark particles on the micrographs)."
    ),
    edge: str = typer.Option(
        "keep", "--edge", help="keep (RELION) or drop (cryoSPARC); dropped particles leave every box."
    ),
    mask: Optional[Path] = typer.Option(None, "--mask", help="FSC mask (MRC) instead of one built from the reference."),
    seed: int = typer.Option(1, "--seed", help="Random seed of the first repeat (repeat k uses seed + k - 1)."),
    symmetry: str = typer.Option("C1", "--sym", help="Symmetry (RELION --sym)."),
    ranks: int = typer.Option(
        3, "--ranks", help="MPI ranks for relion_refine_mpi (a master plus at least one per half)."
    ),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="Threads per rank (--j); default: the cores shared by the worker ranks."
    ),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", help="Worker processes for extraction."),
    json_out: bool = typer.Option(False, "--json", help="Print sweep.json."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check every input and setting, print the plan (variants, runs), and stop."
    ),
) -> None:
    """Re-extract the same particles at several boxes, refine each several times on RELION, judge the differences."""
    from cryobox.engines import get_engine
    from cryobox.io.mrc import read_map
    from cryobox.io.particles import read_particles
    from cryobox.jobs.sweep import SweepSettings, run_sweep

    settings = SweepSettings(
        boxes_px=_int_list(boxes, "--boxes"),
        particle_diameter_a=particle_diameter,
        repeats=repeats,
        premultiply_from_px=premultiply_from,
        mask_policies=_policies(mask_policy),
        ini_high_a=ini_high,
        healpix_order=healpix_order,
        offset_range_a=offset_range,
        offset_step_a=offset_step,
        auto_iter_max=auto_iter_max,
        invert=invert,
        edge=edge,
        first_seed=seed,
        symmetry=symmetry,
    )
    settings.check()
    engine = get_engine("relion", ranks=ranks, threads=threads)
    engine.check()  # before any work: a missing RELION is one sentence with the install command
    ref, ref_px = read_map(reference, what="reference", ndim=3)
    m = None
    if mask is not None:
        m, _ = read_map(mask, pixel_size_a=ref_px, what="mask", ndim=3)
    table = read_particles(particles)
    log = _log(json_out)
    if dry_run:
        from cryobox.jobs.sweep import plan_sweep

        plan = plan_sweep(table, settings, reference=ref, mask=m, engine=engine, out=out)
        if json_out:
            print_json(plan)
            return
        console.print(
            f"plan: {len(table)} particles, {plan['mode']} at {', '.join(map(str, sorted(settings.boxes_px)))} px "
            f"({plan['pixel_size_a']:g} Å/px); {plan['n_runs']} refinements ({len(plan['variants'])} variants x "
            f"{settings.repeats} repeats) with {plan['engine'].get('engine')} {plan['engine'].get('version', '')}"
        )
        for label, text in zip(plan["variants"], plan["descriptions"]):
            console.print(f"  {label}: {text}")
        for n in plan["notes"]:
            console.print(f"  note: {flag_words(n)}")
        console.print("nothing was written (--dry-run).")
        return
    d = run_sweep(
        table,
        settings,
        reference=ref,
        reference_pixel_size_a=ref_px,
        out=out,
        engine=engine,
        mask=m,
        workers=jobs,
        log=log,
    )
    if json_out:
        print_json(d)
        return
    print_sweep_table(d)
    console.print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")


@handle_input_errors
def report_command(
    particles: Path = typer.Argument(..., metavar="PARTICLES", help="Particle STAR / .cs (the dataset)."),
    out: Path = typer.Option(..., "--out", help="The HTML file to write."),
    diameter: float = typer.Option(..., "--diameter", help="Particle diameter (Å)."),
    resolution: float = typer.Option(..., "--resolution", help="Target resolution (Å)."),
    sweep: Optional[Path] = typer.Option(None, "--sweep", help="A sweep folder (or its sweep.json) to include."),
    judge: Optional[Path] = typer.Option(None, "--judge", help="A judge folder (or its judge.json) to include."),
    fsc: List[str] = typer.Option(
        [],
        "--fsc",
        help="FSC results to overlay, as `cryobox compare` takes them: [LABEL=]PATH[@BOX:PIXELSIZE] (repeatable).",
    ),
    boxes: Optional[str] = typer.Option(
        None, "--boxes", help="Your boxes (px), comma-separated: rows of the advice table, marked."
    ),
    title: Optional[str] = typer.Option(None, "--title", help="Page title."),
) -> None:
    """One self-contained HTML page: inspect, advise, CTF aliasing, an interactive box slider, FSC and sweep results."""
    from cryobox.cli.common import parse_boxes
    from cryobox.jobs.report import build_report

    info = build_report(
        particles,
        out=out,
        diameter_a=diameter,
        resolution_a=resolution,
        sweep=sweep,
        judge=judge,
        fsc=list(fsc),
        boxes_px=parse_boxes(boxes, flag="--boxes"),
        title=title,
    )
    console.print(
        f"wrote {info['path']} ({info['bytes'] / 1e6:.1f} MB, {info['figures']} figures; open it in a browser, no "
        "network needed)"
    )


@handle_input_errors
def demo_command(
    out: Path = typer.Option(Path("cryobox_demo"), "--out", help="Output folder."),
    quick: bool = typer.Option(False, "--quick", help="A smaller, faster run (under 10 minutes on 2 cores)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the simulation."),
    json_out: bool = typer.Option(False, "--json", help="Print the demo summary as JSON."),
) -> None:
    """The whole story on generated data: simulate, advise, sweep (refine, delocalisation, premultiplied), report."""
    from cryobox.jobs.demo import run_demo

    log = _log(json_out)
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
