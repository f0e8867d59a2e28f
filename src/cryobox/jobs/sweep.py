"""`cryobox sweep`: the box-size experiment, with repeats, on a refinement engine.

The same particles are (re)extracted — or restacked, when only stacks are known — at every box
(and, on request, extracted at M, premultiplied by the CTF and cropped), then refined from the
same reference several times with identical settings but a different random seed. Every run's
half maps get the same masked FSC (one soft mask, built once and windowed to each box); the
resolutions of the repeats give each variant a mean and a spread, and each pair of variants a
verdict: does their difference exceed the repeats' spread (Welch's t-test)?

Everything else is held fixed: the particles (the intersection, when an edge policy drops
some), the reference (windowed to each box from one map at the particles' pixel size, low-passed
to ``ini_high_a``), the angular sampling (HEALPix order), the offset search in Å, the particle
diameter in Å. The alignment mask follows ``mask_policy``: "fixed" keeps one diameter in Å for
every box (RELION's way); "box-relative" scales it with the box (a window that is a fixed
fraction of the box, equal to the fixed one at the smallest box). Running both separates "more
box" from "a looser window".

Layout of ``out``::

    data/<box>[_pm<M>]/         extraction (stacks, particles.star) and refine.star (common set)
    references/                 ref_box<N>.mrc (windowed, low-passed), mask_box<N>.mrc
    runs/<variant>/rep<k>/      the engine's files, engine.log, result.json (written last)
    sweep.json, sweep.png       results and figure

Resuming: a run whose result.json names the same settings is skipped; any other run folder is
removed and the run starts clean.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from cryobox.core.fourier import resample_to, window
from cryobox.engines.base import HalfMaps, RefineEngine, RefineParams
from cryobox.engines.launch import Launcher, LocalLauncher
from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path
from cryobox.io.jsonio import write_json
from cryobox.io.matching import half_sets, match_particles, particle_keys, pose_array
from cryobox.io.particles import ParticleTable, read_particles, write_star
from cryobox.io.schema import CTF_REQUIRED
from cryobox.jobs.alignment import alignment_summary, format_alignment, run_alignment
from cryobox.jobs.boxmaps import reference_grids
from cryobox.jobs.convergence import convergence_flags, mark_unconverged
from cryobox.jobs.outputs import refuse_star_unsafe_path
from cryobox.jobs.reconstruct import reconstruct_particles, write_reconstructions
from cryobox.jobs.records import digest
from cryobox.jobs.runqueue import RunSpec, run_queue
from cryobox.jobs.sweep_data import contrast_note, has_micrographs, input_rows, make_arm_data, start_table
from cryobox.jobs.sweep_plan import MASK_POLICIES, Arm, SweepSettings, Variant, plan_variants, sweep_arms
from cryobox.jobs.verdicts import (
    TEST_TEXT,
    compare_variants,
    decided_best,
    format_resolution,
    fsc_of_files,
    variant_row,
    write_sweep,
)

__all__ = ["SweepSettings", "Variant", "plan_variants", "run_sweep", "summarise_sweep", "MASK_POLICIES"]

# how half maps of early-stopped runs are made; part of every run's key so a change redoes the runs
HALVES_VERSION = "cryobox-reconstruct-1"


# ------------------------------------------------------------------------------------- runs


def _reconstruct_halves(poses: Path | None, run_dir: Path, iteration: int | None) -> tuple[Path, Path]:
    """Half maps of a run stopped early, from its last poses: each half set reconstructed with
    the same CTF weighting (sum CTF.X / sum CTF^2) whether its images are plain or premultiplied."""

    if poses is None:
        raise InputError(f"{run_dir}: the engine gave neither half maps nor poses.")
    table = read_particles(poses)
    targets = {k: run_dir / f"cryobox_it{iteration or 0:03d}_{k}_unfil.mrc" for k in ("half1", "half2")}
    maps, info = reconstruct_particles(table, halves=True)
    write_reconstructions(maps, targets, pixel_size_a=info["pixel_size_a"])
    return targets["half1"], targets["half2"]


def plan_sweep(
    table: ParticleTable,
    settings: SweepSettings,
    *,
    reference: np.ndarray,
    mask: np.ndarray | None,
    engine,
    out: Path | None = None,
) -> dict:
    """Every check that needs no work, before any work: the settings, the reference and mask
    shapes, the engine, how the particles are made (extract or restack) and whether the stacks
    are big enough, and the variants (a mask diameter that does not fit a box is refused here).
    Returns the plan: mode, variants, number of runs, engine description."""

    s = settings
    s.check()
    if out is not None:
        refuse_star_unsafe_path(out, what="output folder")
    ref_shape = np.shape(reference)
    if len(ref_shape) != 3 or len(set(ref_shape)) != 1:
        raise InputError(f"`reference` must be a cubic 3D map, got shape {ref_shape}; give the map to refine from.")
    if mask is not None and (np.ndim(mask) != 3 or len(set(np.shape(mask))) != 1):
        raise InputError(f"`mask` must be a cubic 3D map, got shape {np.shape(mask)}.")
    table.require(*CTF_REQUIRED, purpose="refinement with CTF correction")  # a file with no rows too
    engine_info = engine.check()
    if has_micrographs(table):
        mode = "extract"
    elif "image_path" in table.data:
        mode = "restack"
        box_in = int(table.data["box_px"].iloc[0]) if "box_px" in table.data else 0
        need = max(list(s.boxes_px) + [s.premultiply_from_px or 0])
        if box_in < need:
            raise InputError(
                f"{table.path}: the micrographs are not available and the particle stacks are {box_in} px; "
                f"restacking to {need} px needs stacks at least that big (or give the micrographs)."
            )
    else:
        raise InputError(
            f"{table.path}: neither micrographs with coordinates nor particle stacks are named; cannot extract."
        )
    psize = float(table.data["pixel_size_a"].iloc[0]) if "pixel_size_a" in table.data else None
    variants, notes = plan_variants(s, pixel_size_a=psize) if psize else ([], [])
    return {
        "mode": mode,
        "engine": engine_info,
        "pixel_size_a": psize,
        "variants": [v.label for v in variants],
        "descriptions": [v.description for v in variants],
        "n_runs": len(variants) * s.repeats,
        "notes": notes,
    }


@dataclass
class SweepParticles:
    """The particles every run of a sweep refines (stage 1): each arm's refine.star (the common
    set, in one order, with or without consensus poses), their pixel size, and the keys that tie a
    run to exactly these particles."""

    refine_stars: dict[Arm, Path]
    counts: dict[str, int]
    n_common: int
    pixel_size_a: float
    order_digest: str
    start_digest: str | None
    truth_poses: np.ndarray | None
    notes: list[str] = field(default_factory=list)


def run_sweep(
    table: ParticleTable,
    settings: SweepSettings,
    *,
    reference: np.ndarray,
    reference_pixel_size_a: float,
    out: Path,
    engine: RefineEngine,
    mask: np.ndarray | None = None,
    workers: int | None = None,
    log=print,
    plot: bool = True,
    launcher: Launcher | None = None,
    retry_failed: bool = False,
    status=None,
    poll_s: float | None = None,
    consensus: ParticleTable | None = None,
    truth: ParticleTable | None = None,
    truth_map: tuple[np.ndarray, float] | None = None,
) -> dict:
    """Run (or resume) the whole sweep; writes sweep.json and sweep.png in ``out`` and returns the
    sweep.json dict.

    ``launcher``: where the refinements run (default: this machine, one at a time); SLURM jobs
    that a previous call left running are re-attached. ``consensus``: particles with poses and
    half sets to start every run from (local searches, see ``SweepSettings.local_healpix_order``).
    ``truth`` (particles with their true poses) and ``truth_map`` (map, pixel size): each run's
    alignment and map are measured against them. ``status(rows)``: called every ``poll_s``
    seconds with one row per run (state, job id, iteration, resolution).

    The stages: plan (every check before any work), particles for every arm, one reference and
    FSC mask per box, one run spec per variant and repeat, the runs (launched, followed, each
    finished into result.json), the summary."""
    s = settings
    t_start = time.perf_counter()
    timings = dict.fromkeys(("extraction_s", "references_s", "engine_s", "reconstruct_s", "fsc_s", "summary_s"), 0.0)
    out = Path(out)
    plan = plan_sweep(table, s, reference=reference, mask=mask, engine=engine, out=out)
    mode = plan["mode"]
    out.mkdir(parents=True, exist_ok=True)
    log(
        f"sweep: {len(table)} particles, {mode} at {', '.join(map(str, sorted(s.boxes_px)))} px"
        + (f", premultiplied from {s.premultiply_from_px} px" if s.premultiply_from_px else "")
        + f"; {s.repeats} repeat(s); engine {plan['engine'].get('engine')} {plan['engine'].get('version', '')}"
    )
    t0 = time.perf_counter()
    particles = prepare_particles(
        table, s, mode=mode, out=out, log=log, workers=workers, consensus=consensus, truth=truth
    )
    timings["extraction_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    psize = particles.pixel_size_a
    variants, vnotes = plan_variants(s, pixel_size_a=psize)
    refs, masks, rnotes = reference_grids(
        reference, reference_pixel_size_a, psize, sorted(s.boxes_px), s.ini_high_a, mask, out / "references"
    )
    for n in vnotes + rnotes:
        log(f"  note: {n}")
    timings["references_s"] = time.perf_counter() - t0
    specs = run_specs(variants, s, particles, refs, engine=engine, mode=mode, out=out, local=consensus is not None)
    finish = RunFinisher(
        specs, variants, engine_name=engine.name, masks=masks, particles=particles, timings=timings, log=log,
        truth_map=truth_map,
    )  # fmt: skip
    launcher = launcher or LocalLauncher(1)
    queue = run_queue(
        specs,
        engine=engine,
        launcher=launcher,
        finish=finish,
        log=log,
        status=status,
        retry_failed=retry_failed,
        poll_s=poll_s,
        iter_max=s.auto_iter_max,
    )
    timings["engine_s"] = queue.engine_seconds
    runs: dict[str, list[dict]] = {v.label: [] for v in variants}
    for spec in specs:
        if spec.name in queue.results:
            runs[spec.variant].append(queue.results[spec.name])
    t0 = time.perf_counter()
    summary = summarise_sweep(
        variants,
        runs,
        settings=s,
        pixel_size_a=psize,
        mode=mode,
        n_particles_in=len(table),
        n_common=particles.n_common,
        counts=particles.counts,
        engine_info=plan["engine"],
        notes=particles.notes + vnotes + rnotes,
    )
    _complete_summary(summary, variants, runs, specs, queue=queue, launcher=launcher, consensus=consensus, s=s)
    timings["summary_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    # cryobox's own work: extraction, references, submitting and collecting, half maps, FSC,
    # summary (the time spent waiting for the engine is not overhead, however many runs are out)
    timings["engine_wall_s"] = queue.engine_wall_seconds
    timings["overhead_s"] = max(0.0, timings["total_s"] - queue.engine_wall_seconds)
    summary["timings"] = timings
    write_sweep(out, summary, plot=plot)
    return summary


def prepare_particles(
    table: ParticleTable,
    s: SweepSettings,
    *,
    mode: str,
    out: Path,
    log,
    workers: int | None,
    consensus: ParticleTable | None,
    truth: ParticleTable | None,
) -> SweepParticles:
    """Stage 1: the particles of every arm (extracted or restacked), the set present at every
    box, each arm's refine.star (rewritten only when the set or the start changed), the start
    poses from a consensus and the true poses, in the refined order."""
    arms = sweep_arms(s)
    tables = {
        arm: read_particles(make_arm_data(table, mode, *arm, s, out / "data" / arm.label, log, workers)) for arm in arms
    }
    key_sets = {a: particle_keys(t, mode) for a, t in tables.items()}
    common = set.intersection(*(set(k) for k in key_sets.values()))
    counts = {a.label: len(k) for a, k in key_sets.items()}
    if not common:
        raise InputError("no particle is present at every box (the edge policy dropped them all); use `edge='keep'`.")
    order = [k for k in key_sets[arms[0]] if k in common]
    rows_in = input_rows(table, mode, order)  # the input row of every refined particle
    start_poses, start_halves = _consensus_start(table, consensus, rows_in)
    start_digest = None if start_poses is None else digest([start_poses.round(4).tolist(), start_halves.tolist()])
    truth_poses = None
    if truth is not None:
        truth_poses = pose_array(truth, what="`truth`")[match_particles(table, truth, what="`truth`")[rows_in]]
    order_digest = digest(order)  # the refined particles, in order: part of every run's key
    wanted = order_digest if start_digest is None else digest([order_digest, start_digest])
    refine_stars = {}
    for a, t in tables.items():
        pos = {k: i for i, k in enumerate(key_sets[a])}
        sub = t.with_data(t.data.iloc[[pos[k] for k in order]].reset_index(drop=True))
        refine_stars[a] = _write_refine_star(
            out / "data" / a.label, start_table(sub, start_poses, start_halves), wanted
        )
    notes = []
    if len(common) < len(table):
        notes.append(
            f"{len(common)} of {len(table)} particles are present at every box and are refined; per arm: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
    pixel_sizes = {round(float(t.data["pixel_size_a"].iloc[0]), 6) for t in tables.values()}
    if len(pixel_sizes) != 1:
        raise InputError(
            f"the extracted particles have several pixel sizes ({sorted(pixel_sizes)} Å/px); the sweep needs one."
        )
    psize = pixel_sizes.pop()
    note = contrast_note(tables[arms[0]], s.particle_diameter_a, psize)
    if note:
        notes.append(note)
        log(f"  note: {note}")
    return SweepParticles(refine_stars, counts, len(common), psize, order_digest, start_digest, truth_poses, notes)


def _consensus_start(table: ParticleTable, consensus: ParticleTable | None, rows_in: np.ndarray):
    """The consensus poses and half sets of the refined particles (None, None without one)."""
    if consensus is None:
        return None, None
    c_rows = match_particles(table, consensus, what="`consensus`")[rows_in]
    poses = pose_array(consensus, what="`consensus`")[c_rows]
    try:
        halves = half_sets(consensus)[c_rows]
    except InputError:
        raise InputError(
            f"{consensus.path}: no half-set labels (rlnRandomSubset / alignments3D/split); local refinement "
            "from a consensus keeps its half sets, so give the data STAR of a gold-standard refinement (or a "
            "cryoSPARC .cs with alignments3D/split)."
        ) from None
    return poses, halves


def _write_refine_star(folder: Path, particles: ParticleTable, key: str) -> Path:
    """``folder``/refine.star, rewritten only when ``key`` (the particles and their start)
    differs from the one refine.key records."""
    star, keyfile = folder / "refine.star", folder / "refine.key"
    current = keyfile.read_text() if keyfile.exists() and star.exists() else None
    if current != key:
        write_star(star, particles)
        with atomic_path(keyfile) as tmp:
            tmp.write_text(key)
    return star


def run_specs(
    variants: list[Variant],
    s: SweepSettings,
    particles: SweepParticles,
    refs: dict[int, Path],
    *,
    engine: RefineEngine,
    mode: str,
    out: Path,
    local: bool,
) -> list[RunSpec]:
    """Stage 3: one run per variant and repeat, with its refinement parameters and the key that
    ties its result to exactly these settings and particles (a resumed sweep reuses a run whose
    result.json carries the same key)."""
    psize = particles.pixel_size_a
    specs = []
    for v in variants:
        star = particles.refine_stars[v.arm]
        for rep in range(s.repeats):
            params = refine_params(s, v, psize, seed=s.first_seed + rep, local=local)
            key = digest(
                {
                    # (a setting added later enters the key only when used: earlier runs stay valid)
                    "params": _key_params(params),
                    "engine": engine.name,
                    "particles": particles.order_digest,
                    "start": particles.start_digest,
                    "data": str(star),
                    "invert": s.invert,
                    "edge": s.edge,
                    "mode": mode,
                    "halves": HALVES_VERSION,
                }
            )
            specs.append(
                RunSpec(
                    variant=v.label,
                    repeat=rep + 1,
                    seed=params.random_seed,
                    params=params,
                    run_dir=out / "runs" / v.label / f"rep{rep + 1}",
                    key=key,
                    particles_star=star,
                    reference=refs[v.box_px],
                    name=f"{v.label}/rep{rep + 1}",
                    description=v.description,
                    job_name=f"cryobox-{out.resolve().name}-{v.label}-rep{rep + 1}",
                )
            )
    return specs


#: settings added after runs were made, with the value those runs had: left out of a run's key at
#: that value, so the runs of earlier versions are still read back
_LATER_PARAMS = {"faster_sampling": False, "auto_local_healpix_order": 4}


def _key_params(params: RefineParams) -> dict:
    return {k: v for k, v in asdict(params).items() if k not in _LATER_PARAMS or v != _LATER_PARAMS[k]}


def refine_params(s: SweepSettings, v: Variant, pixel_size_a: float, *, seed: int, local: bool) -> RefineParams:
    """The refinement parameters of one run of variant ``v``: the sweep's and the CLI's
    ``--dry-run`` both build them here. Offsets default to RELION's 6 px range and 2 px step at
    the particles' pixel size; ``local``: searches from consensus poses."""
    return RefineParams(
        pixel_size_a=pixel_size_a,
        box_px=v.box_px,
        particle_diameter_a=v.mask_diameter_a,
        ini_high_a=s.ini_high_a,
        random_seed=seed,
        healpix_order=s.healpix_order,
        auto_local_healpix_order=s.auto_local_healpix_order,
        offset_range_a=s.offset_range_a if s.offset_range_a is not None else 6.0 * pixel_size_a,
        offset_step_a=s.offset_step_a if s.offset_step_a is not None else 2.0 * pixel_size_a,
        auto_iter_max=s.auto_iter_max,
        symmetry=s.symmetry,
        local_healpix_order=s.local_healpix_order if local else None,
        sigma_ang_deg=s.sigma_ang_deg if local else None,
        faster_sampling=s.faster_sampling,
    )


class RunFinisher:
    """Stage 4's last step for each run: half maps (reconstructed from the last poses when the
    run stopped early), the FSC, the alignment against the truth; result.json written last."""

    def __init__(self, specs, variants, *, engine_name, masks, particles: SweepParticles, timings, log, truth_map):
        self.specs, self.engine_name, self.masks, self.timings, self.log = specs, engine_name, masks, timings, log
        self.by_name = {spec.name: next(v for v in variants if v.label == spec.variant) for spec in specs}
        self.psize = particles.pixel_size_a
        self.truth_poses = particles.truth_poses
        self.truth_map = truth_map
        self._grids: dict[int, np.ndarray] = {}

    def truth_grid(self, box: int) -> np.ndarray:
        """The true map on one box's grid (Fourier-rescaled to the particles' pixel size)."""
        if box not in self._grids:
            vol, true_pixel_a = self.truth_map
            self._grids[box] = window(resample_to(vol, true_pixel_a, self.psize)[0], box, ndim=3)
        return self._grids[box]

    def __call__(self, spec: RunSpec, halves: HalfMaps, seconds: float) -> dict:
        v = self.by_name[spec.name]
        rec_seconds = 0.0
        if halves.half1 is None:
            t0 = time.perf_counter()
            h1, h2 = _reconstruct_halves(halves.poses, spec.run_dir, halves.iteration)
            halves = replace(halves, half1=h1, half2=h2)
            rec_seconds = time.perf_counter() - t0
            self.timings["reconstruct_s"] += rec_seconds
            source = f"cryobox reconstruction from the poses of iteration {halves.iteration}"
        else:
            source = f"{self.engine_name} final half maps"
        t0 = time.perf_counter()
        mask = self.masks[v.box_px]
        fsc = fsc_of_files(halves.half1, halves.half2, mask, self.psize, None)  # expectation over phase draws
        grid = self.truth_grid if self.truth_map is not None else None
        alignment = run_alignment(halves, spec, self.truth_poses, grid, mask, self.psize)
        fsc_seconds = time.perf_counter() - t0
        self.timings["fsc_s"] += fsc_seconds
        result = {
            "key": spec.key,
            "variant": v.label,
            "repeat": spec.repeat,
            "seed": spec.seed,
            "engine_seconds": seconds,
            "command": spec.command,
            "half1": str(halves.half1),
            "half2": str(halves.half2),
            "half_maps_from": source,
            "iteration": halves.iteration,
            "converged": halves.converged,
            "engine_resolution_a": halves.engine_resolution_a,
            "reconstruct_seconds": rec_seconds,
            "fsc_seconds": fsc_seconds,
            **alignment,
            **fsc,
        }
        write_json(spec.run_dir / "result.json", result)
        self.log(
            f"[{self.specs.index(spec) + 1}/{len(self.specs)}] {spec.label}: {format_resolution(result)}"
            + (f", {format_alignment(result)}" if result.get("truth") else "")
            + f" after {halves.iteration} iterations in {seconds:.0f} s"
        )
        return result


def _complete_summary(summary: dict, variants, runs, specs, *, queue, launcher, consensus, s: SweepSettings) -> None:
    """What only a sweep knows, added to its summary: alignment statistics, the runs that did not
    converge (said first in every output), failed runs, the scheduler, the consensus start."""
    summary["alignment"] = alignment_summary(variants, runs, specs)
    mark_unconverged(summary, convergence_flags(runs, summary["alignment"].get("between_runs")))
    summary["failed_runs"] = queue.failed
    summary["scheduler"] = {
        **launcher.check(),
        "parallel_runs": launcher.capacity(),
        "submitted": queue.submitted,
        "reattached": queue.reattached,
        "read_back": queue.reused,
        "wall_s": queue.wall_seconds,
    }
    if consensus is not None:
        summary["start"] = {
            "from_consensus": str(consensus.path),
            "local_healpix_order": s.local_healpix_order,
            "sigma_ang_deg": s.sigma_ang_deg,
        }


# ------------------------------------------------------------------------------ summary


def summarise_sweep(
    variants: list[Variant],
    runs: dict[str, list[dict]],
    *,
    settings: SweepSettings,
    pixel_size_a: float,
    mode: str,
    n_particles_in: int,
    n_common: int,
    counts: dict,
    engine_info: dict,
    notes: list[str],
) -> dict:
    """sweep.json: per variant the repeats' resolutions, mean and SD; per pair the verdict."""
    table = [
        variant_row(
            v.label,
            runs.get(v.label, []),
            box_px=v.box_px,
            pixel_size_a=pixel_size_a,
            description=v.description,
            premultiply_from_px=v.premultiply_from_px,
            mask_policy=v.mask_policy,
            mask_diameter_a=v.mask_diameter_a,
        )
        for v in variants
    ]
    comparisons = compare_variants(table, pixel_size_a=pixel_size_a)
    best = decided_best(table, comparisons)
    half_maps: dict[str, int] = {}
    for rs in runs.values():
        for r in rs:
            src = r.get("half_maps_from") or "unknown"
            half_maps[src] = half_maps.get(src, 0) + 1
    return {
        "cryobox": "sweep",
        "version": 1,
        "settings": {**asdict(settings), "boxes_px": sorted(settings.boxes_px)},
        "pixel_size_a": pixel_size_a,
        "mode": mode,
        "n_particles_in": n_particles_in,
        "n_particles_refined": n_common,
        "particles_per_arm": counts,
        "engine": engine_info,
        "resolution_rule": "FSC = 0.143 of the masked, phase-randomisation-corrected FSC (relion_postprocess); "
        "'resolution_a' by RELION's rule (last shell above), 'interpolated' between shells",
        "test": TEST_TEXT,
        "variants": table,
        "comparisons": comparisons,
        "best": best,
        "notes": notes,
        "half_maps_from": half_maps,
    }
