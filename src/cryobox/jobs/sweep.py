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
from dataclasses import asdict, dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np

from cryobox.engines.base import HalfMaps, RefineEngine, RefineParams
from cryobox.engines.launch import Launcher, LocalLauncher
from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path
from cryobox.io.jsonio import write_json
from cryobox.io.particles import ParticleTable, read_particles, resolve_path, search_roots, write_star
from cryobox.io.schema import CTF_REQUIRED
from cryobox.jobs.boxmaps import reference_grids
from cryobox.jobs.convergence import convergence_flags, mark_unconverged
from cryobox.jobs.records import digest
from cryobox.jobs.runqueue import RunSpec, run_queue
from cryobox.jobs.runqueue import progress_line as _progress_line  # noqa: F401  (kept for callers)

__all__ = ["SweepSettings", "Variant", "plan_variants", "run_sweep", "summarise_sweep", "MASK_POLICIES"]

MASK_POLICIES = ("fixed", "box-relative")
RESOLUTION_KEY = "interpolated_resolution_a"  # the continuous value the repeat test uses
# how half maps of early-stopped runs are made; part of every run's key so a change redoes the runs
HALVES_VERSION = "cryobox-reconstruct-1"
POSE_COLUMNS = ("angle_rot_deg", "angle_tilt_deg", "angle_psi_deg", "shift_x_a", "shift_y_a")
POSE_PREFIXES = (
    "rlnAngle",
    "rlnOrigin",
    "rlnRandomSubset",
    "rlnClassNumber",
    "rlnNormCorrection",
    "rlnLogLikeliContribution",
    "rlnMaxValueProbDistribution",
    "rlnNrOfSignificantSamples",
    "alignments3D/",
    "alignments2D/",
)


@dataclass(frozen=True)
class SweepSettings:
    """What the sweep varies (boxes, premultiply source, mask policies) and what it holds fixed."""

    boxes_px: tuple[int, ...]
    particle_diameter_a: float
    repeats: int = 3
    premultiply_from_px: int | None = None
    mask_policies: tuple[str, ...] = ("fixed",)
    ini_high_a: float = 60.0
    healpix_order: int = 2
    offset_range_a: float | None = None  # default: RELION's 6 px at the particles' pixel size
    offset_step_a: float | None = None  # default: RELION's 2 px
    auto_iter_max: int | None = None
    invert: bool = False
    edge: str = "keep"
    first_seed: int = 1
    symmetry: str = "C1"
    #: with a consensus start: local searches at this HEALPix order from the first iteration
    #: (4 = 3.75°) with this angular prior (degrees; RELION's --sigma_ang)
    local_healpix_order: int = 4
    sigma_ang_deg: float = 3.0

    def check(self) -> None:
        if not self.boxes_px:
            raise InputError("`boxes_px`: give at least one box size (px), like `boxes_px` 280,360,576.")
        if any(b < 16 for b in self.boxes_px):
            raise InputError(f"`boxes_px`: every box must be at least 16 px, got {list(self.boxes_px)}.")
        if len(set(self.boxes_px)) != len(self.boxes_px):
            raise InputError(f"`boxes_px`: each box once, got {list(self.boxes_px)}.")
        if self.repeats < 1:
            raise InputError(f"`repeats` must be at least 1 (2 or more to judge differences), got {self.repeats}.")
        if self.premultiply_from_px is not None and not any(b < self.premultiply_from_px for b in self.boxes_px):
            raise InputError(
                f"`premultiply_from_px` {self.premultiply_from_px} px: no box in `boxes_px` is smaller, so nothing is "
                "cropped."
            )
        bad = [p for p in self.mask_policies if p not in MASK_POLICIES]
        if bad or not self.mask_policies:
            raise InputError(
                f"`mask_policies` takes fixed, box-relative or both, got {','.join(self.mask_policies) or 'nothing'}."
            )
        if not self.particle_diameter_a > 0:
            raise InputError(f"`particle_diameter_a` must be positive (Å), got {self.particle_diameter_a}.")
        if not self.ini_high_a > 0:
            raise InputError(f"`ini_high_a` must be positive (Å), got {self.ini_high_a}.")
        if self.edge not in ("keep", "drop"):
            raise InputError(f"`edge` must be keep or drop, got {self.edge!r}.")
        for name in ("healpix_order", "local_healpix_order"):
            v = getattr(self, name)
            if not 0 <= v <= 8:  # RELION's orders: 0 = 60°, 8 = 0.23°
                raise InputError(f"`{name}` must be a HEALPix order from 0 (60°) to 8 (0.23°), got {v}.")


@dataclass(frozen=True)
class Variant:
    """One arm of the experiment: a box, how its particles were made, and its alignment mask."""

    box_px: int
    premultiply_from_px: int | None
    mask_policy: str
    mask_diameter_a: float

    @property
    def data_label(self) -> str:
        return arm_label(self.box_px, self.premultiply_from_px)

    @property
    def label(self) -> str:
        return self.data_label + ("" if self.mask_policy == "fixed" else "_boxrel")

    @property
    def description(self) -> str:
        how = (
            f"extracted at {self.premultiply_from_px} px, CTF-premultiplied, cropped to {self.box_px} px"
            if self.premultiply_from_px
            else f"{self.box_px} px"
        )
        return f"{how}; mask {self.mask_diameter_a:.0f} Å ({self.mask_policy})"


def arm_label(box_px: int, premultiply_from_px: int | None) -> str:
    """The name of one (box, premultiply source) arm: its data folder and the start of its variants' labels."""
    return f"box{box_px}" + (f"_pm{premultiply_from_px}" if premultiply_from_px else "")


def sweep_arms(settings: SweepSettings) -> list[tuple[int, int | None]]:
    """The (box, premultiply source) pairs whose particles are made: every box plain, then every
    box smaller than --premultiply-from premultiplied from it; smallest box first."""
    boxes = sorted(settings.boxes_px)
    pm = settings.premultiply_from_px
    return [(b, None) for b in boxes] + ([(b, pm) for b in boxes if b < pm] if pm else [])


def plan_variants(settings: SweepSettings, *, pixel_size_a: float) -> tuple[list[Variant], list[str]]:
    """Every (box, premultiply, mask policy) combination, and notes on what was merged or skipped.

    Box-relative masks scale ``particle_diameter_a`` by box / smallest box, so at the smallest
    box the two policies coincide and only the fixed run is made.
    """
    s = settings
    smallest = min(s.boxes_px)
    notes = []
    out = []
    for policy in s.mask_policies:
        for box, pm in sweep_arms(s):
            diameter = s.particle_diameter_a * (box / smallest if policy == "box-relative" else 1.0)
            if policy == "box-relative" and "fixed" in s.mask_policies and box == smallest:
                notes.append(f"{box} px: the box-relative mask equals the fixed one ({diameter:.0f} Å); run once.")
                continue
            if diameter > box * pixel_size_a:
                raise InputError(
                    f"`particle_diameter_a` {s.particle_diameter_a:g} Å: the {policy} mask ({diameter:.0f} Å) is "
                    "larger than the "
                    f"{box} px box ({box * pixel_size_a:.0f} Å at {pixel_size_a:g} Å/px); lower it or drop the box."
                )
            out.append(Variant(box, pm, policy, float(diameter)))
    return out, notes


# ------------------------------------------------------------------------------------- data


def _has_micrographs(table: ParticleTable) -> bool:
    d = table.data
    if not {"micrograph_name", "coord_x_px", "coord_y_px"} <= set(d.columns) or d["micrograph_name"].isna().any():
        return False
    return resolve_path(str(d["micrograph_name"].iloc[0]), search_roots(table)).exists()


def _particle_keys(table: ParticleTable, mode: str) -> list:
    d = table.data
    if mode == "restack":
        return list(range(len(d)))
    return list(
        zip(
            d["micrograph_name"].astype(str),
            np.round(d["coord_x_px"].to_numpy(float), 2),
            np.round(d["coord_y_px"].to_numpy(float), 2),
        )
    )


def _strip_poses(table: ParticleTable) -> ParticleTable:
    """Refinements start from the reference alone: poses, shifts and half-set labels go."""
    d = table.data
    drop = [c for c in d.columns if c in POSE_COLUMNS or c.startswith(POSE_PREFIXES)]
    return ParticleTable(
        d.drop(columns=drop).reset_index(drop=True),
        kind="particles",
        source_format=table.source_format,
        path=None,
        optics_passthrough=table.optics_passthrough,
    )


def _contrast_note(table: ParticleTable, diameter_a: float, pixel_size_a: float, sample: int = 200) -> str | None:
    """A sentence when the extracted particles are dark on a bright background: RELION refines
    white particles against a positive reference, and dark ones align to noise (say `invert`)."""
    from cryobox.core.extract import particle_contrast
    from cryobox.io.mrc import StackReader
    from cryobox.io.paths import find_stack

    d = table.data
    if "image_path" not in d or len(d) == 0 or bool(d.get("ctf_premultiplied", False) is True):
        return None
    rows = np.linspace(0, len(d) - 1, min(sample, len(d))).astype(int)
    sub = d.iloc[rows]
    images = []
    for path, group in sub.groupby(sub["image_path"].astype(str)):
        stack = find_stack(path, search_roots(table), where=table.path)
        images.append(StackReader(stack).read(group["image_index"].to_numpy()))
    box = images[0].shape[-1]
    radius = min(0.3 * diameter_a / pixel_size_a, 0.5 * box - 2)  # the particle's core, not its edge
    c = particle_contrast(np.concatenate(images), radius)
    if c < -0.05:
        return (
            f"the extracted particles are darker than their background at their centre ({0.6 * diameter_a:.0f} Å "
            f"circle; contrast "
            f"{c:.2f} SD over {len(rows)} particles); RELION refines white particles against a positive reference, "
            "so if the micrographs show dark particles, extract with `invert`."
        )
    return None


def _start_table(table: ParticleTable, poses: np.ndarray | None, halves: np.ndarray | None) -> ParticleTable:
    """The particles a run refines: without poses (a global search from the reference), or with
    the consensus poses and half sets (local searches)."""
    t = _strip_poses(table)
    if poses is None:
        return t
    d = t.data
    for k, col in enumerate(POSE_COLUMNS):
        d[col] = poses[:, k]
    d["rlnRandomSubset"] = np.asarray(halves, dtype=np.int64)
    return t


def _input_rows(table: ParticleTable, mode: str, order: list) -> np.ndarray:
    """The row of the input table behind each refined particle (keys as ``_particle_keys``)."""
    if mode == "restack":
        return np.asarray(order, dtype=np.int64)
    pos = {k: i for i, k in enumerate(_particle_keys(table, "extract"))}
    return np.array([pos[k] for k in order], dtype=np.int64)


def _match_keys(table: ParticleTable, how: str) -> list:
    d = table.data
    if how == "coordinates":
        mics = d["micrograph_name"].astype(str).map(lambda p: Path(p).name)
        return list(
            zip(mics, np.round(d["coord_x_px"].to_numpy(float), 1), np.round(d["coord_y_px"].to_numpy(float), 1))
        )
    names = d["image_path"].astype(str).map(lambda p: Path(p).name)
    return list(zip(names, d["image_index"].to_numpy(np.int64)))


def match_particles(table: ParticleTable, other: ParticleTable, *, what: str) -> np.ndarray:
    """For each particle of ``table``, its row in ``other``: by micrograph and coordinates when
    both have them, else by image (stack and number), else by order when both have as many rows.
    InputError naming ``other`` when some particle has no match."""
    cols = set(table.data.columns), set(other.data.columns)
    coords = {"micrograph_name", "coord_x_px", "coord_y_px"}
    images = {"image_path", "image_index"}
    if coords <= cols[0] and coords <= cols[1]:
        how = "coordinates"
    elif images <= cols[0] and images <= cols[1]:
        how = "images"
    elif len(table) == len(other):
        return np.arange(len(table))
    else:
        raise InputError(
            f"{other.path}: {what} names its particles neither by micrograph and coordinates nor by image, and "
            f"holds {len(other)} particles against {len(table)}; give the file of the same particles."
        )
    pos: dict = {}
    for i, k in enumerate(_match_keys(other, how)):
        pos.setdefault(k, i)
    keys = _match_keys(table, how)
    rows = np.array([pos.get(k, -1) for k in keys], dtype=np.int64)
    missing = int((rows < 0).sum())
    if missing:
        first = keys[int(np.argmax(rows < 0))]
        raise InputError(
            f"{other.path}: {missing} of {len(table)} particles of {table.path} are not in {what} (matched by "
            f"{'micrograph and coordinates' if how == 'coordinates' else 'stack and image number'}; the first "
            f"missing is {first}); give the file of the same particles."
        )
    return rows


def pose_array(table: ParticleTable, *, what: str) -> np.ndarray:
    """(n, 5) poses: rot, tilt, psi (degrees), shift x, shift y (Å); InputError when absent."""
    d = table.data
    missing = [c for c in POSE_COLUMNS[:3] if c not in d]
    if missing:
        from cryobox.io.schema import relion_label

        raise InputError(
            f"{table.path}: {what} has no poses ({relion_label(missing[0])} is missing); give the data STAR of a "
            "refinement (run_data.star) or a cryoSPARC .cs with alignments3D/pose."
        )
    cols = [d[c].to_numpy(np.float64) if c in d else np.zeros(len(d)) for c in POSE_COLUMNS]
    return np.stack(cols, axis=1)


def _make_data(
    table: ParticleTable, mode: str, box: int, pm: int | None, s: SweepSettings, folder: Path, log, workers
) -> Path:
    """Extract (or restack) the particles for one (box, premultiply) arm; returns its particles.star."""
    if mode == "extract":
        from cryobox.jobs.extract import ExtractOptions, run_extract

        opts = ExtractOptions(box_px=box, invert=s.invert, premultiply_box_px=pm, edge=s.edge)
        summary = run_extract(table, opts, folder, workers=workers, log=None, from_star=table.kind == "micrographs")
        log(
            f"  {folder.name}: {summary.n_written} particles written, {summary.n_dropped_at_edges} dropped at edges, "
            f"{summary.n_skipped_done} micrographs already done"
        )
        return Path(summary.star)
    from cryobox.jobs.restack import RestackOptions, run_restack

    src = table
    if pm:
        box_in = int(table.data["box_px"].iloc[0])
        if box_in != pm:  # window to M first, then premultiply on the M box and crop
            inter = run_restack(table, RestackOptions(box_px=pm), folder / "window", workers=workers)
            src = read_particles(inter["star"])
    info = run_restack(
        src,
        RestackOptions(box_px=box, premultiply=bool(pm), norm=True, invert=s.invert),
        folder,
        workers=workers,
    )
    log(f"  {folder.name}: {info['n_particles']} particles restacked")
    return Path(info["star"])


# ------------------------------------------------------------------------------- references


# ------------------------------------------------------------------------------------- runs


def _reconstruct_halves(poses: Path | None, run_dir: Path, iteration: int | None) -> tuple[Path, Path]:
    """Half maps of a run stopped early, from its last poses: each half set reconstructed with
    the same CTF weighting (sum CTF.X / sum CTF^2) whether its images are plain or premultiplied."""
    from cryobox.jobs.reconstruct import reconstruct_particles, write_reconstructions

    if poses is None:
        raise InputError(f"{run_dir}: the engine gave neither half maps nor poses.")
    table = read_particles(poses)
    targets = {k: run_dir / f"cryobox_it{iteration or 0:03d}_{k}_unfil.mrc" for k in ("half1", "half2")}
    maps, info = reconstruct_particles(table, halves=True)
    write_reconstructions(maps, targets, pixel_size_a=info["pixel_size_a"])
    return targets["half1"], targets["half2"]


def _run_fsc(half1: Path, half2: Path, mask_path: Path, pixel_size_a: float, seed: int | None) -> dict:
    from cryobox.io.mrc import read_mrc

    h1, _ = read_mrc(half1)
    h2, _ = read_mrc(half2)
    m, _ = read_mrc(mask_path)
    return run_fsc_record(h1, h2, m, pixel_size_a=pixel_size_a, seed=seed)


def run_fsc_record(
    h1: np.ndarray, h2: np.ndarray, m: np.ndarray | None, *, pixel_size_a: float, seed: int | None = None
) -> dict:
    """One run's FSC as the sweep and judge record it: ``cryobox fsc --mask`` (masked,
    phase-randomisation-corrected), resolutions at 0.143 (RELION's rule and interpolated) and 0.5,
    and the curve. Randomises from 2/3 Nyquist when the unmasked FSC never drops below 0.8. The
    phase-randomised curve is its expectation over all draws (``seed`` None) or one seeded draw."""
    from cryobox.core.fsc import masked_fsc_analysis

    try:
        res = masked_fsc_analysis(h1, h2, pixel_size_a=pixel_size_a, mask=m, seed=seed)
    except ValueError:  # the unmasked FSC never drops below 0.8: randomise from 2/3 Nyquist
        res = masked_fsc_analysis(
            h1,
            h2,
            pixel_size_a=pixel_size_a,
            mask=m,
            seed=seed,
            randomise_at_a=3.0 * pixel_size_a,
        )
    r143 = res.resolution(0.143)
    r05 = res.resolution(0.5)
    return {
        "resolution_a": r143["resolution_a"],
        "interpolated_resolution_a": r143["interpolated_resolution_a"],
        "resolution_0.5_a": r05["resolution_a"],
        "randomise_at_shell": res.randomise_at_shell,
        "limited_by_nyquist": r143["limited_by_nyquist"],
        "measurement_sd_a": r143["measurement_sd_a"],
        "warnings": list(res.warnings),
        "mask_check_failed": any("too sharp or too tight" in w for w in res.warnings),
        "curve": {
            "frequency_inv_a": [float(v) for v in res.frequency_inv_a],
            "fsc": [float(v) for v in res.final],
            "fsc_unmasked": [float(v) for v in res.fsc_unmasked],
        },
    }


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
    from cryobox.jobs.outputs import refuse_star_unsafe_path

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
    if _has_micrographs(table):
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
    seconds with one row per run (state, job id, iteration, resolution)."""
    s = settings
    t_start = time.perf_counter()
    timings = {
        "extraction_s": 0.0,
        "references_s": 0.0,
        "engine_s": 0.0,
        "reconstruct_s": 0.0,
        "fsc_s": 0.0,
        "summary_s": 0.0,
    }
    out = Path(out)
    plan = plan_sweep(table, s, reference=reference, mask=mask, engine=engine, out=out)
    mode, engine_info = plan["mode"], plan["engine"]
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    log(
        f"sweep: {len(table)} particles, {mode} at {', '.join(map(str, sorted(s.boxes_px)))} px"
        + (f", premultiplied from {s.premultiply_from_px} px" if s.premultiply_from_px else "")
        + f"; {s.repeats} repeat(s); engine {engine_info.get('engine')} {engine_info.get('version', '')}"
    )

    # 1. particles for every (box, premultiply) arm
    t0 = time.perf_counter()
    arms = sweep_arms(s)
    data_dirs, tables = {}, {}
    for box, pm in arms:
        folder = out / "data" / arm_label(box, pm)
        star = _make_data(table, mode, box, pm, s, folder, log, workers)
        data_dirs[(box, pm)] = folder
        tables[(box, pm)] = read_particles(star)
    key_sets = {a: _particle_keys(t, mode) for a, t in tables.items()}
    common = set.intersection(*(set(k) for k in key_sets.values()))
    counts = {arm_label(*a): len(k) for a, k in key_sets.items()}
    if not common:
        raise InputError("no particle is present at every box (the edge policy dropped them all); use `edge='keep'`.")
    first = key_sets[arms[0]]
    order = [k for k in first if k in common]
    order_digest = digest(order)  # the refined particles, in order: part of every run's key
    rows_in = _input_rows(table, mode, order)  # the input row of every refined particle
    start_poses = start_halves = None
    start_digest = None
    if consensus is not None:  # every run starts from the consensus poses and half sets
        c_rows = match_particles(table, consensus, what="`consensus`")[rows_in]
        start_poses = pose_array(consensus, what="`consensus`")[c_rows]
        from cryobox.jobs.reconstruct import _half_sets

        try:
            start_halves = _half_sets(consensus)[c_rows]
        except InputError:
            raise InputError(
                f"{consensus.path}: no half-set labels (rlnRandomSubset / alignments3D/split); local refinement "
                "from a consensus keeps its half sets, so give the data STAR of a gold-standard refinement (or a "
                "cryoSPARC .cs with alignments3D/split)."
            ) from None
        start_digest = digest([start_poses.round(4).tolist(), start_halves.tolist()])
    truth_poses = None
    if truth is not None:
        t_rows = match_particles(table, truth, what="`truth`")[rows_in]
        truth_poses = pose_array(truth, what="`truth`")[t_rows]
    refine_stars = {}
    for a, t in tables.items():
        pos = {k: i for i, k in enumerate(key_sets[a])}
        rows = np.array([pos[k] for k in order], dtype=np.int64)
        sub = ParticleTable(
            t.data.iloc[rows].reset_index(drop=True),
            kind="particles",
            source_format=t.source_format,
            path=None,
            optics_passthrough=t.optics_passthrough,
        )
        star, keyfile = data_dirs[a] / "refine.star", data_dirs[a] / "refine.key"
        current = keyfile.read_text() if keyfile.exists() and star.exists() else None
        wanted = order_digest if start_digest is None else digest([order_digest, start_digest])
        if current != wanted:
            write_star(star, _start_table(sub, start_poses, start_halves))
            with atomic_path(keyfile) as tmp:
                tmp.write_text(wanted)
        refine_stars[a] = star
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
    note = _contrast_note(tables[arms[0]], s.particle_diameter_a, psize)
    if note:
        notes.append(note)
        log(f"  note: {note}")
    timings["extraction_s"] = time.perf_counter() - t0

    # 2. one reference and one FSC mask, windowed to every box
    t0 = time.perf_counter()
    variants, vnotes = plan_variants(s, pixel_size_a=psize)
    notes += vnotes
    refs, masks, rnotes = reference_grids(
        reference, reference_pixel_size_a, psize, sorted(s.boxes_px), s.ini_high_a, mask, out / "references"
    )
    notes += rnotes
    for n in vnotes + rnotes:
        log(f"  note: {n}")
    timings["references_s"] = time.perf_counter() - t0

    # 3. the runs: one spec each, handed to the launcher (this machine or SLURM) and followed
    offset_range_a = s.offset_range_a if s.offset_range_a is not None else 6.0 * psize
    offset_step_a = s.offset_step_a if s.offset_step_a is not None else 2.0 * psize
    specs: list[RunSpec] = []
    by_name: dict[str, Variant] = {}
    for v in variants:
        for rep in range(s.repeats):
            seed = s.first_seed + rep
            params = RefineParams(
                pixel_size_a=psize,
                box_px=v.box_px,
                particle_diameter_a=v.mask_diameter_a,
                ini_high_a=s.ini_high_a,
                random_seed=seed,
                healpix_order=s.healpix_order,
                offset_range_a=offset_range_a,
                offset_step_a=offset_step_a,
                auto_iter_max=s.auto_iter_max,
                symmetry=s.symmetry,
                local_healpix_order=s.local_healpix_order if consensus is not None else None,
                sigma_ang_deg=s.sigma_ang_deg if consensus is not None else None,
            )
            star = refine_stars[(v.box_px, v.premultiply_from_px)]
            key = digest(
                {
                    "params": asdict(params),
                    "engine": engine.name,
                    "particles": order_digest,
                    "start": start_digest,
                    "data": str(star),
                    "invert": s.invert,
                    "edge": s.edge,
                    "mode": mode,
                    "halves": HALVES_VERSION,
                }
            )
            spec = RunSpec(
                variant=v.label,
                repeat=rep + 1,
                seed=seed,
                params=params,
                run_dir=out / "runs" / v.label / f"rep{rep + 1}",
                key=key,
                particles_star=star,
                reference=refs[v.box_px],
                name=f"{v.label}/rep{rep + 1}",
                description=v.description,
                job_name=f"cryobox-{out.resolve().name}-{v.label}-rep{rep + 1}",
            )
            specs.append(spec)
            by_name[spec.name] = v

    truth_grid = None
    if truth_map is not None:
        grids: dict[int, np.ndarray] = {}

        def truth_grid(box: int) -> np.ndarray:
            """The true map on one box's grid (Fourier-rescaled to the particles' pixel size)."""
            if box not in grids:
                from cryobox.core.fourier import fourier_rescale, window

                vol, tpx = truth_map
                if abs(tpx - psize) > 1e-4 * psize:
                    vol, _ = fourier_rescale(vol, int(round(vol.shape[-1] * tpx / psize)), pixel_size_a=tpx)
                grids[box] = window(np.asarray(vol, np.float32), box, ndim=3)
            return grids[box]

    def finish(spec: RunSpec, halves: HalfMaps, seconds: float) -> dict:
        """Half maps (reconstructed when the run stopped early), FSC, alignment; result.json."""
        v = by_name[spec.name]
        rec_seconds = 0.0
        if halves.half1 is None:
            t0 = time.perf_counter()
            h1, h2 = _reconstruct_halves(halves.poses, spec.run_dir, halves.iteration)
            halves = replace(halves, half1=h1, half2=h2)
            rec_seconds = time.perf_counter() - t0
            timings["reconstruct_s"] += rec_seconds
            source = f"cryobox reconstruction from the poses of iteration {halves.iteration}"
        else:
            source = f"{engine.name} final half maps"
        t0 = time.perf_counter()
        fsc = _run_fsc(halves.half1, halves.half2, masks[v.box_px], psize, None)  # expectation over phase draws
        alignment = _alignment(halves, spec, truth_poses, truth_grid, masks[v.box_px], psize)
        fsc_seconds = time.perf_counter() - t0
        timings["fsc_s"] += fsc_seconds
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
        log(
            f"[{specs.index(spec) + 1}/{len(specs)}] {spec.label}: {_fmt_res(result)}"
            + (f", {_fmt_alignment(result)}" if result.get("truth") else "")
            + f" after {halves.iteration} iterations in {seconds:.0f} s"
        )
        return result

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

    # 4. summary
    t0 = time.perf_counter()
    summary = summarise_sweep(
        variants,
        runs,
        settings=s,
        pixel_size_a=psize,
        mode=mode,
        n_particles_in=len(table),
        n_common=len(common),
        counts=counts,
        engine_info=engine_info,
        notes=notes,
    )
    summary["alignment"] = alignment_summary(variants, runs, specs, pixel_size_a=psize)
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
    timings["summary_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    # cryobox's own work: extraction, references, submitting and collecting, half maps, FSC,
    # summary (the time spent waiting for the engine is not overhead, however many runs are out)
    timings["engine_wall_s"] = queue.engine_wall_seconds
    timings["overhead_s"] = max(0.0, timings["total_s"] - queue.engine_wall_seconds)
    summary["timings"] = timings
    write_sweep(out, summary, plot=plot)
    return summary


# ------------------------------------------------------------------------------- alignment


def _run_poses(halves: HalfMaps, spec: RunSpec) -> np.ndarray | None:
    """The poses a run ended with, in the rows of the particles it refined (NaN where absent)."""
    if halves.poses is None or not Path(halves.poses).exists():
        return None
    refined = read_particles(spec.particles_star)
    found = read_particles(halves.poses)
    if "image_path" not in found.data or "angle_rot_deg" not in found.data:
        return None
    names = (
        found.data["image_index"].astype(str) + "@" + found.data["image_path"].astype(str).map(lambda p: Path(p).name)
    )
    pos = {k: i for i, k in enumerate(names)}
    want = (
        refined.data["image_index"].astype(str)
        + "@"
        + refined.data["image_path"].astype(str).map(lambda p: Path(p).name)
    )
    rows = np.array([pos.get(k, -1) for k in want], dtype=np.int64)
    poses = pose_array(found, what="the run's poses")
    out = np.full((len(rows), 5), np.nan)
    out[rows >= 0] = poses[rows[rows >= 0]]
    return out


def _alignment(halves: HalfMaps, spec: RunSpec, truth_poses, truth_maps, mask, pixel_size_a) -> dict:
    """Keep the run's poses (poses.npy, for run-to-run comparisons) and, when the truth is known,
    how far they are from it and how well the run's map matches the true map."""
    from cryobox.core.poses import pose_differences

    out: dict = {}
    poses = _run_poses(halves, spec)
    if poses is not None:
        path = spec.run_dir / "poses.npy"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, poses)
        out["poses_file"] = str(path)
    truth: dict = {}
    if truth_poses is not None and poses is not None:
        truth.update(pose_differences(poses, truth_poses))
    if truth_maps is not None:
        from cryobox.core.fsc import fsc_curve, resolution_interpolated
        from cryobox.io.mrc import read_mrc

        true = truth_maps(spec.params.box_px)
        h1, _ = read_mrc(halves.half1)
        h2, _ = read_mrc(halves.half2)
        avg = 0.5 * (h1 + h2)
        m = read_mrc(mask)[0] if isinstance(mask, (str, Path)) else (mask if mask is not None else 1.0)
        curve = fsc_curve(avg * m, true * m)
        truth["map_resolution_0.5_a"] = resolution_interpolated(
            curve, 0.5, box_px=spec.params.box_px, pixel_size_a=pixel_size_a
        )
    if truth:
        out["truth"] = truth
    return out


def _fmt_alignment(r: dict) -> str:
    t = r.get("truth") or {}
    parts = []
    if t.get("median_angle_deg") is not None:
        parts.append(
            f"angular error {t['median_angle_deg']:.2f}° (90%: {t['p90_angle_deg']:.2f}°), "
            f"shift error {t['median_shift_a']:.2f} Å"
        )
    if t.get("map_resolution_0.5_a") is not None:
        parts.append(f"map vs truth {t['map_resolution_0.5_a']:.2f} Å (FSC 0.5)")
    return ", ".join(parts)


ALIGNMENT_KEYS = {
    "median_angle_deg": ("median angular error", "°"),
    "p90_angle_deg": ("90th-percentile angular error", "°"),
    "median_shift_a": ("median shift error", "Å"),
    "map_resolution_0.5_a": ("map vs true map at FSC 0.5", "Å"),
}


def alignment_summary(variants: list[Variant], runs: dict[str, list[dict]], specs: list[RunSpec], **_) -> dict:
    """How accurately and how reproducibly each variant aligned the particles.

    Against the truth (when known): per variant, each measure of ``ALIGNMENT_KEYS`` over the
    repeats (mean, SD) and, per pair of variants, Welch's test on the repeats (lower error is
    better). Between runs (no truth needed): for every pair of runs, the median angular and shift
    difference of the same particles; within a variant that is its run-to-run precision."""
    from cryobox.core.poses import pose_differences
    from cryobox.core.stats import compare_repeats, mean_sd

    per_variant = []
    for v in variants:
        row: dict = {"variant": v.label}
        for key in ALIGNMENT_KEYS:
            vals = [(r.get("truth") or {}).get(key) for r in runs.get(v.label, [])]
            vals = [x for x in vals if x is not None]
            if vals:
                mean, sd = mean_sd(vals)
                row[key] = {"values": vals, "mean": mean, "sd": sd}
        per_variant.append(row)
    comparisons = []
    for va, vb in combinations(per_variant, 2):
        for key, (name, unit) in ALIGNMENT_KEYS.items():
            if key not in va or key not in vb:
                continue
            c = compare_repeats(va[key]["values"], vb[key]["values"])
            lower = {"lower": va["variant"], "higher": vb["variant"]}.get(c["verdict"])
            c.update({"measure": key, "a": va["variant"], "b": vb["variant"], "better": lower})
            ma, mb = c["mean_a"], c["mean_b"]
            if lower:
                other = vb["variant"] if lower == va["variant"] else va["variant"]
                c["sentence"] = (
                    f"{lower} has the lower {name}: {ma:.2f} vs {mb:.2f} {unit} ({va['variant']} vs {vb['variant']}; "
                    f"p = {c['p']:.3g}), beyond the repeats' spread; {other} is worse."
                )
            else:
                c["sentence"] = (
                    f"{name}: {va['variant']} {ma:.2f} vs {vb['variant']} {mb:.2f} {unit}: undecided ({c['why']})."
                )
            comparisons.append(c)
    # between runs: the same particles' poses in every pair of runs
    loaded = []
    for spec in specs:
        for r in runs.get(spec.variant, []):
            if r.get("repeat") == spec.repeat and r.get("poses_file") and Path(r["poses_file"]).exists():
                loaded.append((spec.variant, spec.repeat, np.load(r["poses_file"])))
    pairs = []
    for (va, ra, pa), (vb, rb, pb) in combinations(loaded, 2):
        if pa.shape != pb.shape:
            continue
        d = pose_differences(pa, pb)
        pairs.append(
            {
                "a": f"{va} repeat {ra}",
                "b": f"{vb} repeat {rb}",
                "same_variant": va == vb,
                "variants": [va, vb],
                **{k: d[k] for k in ("n", "median_angle_deg", "p90_angle_deg", "median_shift_a")},
            }
        )
    precision = {}
    for v in variants:
        within = [p["median_angle_deg"] for p in pairs if p["same_variant"] and p["variants"][0] == v.label]
        shifts = [p["median_shift_a"] for p in pairs if p["same_variant"] and p["variants"][0] == v.label]
        if within:
            precision[v.label] = {
                "median_angle_deg": float(np.mean(within)),
                "median_shift_a": float(np.mean(shifts)),
                "pairs": len(within),
            }
    return {
        "truth_known": any(len(row) > 1 for row in per_variant),
        "variants": per_variant,
        "comparisons": comparisons,
        "between_runs": pairs,
        "run_to_run": precision,
        "definition": "angular error: the angle of the rotation between found and true orientation (RELION ZYZ "
        "Euler angles), median and 90th percentile over the particles; shift error: distance between found and true "
        "origin (Å); between runs: the same measures between two runs' poses of the same particles",
    }


def _fmt_res(r: dict) -> str:
    a, b = r.get("resolution_a"), r.get("interpolated_resolution_a")
    return (
        f"FSC 0.143 at {a:.2f} Å (interpolated {b:.2f} Å)"
        if a is not None and b is not None
        else "FSC did not drop below 0.143"
    )


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
    from cryobox.core.stats import mean_sd

    table = []
    for v in variants:
        rs = runs.get(v.label, [])
        vals = [r.get(RESOLUTION_KEY) for r in rs]
        rel = [r.get("resolution_a") for r in rs]
        mean, sd = mean_sd(vals)
        mean_rel, sd_rel = mean_sd(rel)
        table.append(
            {
                "variant": v.label,
                "box_px": v.box_px,
                "box_a": v.box_px * pixel_size_a,
                "premultiply_from_px": v.premultiply_from_px,
                "mask_policy": v.mask_policy,
                "mask_diameter_a": v.mask_diameter_a,
                "description": v.description,
                "resolutions_a": rel,
                "interpolated_resolutions_a": vals,
                "mean_a": mean,
                "sd_a": sd,
                "mean_relion_rule_a": mean_rel,
                "sd_relion_rule_a": sd_rel,
                "runs": [
                    {
                        k: r.get(k)
                        for k in (
                            "repeat",
                            "seed",
                            "resolution_a",
                            "interpolated_resolution_a",
                            "resolution_0.5_a",
                            "limited_by_nyquist",
                            "warnings",
                            "mask_check_failed",
                            "iteration",
                            "converged",
                            "half_maps_from",
                            "engine_seconds",
                            "engine_resolution_a",
                            "half1",
                            "half2",
                            "curve",
                        )
                    }
                    for r in rs
                ],
            }
        )
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


def decided_best(table: list[dict], comparisons: list[dict]) -> str | None:
    """The variant the tests call finer than every other one (a decided verdict against each);
    None when any comparison with it is undecided or equivalent: "best" is never a mean's guess."""
    names = [row["variant"] for row in table if row.get("mean_a") is not None]
    for name in names:
        against = [c for c in comparisons if name in (c.get("a"), c.get("b"))]
        if against and len(against) == len(names) - 1 and all(c.get("finer") == name for c in against):
            return name
    return None


TEST_TEXT = (
    "Welch's t-test (two-sided, alpha = 0.05) on the repeats' interpolated resolutions as spatial frequency (1/Å), "
    "the axis the FSC is sampled on; differences and 95% intervals also in Å; repeats for 80% power from the "
    "noncentral t distribution"
)


def compare_variants(rows: list[dict], *, pixel_size_a: float) -> list[dict]:
    """Every pair of variants (rows with ``variant``, ``box_px``, ``interpolated_resolutions_a``
    and ``runs``): the test, the verdict and its sentence (sweep and judge alike)."""
    from cryobox.core.stats import compare_resolutions
    from cryobox.report.text import verdict_sentence

    out = []
    for va, vb in combinations(rows, 2):
        a, b = va["variant"], vb["variant"]
        shell = 1.0 / (max(va["box_px"], vb["box_px"]) * pixel_size_a)  # one shell of the finer sampling
        c = compare_resolutions(
            va["interpolated_resolutions_a"], vb["interpolated_resolutions_a"], shell_width_inv_a=shell
        )
        finer = {"finer": a, "coarser": b}.get(c["verdict"])
        c.update({"a": a, "b": b, "finer": finer})
        runs = va["runs"] + vb["runs"]
        caveats = []
        sources = {r.get("half_maps_kind") or (r.get("half_maps_from") or "").split(" from ")[0] for r in runs}
        if len(sources) > 1:
            caveats.append(
                "some runs converged and some stopped early, so their half maps come from different "
                "reconstructions (the engine's final ones, cryobox's from the last poses); raise or drop "
                "--auto-iter-max so that all runs end the same way"
            )
        flagged = [r for r in runs if r.get("mask_check_failed")]
        c["measurement_sd_a"] = _measurement_sd(va["runs"], vb["runs"])
        c["runs_used"] = len(runs)
        c["runs_mask_check_failed"] = len(flagged)
        if flagged:
            caveats.append(
                f"it rests on {len(runs)} runs, {len(flagged)} of which failed the mask check (the phase-randomised "
                "masked FSC stays above 0.10 at its resolution: the mask is too sharp or too tight); give a softer "
                "mask"
            )
        if any(r.get("limited_by_nyquist") for r in runs):
            caveats.append(
                "some runs' FSC never falls below 0.143, so their resolution is a bound at Nyquist, not a "
                "measurement; the comparison cannot see differences finer than Nyquist"
            )
        if caveats:
            c["caveat"] = "; ".join(caveats)
        c["sentence"] = verdict_sentence(c, a, b) + (f" Caveat: {c['caveat']}." if c.get("caveat") else "")
        out.append(c)
    return out


def _measurement_sd(runs_a: list[dict], runs_b: list[dict]) -> float | None:
    """The measurement spread (Å) of the difference of the two variants' mean resolutions from the
    FSCs' own sampling (each run's ``measurement_sd_a``), None when a run has none."""
    total = 0.0
    for runs in (runs_a, runs_b):
        sds = [r.get("measurement_sd_a") for r in runs]
        if not sds or any(v is None for v in sds):
            return None
        total += sum(v * v for v in sds) / len(sds) ** 2
    return float(np.sqrt(total))


def write_sweep(out: Path, summary: dict, *, plot: bool = True, name: str = "sweep") -> None:
    """``<name>.json`` and ``<name>.png`` (FSC of every run; resolution per variant with its repeats)."""
    write_json(Path(out) / f"{name}.json", summary, indent=1)
    if plot:
        from cryobox.report.plots import figure_sweep, save_figure

        save_figure(figure_sweep(summary), Path(out) / f"{name}.png")
