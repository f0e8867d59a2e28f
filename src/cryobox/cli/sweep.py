"""`cryobox sweep`: the flags, the engine and launcher they choose, the plan of --dry-run."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer

from cryobox.cli.common import console, err_console, fail, flag_words, handle_input_errors, parse_boxes, print_json
from cryobox.cli.runs_table import LiveRuns, print_sweep_table, progress_log

SWEEP_EPILOG = """Examples:

  cryobox sweep particles.star --reference ref.mrc --particle-diameter 240 --boxes 280,360,576 \
--premultiply-from 576 --repeats 3 --out Sweep/

  cryobox sweep J42_particles.cs --reference J40_map.mrc --particle-diameter 240 --boxes 280,576 \
--mask-policy both --repeats 3 --out Sweep/

  cryobox sweep particles.star --reference ref.mrc --particle-diameter 240 --boxes 64,96 --repeats 2 \
--auto-iter-max 4 --out QuickSweep/
"""


def _policies(text: str) -> tuple[str, ...]:
    t = text.strip().lower()
    if t == "both":
        return ("fixed", "box-relative")
    return tuple(p.strip() for p in t.split(",") if p.strip())


def plan_script(launcher, engine, plan: dict, settings, out: Path, *, local: bool = False) -> str:
    """The job script of the first run, as --dry-run shows it (paths are the ones a run would use;
    the parameters are the sweep's own, ``jobs.sweep.refine_params``)."""
    from cryobox.engines.launch import Job
    from cryobox.jobs.sweep import refine_params
    from cryobox.jobs.sweep_plan import plan_variants

    first = plan_variants(settings, pixel_size_a=plan["pixel_size_a"])[0][0]
    params = refine_params(settings, first, plan["pixel_size_a"], seed=settings.first_seed, local=local)
    run_dir = out / "runs" / first.label / "rep1"
    data = out / "data" / first.data_label / "refine.star"
    cmd = engine.command(run_dir, data, out / "references" / f"ref_box{first.box_px}.mrc", params)
    return launcher.script(Job(f"cryobox-{out.resolve().name}-{first.label}-rep1", run_dir, cmd))


def _print_plan(table, settings, ref, mask, engine, launcher, out: Path, *, json_out: bool, local: bool) -> None:
    """--dry-run: the plan (variants, runs, notes; the first job's script on SLURM), nothing written."""
    from cryobox.jobs.sweep import plan_sweep

    plan = plan_sweep(table, settings, reference=ref, mask=mask, engine=engine, out=out)
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
    if launcher.detached:
        console.print(f"  each run is one job; the first job's script ({launcher.kind}):")
        console.print(plan_script(launcher, engine, plan, settings, out, local=local), soft_wrap=True, markup=False)
    console.print("nothing was written (--dry-run).")


def _engine_and_launcher(
    engine_name: str, scheduler: str, *, ranks, threads, parallel_runs, submit_template, queue, submit_extra,
    submit_command,
):  # fmt: skip
    """The flags that choose where the runs go, checked together, then ``engines.build``; on SLURM
    the controller is asked before any work."""
    from cryobox.engines import build
    from cryobox.parallel import default_workers

    if scheduler not in ("local", "slurm"):
        fail(f"--scheduler takes local or slurm, got {scheduler!r}.")
    if parallel_runs is not None and parallel_runs < 1:
        fail(f"--parallel-runs must be at least 1, got {parallel_runs}.")
    if scheduler == "slurm" and parallel_runs is not None:
        fail("--parallel-runs is for --scheduler local; on SLURM every run is a job and the cluster queues them.")
    if scheduler == "local" and (submit_template or queue or submit_extra):
        fail("--submit-template, --queue and --submit-extra are for --scheduler slurm.")

    cores = default_workers()
    engine, launcher, notes = build(
        engine_name,
        scheduler,
        ranks=ranks,
        threads=threads,
        parallel_runs=parallel_runs,
        cores=cores,
        slurm={
            "template_path": submit_template,
            "queue": queue,
            "submit_extra": _split_extra(submit_extra),
            "submit_command": submit_command,
        },
    )
    if scheduler == "slurm":
        launcher.check()  # before any work: no sbatch, or no controller, is one sentence
    return engine, launcher, notes


def _print_result(d: dict, out: Path, *, json_out: bool) -> None:
    """The sweep's table (or JSON); exit status 1 when runs failed."""
    if json_out:
        print_json(d)
    else:
        print_sweep_table(d)
        console.print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
    if d.get("failed_runs"):
        err_console.print(
            f"cryobox: {len(d['failed_runs'])} run(s) failed (their logs are kept; the results above leave them "
            "out); fix the cause and run the same command with --retry-failed.",
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _read_inputs(reference, mask, particles, from_consensus, truth, truth_map):
    """Every input file, read and checked before any work: the reference (and its pixel size),
    the mask on its grid, the particles, the consensus, the truth and the true map."""
    from cryobox.io.mrc import read_map
    from cryobox.io.particles import read_particles

    ref, ref_pixel_a = read_map(reference, what="reference", ndim=3)
    m = None
    if mask is not None:
        m, _ = read_map(mask, pixel_size_a=ref_pixel_a, what="mask", ndim=3)
    table = read_particles(particles)
    consensus_table = read_particles(from_consensus) if from_consensus is not None else None
    truth_table = read_particles(truth) if truth is not None else None
    truth_vol = read_map(truth_map, what="true map", ndim=3) if truth_map is not None else None
    return ref, ref_pixel_a, m, table, consensus_table, truth_table, truth_vol


def _split_extra(text: str | None) -> tuple[str, ...]:
    """--submit-extra as sbatch arguments, split as a shell would; one sentence when it cannot be."""
    try:
        return tuple(shlex.split(text or ""))
    except ValueError as exc:
        fail(f'--submit-extra {text!r}: {exc} (an unbalanced quote?); quote as in a shell, e.g. "--gres=gpu:1".')


# the options of `sweep`, one constant each (the command reads as its flags)
_SWEEP_PARTICLES = typer.Argument(
    ...,
    metavar="PARTICLES",
    help="Particle STAR / .cs naming micrographs and coordinates (re-extraction) or stacks (restack).",
)
_SWEEP_REFERENCE = typer.Option(
    ..., "--reference", help="Initial reference (MRC); windowed to each box and low-passed to --ini-high."
)
_SWEEP_PARTICLE_DIAMETER = typer.Option(
    ..., "--particle-diameter", help="Alignment-mask diameter (Å), RELION's --particle_diameter."
)
_SWEEP_REPEATS = typer.Option(
    3, "--repeats", help="Refinements per variant, each with its own random seed (2+ to judge differences)."
)
_SWEEP_PREMULTIPLY_FROM = typer.Option(
    None,
    "--premultiply-from",
    help="Also extract at this box (px), premultiply by the CTF and crop to each smaller box.",
)
_SWEEP_MASK_POLICY = typer.Option(
    "fixed", "--mask-policy", help="fixed (one mask diameter in Å), box-relative (scales with the box) or both."
)
_SWEEP_HEALPIX_ORDER = typer.Option(
    2, "--healpix-order", help="Initial angular sampling (RELION HEALPix order: 1 = 30°, 2 = 15°, 3 = 7.5°)."
)
_SWEEP_OFFSET_RANGE = typer.Option(None, "--offset-range", help="Offset search range (Å); default RELION's 6 px.")
_SWEEP_AUTO_LOCAL_HEALPIX_ORDER = typer.Option(
    4,
    "--auto-local-healpix-order",
    help="Global runs: local angular searches from this HEALPix order on (RELION's --auto_local_healpix_order; "
    "4 = 3.75°, 2 = 15°).",
)
_SWEEP_FASTER_SAMPLING = typer.Option(
    False,
    "--faster-sampling",
    help="Finer angular sampling sooner: RELION's --auto_ignore_angles --auto_resol_angles (the Refine3D GUI's "
    "'Use finer angular sampling faster?').",
)
_SWEEP_AUTO_ITER_MAX = typer.Option(
    None, "--auto-iter-max", help="Stop each refinement at this iteration (quick runs)."
)
_SWEEP_INVERT = typer.Option(
    False, "--invert", help="Invert contrast when extracting (dark particles on the micrographs)."
)
_SWEEP_EDGE = typer.Option(
    "keep", "--edge", help="keep (RELION) or drop (cryoSPARC); dropped particles leave every box."
)
_SWEEP_SEED = typer.Option(
    1, "--seed", min=0, help="Random seed of the first repeat, 0 or more (repeat k uses seed + k - 1)."
)
_SWEEP_RANKS = typer.Option(3, "--ranks", help="MPI ranks for relion_refine_mpi (a master plus at least one per half).")
_SWEEP_THREADS = typer.Option(
    None, "--threads", help="Threads per rank (--j); default: the cores shared by the worker ranks."
)
_SWEEP_ENGINE_NAME = typer.Option(
    "relion",
    "--engine",
    help="The refinement program that runs the sweep: relion (the only one today; see docs/engines.md).",
)
_SWEEP_SCHEDULER = typer.Option(
    "local", "--scheduler", help="local (this machine, --parallel-runs at once) or slurm (one sbatch job per run)."
)
_SWEEP_PARALLEL_RUNS = typer.Option(
    None,
    "--parallel-runs",
    help="Local refinements at once; default: as many as the cores hold at ranks x threads per run.",
)
_SWEEP_SUBMIT_TEMPLATE = typer.Option(
    None,
    "--submit-template",
    help="SLURM job script in RELION's queue-template convention (XXXcommandXXX, XXXmpinodesXXX, ...); "
    "default: a built-in one.",
)
_SWEEP_SUBMIT_EXTRA = typer.Option(
    None, "--submit-extra", help='More sbatch options, e.g. "--gres=gpu:1 --time=24:00:00".'
)
_SWEEP_FROM_CONSENSUS = typer.Option(
    None,
    "--from-consensus",
    help="Start every run from these poses and half sets (run_data.star or a .cs with 3D alignments): local "
    "searches only.",
)
_SWEEP_LOCAL_HEALPIX_ORDER = typer.Option(
    4, "--local-healpix-order", help="With --from-consensus: angular sampling from the start (4 = 3.75°)."
)
_SWEEP_SIGMA_ANG = typer.Option(
    3.0, "--sigma-ang", help="With --from-consensus: angular prior (degrees, RELION's --sigma_ang)."
)
_SWEEP_TRUTH = typer.Option(
    None, "--truth", help="Particles with their true poses (cryobox simulate's particles.star): alignment errors."
)
_SWEEP_TRUTH_MAP = typer.Option(None, "--truth-map", help="The true map: each run's map is compared with it (FSC 0.5).")
_SWEEP_DRY_RUN = typer.Option(
    False, "--dry-run", help="Check every input and setting, print the plan (variants, runs), and stop."
)


@handle_input_errors
def sweep_command(
    particles: Path = _SWEEP_PARTICLES,
    boxes: str = typer.Option(..., "--boxes", help="Box sizes (px), comma-separated: 280,360,576."),
    reference: Path = _SWEEP_REFERENCE,
    particle_diameter: float = _SWEEP_PARTICLE_DIAMETER,
    out: Path = typer.Option(..., "--out", help="Output folder (data/, references/, runs/, sweep.json, sweep.png)."),
    repeats: int = _SWEEP_REPEATS,
    premultiply_from: Optional[int] = _SWEEP_PREMULTIPLY_FROM,
    mask_policy: str = _SWEEP_MASK_POLICY,
    ini_high: float = typer.Option(60.0, "--ini-high", help="Low-pass (Å) of the reference, and RELION's --ini_high."),
    healpix_order: int = _SWEEP_HEALPIX_ORDER,
    offset_range: Optional[float] = _SWEEP_OFFSET_RANGE,
    offset_step: Optional[float] = typer.Option(None, "--offset-step", help="Offset step (Å); default RELION's 2 px."),
    auto_iter_max: Optional[int] = _SWEEP_AUTO_ITER_MAX,
    invert: bool = _SWEEP_INVERT,
    edge: str = _SWEEP_EDGE,
    mask: Optional[Path] = typer.Option(None, "--mask", help="FSC mask (MRC) instead of one built from the reference."),
    seed: int = _SWEEP_SEED,
    symmetry: str = typer.Option("C1", "--sym", help="Symmetry (RELION --sym)."),
    ranks: int = _SWEEP_RANKS,
    threads: Optional[int] = _SWEEP_THREADS,
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", help="Worker processes for extraction."),
    engine_name: str = _SWEEP_ENGINE_NAME,
    scheduler: str = _SWEEP_SCHEDULER,
    parallel_runs: Optional[int] = _SWEEP_PARALLEL_RUNS,
    submit_template: Optional[Path] = _SWEEP_SUBMIT_TEMPLATE,
    queue: Optional[str] = typer.Option(None, "--queue", help="SLURM partition (sbatch --partition; XXXqueueXXX)."),
    submit_extra: Optional[str] = _SWEEP_SUBMIT_EXTRA,
    submit_command: str = typer.Option("sbatch", "--submit-command", help="The submission command."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run the failed runs again."),
    cancel: bool = typer.Option(False, "--cancel", help="Cancel this sweep's SLURM jobs (only those) and stop."),
    from_consensus: Optional[Path] = _SWEEP_FROM_CONSENSUS,
    local_healpix_order: int = _SWEEP_LOCAL_HEALPIX_ORDER,
    sigma_ang: float = _SWEEP_SIGMA_ANG,
    auto_local_healpix_order: int = _SWEEP_AUTO_LOCAL_HEALPIX_ORDER,
    faster_sampling: bool = _SWEEP_FASTER_SAMPLING,
    truth: Optional[Path] = _SWEEP_TRUTH,
    truth_map: Optional[Path] = _SWEEP_TRUTH_MAP,
    json_out: bool = typer.Option(False, "--json", help="Print sweep.json."),
    dry_run: bool = _SWEEP_DRY_RUN,
) -> None:
    """Re-extract the same particles at several boxes, refine each several times on RELION, judge the differences."""

    from cryobox.jobs.sweep import SweepSettings, run_sweep

    settings = SweepSettings(
        boxes_px=parse_boxes(boxes, flag="--boxes"),
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
        local_healpix_order=local_healpix_order,
        sigma_ang_deg=sigma_ang,
        faster_sampling=faster_sampling,
        auto_local_healpix_order=auto_local_healpix_order,
    )
    settings.check()
    engine, launcher, notes = _engine_and_launcher(
        engine_name, scheduler, ranks=ranks, threads=threads, parallel_runs=parallel_runs,
        submit_template=submit_template, queue=queue, submit_extra=submit_extra, submit_command=submit_command,
    )  # fmt: skip
    if cancel:
        from cryobox.jobs.runqueue import cancel_jobs

        if scheduler != "slurm":
            fail("--cancel cancels SLURM jobs; local runs stop with the sweep (Ctrl-C).")
        done = cancel_jobs(out, launcher)
        console.print(
            f"cancelled {len(done)} job(s) of {out}: {', '.join(str(r['job_id']) for r in done) or 'none were out'}; "
            "a later run of the same command submits those runs again."
        )
        return
    engine.check()  # before any work: a missing RELION is one sentence with the install command
    ref, ref_pixel_a, m, table, consensus_table, truth_table, truth_vol = _read_inputs(
        reference, mask, particles, from_consensus, truth, truth_map
    )
    log = progress_log(json_out)
    for n in notes:
        log(f"note: {n}")
    if dry_run:
        _print_plan(
            table, settings, ref, m, engine, launcher, out, json_out=json_out, local=consensus_table is not None
        )
        return
    from cryobox.io.paths import stack_files
    from cryobox.jobs.outputs import OutputFolder

    inputs = [particles, reference, mask, from_consensus, truth, truth_map, submit_template, *stack_files(table)]
    owns = ("data", "references", "runs", "sweep.json", "sweep.png")
    folder = OutputFolder(
        out, job="sweep", settings={}, inputs=[p for p in inputs if p is not None], owns=owns, fresh=False
    )
    with folder, LiveRuns(enabled=not json_out) as live:
        d = run_sweep(
            table,
            settings,
            reference=ref,
            reference_pixel_size_a=ref_pixel_a,
            out=out,
            engine=engine,
            mask=m,
            workers=jobs,
            log=live.log if live.active else log,
            launcher=launcher,
            retry_failed=retry_failed,
            status=live.update if live.active else None,
            consensus=consensus_table,
            truth=truth_table,
            truth_map=truth_vol,
        )
    _print_result(d, out, json_out=json_out)
