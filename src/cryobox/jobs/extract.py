"""`cryobox extract`: (re)extract particles from micrographs, RELION-exact, in parallel, resumable.

Plan (pure) -> one work unit per micrograph (read it, cut, premultiply / flip, rescale,
normalise, invert, stream the stack to a temporary MRC and rename it; then write a small JSON
record of what was written) -> assemble particles.star and particles.cs from the records.
A micrograph whose stack and record exist with the same settings is skipped on a re-run (unless
overwrite); a stack without its record is redone, so an interrupted run never leaves a stack
the STAR file points to half-written.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.core import extract as ex
from cryobox.core.boxsize import box_origins, edge_clipped
from cryobox.core.extract import CTF_KEYS, background_mask, premultiply_micrograph
from cryobox.core.optics import CtfParams
from cryobox.errors import InputError
from cryobox.io.mrc import StackWriter, check_mrc_file, read_mrc, read_mrc_header_shape, read_mrc_pixel_size
from cryobox.io.particles import (
    ParticleTable,
    check_star_text,
    resolve_path,
    search_roots,
    write_cs,
    write_star,
)
from cryobox.io.paths import project_relative
from cryobox.io.schema import CTF_REQUIRED
from cryobox.io.starnames import star_safe_name
from cryobox.jobs.outputs import OutputFolder, refuse_star_unsafe_path
from cryobox.jobs.particle_ops import ParticleOps, finish_batch
from cryobox.jobs.records import read_record, write_record
from cryobox.parallel import run_tasks

__all__ = ["ExtractOptions", "MicrographTask", "plan_extraction", "extract_micrograph", "run_extract", "ExtractSummary"]

CHUNK_PIXELS = 1 << 18  # pixels cut per batch inside a micrograph (1 MiB of float32)


def chunk_size(box_px: int) -> int:
    """Particles per batch: a batch of about 1 MiB stays in cache through windowing, normalising,
    the header statistics and the write (4 particles of 256 px; measured faster than 64), and
    bounds memory for big boxes."""
    return max(1, min(64, CHUNK_PIXELS // (int(box_px) ** 2)))


@dataclass(frozen=True)
class ExtractOptions(ParticleOps):
    """``ParticleOps`` for extraction: ``box_px`` is required; the background is normalised by default."""

    def __post_init__(self) -> None:
        if self.box_px is None:
            raise ValueError("extraction needs box_px")


@dataclass
class MicrographTask:
    """One work unit: everything a worker needs, no open files (picklable, small)."""

    index: int
    micrograph: str
    stack: str
    record: str
    x_px: np.ndarray
    y_px: np.ndarray
    ctf: dict | None  # per-particle arrays: defocus_u_a, ... (or None)
    pixel_size_a: float
    options: ExtractOptions
    width_px: int = 0
    height_px: int = 0
    rows: np.ndarray | None = None  # input row numbers of these particles


@dataclass
class ExtractSummary:
    n_micrographs: int
    n_particles_in: int
    n_written: int = 0
    n_dropped_at_edges: int = 0
    n_filled_at_edges: int = 0
    n_partly_outside: int = 0
    n_skipped_done: int = 0
    failed: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # sentences for the user (why no particles.cs, ...)
    star: str = ""
    cs: str = ""
    wall_s: float = 0.0
    pixel_size_a: float = 0.0
    box_px: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["particles_per_s"] = self.n_written / self.wall_s if self.wall_s > 0 else None
        return d


# --------------------------------------------------------------------------------------- inputs


def _mic_shape(path: Path) -> tuple[int, int]:

    where = (
        "check its path in the STAR file (rlnMicrographName, or location/micrograph_path in a .cs) and where "
        "it is read from"
    )
    check_mrc_file(path, what="micrograph", fix=where, folder_fix=where)
    shape = read_mrc_header_shape(path)
    if shape is None:
        raise InputError(f"{path}: not a readable MRC file; check the file.")
    return shape


# ------------------------------------------------------------------------------------------ plan


def _stack_names(mic_names: list[str], out: Path) -> dict[str, Path]:
    names: dict[str, Path] = {}
    used: set[str] = set()
    for i, m in enumerate(mic_names):
        stem = star_safe_name(Path(m).stem)  # the STAR file names the stack: no space, # or quote
        cand = stem if stem not in used else f"{stem}_{i}"
        used.add(cand)
        names[m] = out / "Particles" / f"{cand}.mrcs"
    return names


def plan_extraction(
    table: ParticleTable,
    options: ExtractOptions,
    out: Path,
    *,
    recenter: bool = False,
    keep_going: bool = False,
    from_star: bool = False,
) -> tuple[list[MicrographTask], dict, list[str]]:
    """Work units (one per micrograph) and the edge report; checks everything that can fail early.

    ``from_star``: the table came from a micrographs STAR, whose pixel size is the micrographs';
    otherwise (re-extraction from particles) the micrographs' MRC headers give it.
    """
    o = options
    d = table.data
    out = Path(out).resolve()  # workers (a Dask cluster) may run in another folder
    notes: list[str] = []
    for col in ("micrograph_name", "coord_x_px", "coord_y_px"):
        if col not in d:
            raise InputError(f"{table.path}: no {col} column; extraction needs micrograph names and coordinates.")
    if o.box_px < 2:
        raise InputError(f"`box_px` must be at least 2 px, got {o.box_px}.")
    if o.premultiply_box_px is not None and o.premultiply_box_px < o.box_px:
        raise InputError(
            f"`premultiply_box_px` ({o.premultiply_box_px} px) must be at least `box_px` ({o.box_px} px): extract big, "
            "premultiply, crop small."
        )
    if o.rescale_px is not None and o.rescale_px < 2:
        raise InputError(f"`rescale_px` must be at least 2 px, got {o.rescale_px}.")
    if o.edge not in ("keep", "drop"):
        raise InputError(f"`edge` must be keep or drop, got {o.edge!r}.")

    o.check()
    if o.norm and not background_mask(o.final_box_px, o.bg_radius).any():
        raise InputError(
            f"`bg_radius_px` {o.bg_radius:g} px leaves no background in a {o.final_box_px} px box; use a smaller "
            "radius."
        )
    if sum(bool(v) for v in (o.premultiply_box_px, o.premultiply_micrograph, o.phase_flip)) > 1:
        raise InputError("choose one of `premultiply_box_px`, `premultiply_micrograph` and `phase_flip`.")
    needs_ctf = o.premultiplied or o.phase_flip
    if needs_ctf:
        table.require(
            *CTF_REQUIRED,
            purpose="CTF premultiplication / phase flipping",
        )
    roots = search_roots(table)
    mic_names = list(dict.fromkeys(d["micrograph_name"].astype(str)))
    stacks = _stack_names(mic_names, out)
    tasks: list[MicrographTask] = []
    report = {"n_particles": len(d), "n_partly_outside": 0, "box_px": o.cut_box_px, "edge": o.edge}
    groups = d.groupby(d["micrograph_name"].astype(str), sort=False).indices
    for i, name in enumerate(mic_names):
        rows = groups[name]
        mic_path = resolve_path(name, roots).resolve()
        try:
            w, h = _mic_shape(mic_path)
        except InputError as exc:
            if not keep_going:
                raise
            notes.append(f"{exc} Skipped ({len(rows)} particles).")
            continue
        if o.cut_box_px > min(w, h):
            raise InputError(
                f"{mic_path}: the {o.cut_box_px} px box is larger than the micrograph ({w} x {h} px); choose a "
                "smaller box."
            )
        sub = d.iloc[rows]
        x = sub["coord_x_px"].to_numpy(float)
        y = sub["coord_y_px"].to_numpy(float)
        if recenter:
            if "shift_x_a" not in sub:
                raise InputError(
                    f"{table.path}: `recenter` needs particle shifts (rlnOriginXAngst / alignments3D/shift)."
                )
            psize_mic = _micrograph_pixel_size(sub, mic_path, prefer_header=not from_star)
            # as relion_preprocess --recenter: move the coordinate by the (rounded) shift in micrograph pixels
            x = x - np.rint(sub["shift_x_a"].to_numpy(float) / psize_mic)
            y = y - np.rint(sub["shift_y_a"].to_numpy(float) / psize_mic)

        x0, y0 = box_origins(x, o.cut_box_px), box_origins(y, o.cut_box_px)
        outside = (x0 + o.cut_box_px <= 0) | (y0 + o.cut_box_px <= 0) | (x0 >= w) | (y0 >= h)
        if outside.any():
            k = int(np.argmax(outside))
            raise InputError(
                f"{mic_path}: particle at ({x[k]:.1f}, {y[k]:.1f}) px lies completely outside the {w} x {h} px "
                "micrograph; "
                "fix the coordinates (wrong micrograph or binning?)."
            )
        report["n_partly_outside"] += int(
            edge_clipped(x, y, micrograph_width_px=w, micrograph_height_px=h, box_px=o.cut_box_px).sum()
        )
        ctf = {c: sub[c].to_numpy(float) for c in CTF_KEYS if c in sub} if needs_ctf else None
        stack = stacks[name]
        tasks.append(
            MicrographTask(
                index=i,
                micrograph=str(mic_path),
                stack=str(stack),
                record=str(stack.with_suffix(".json")),
                x_px=x,
                y_px=y,
                ctf=ctf,
                pixel_size_a=_micrograph_pixel_size(sub, mic_path, prefer_header=not from_star),
                options=o,
                width_px=w,
                height_px=h,
                rows=rows,
            )
        )
    return tasks, report, notes


def _micrograph_pixel_size(sub: pd.DataFrame, mic_path: Path, *, prefer_header: bool) -> float:
    """The micrograph's pixel size: a micrographs STAR's rlnMicrographPixelSize, or (re-extraction
    from particles) the micrograph's MRC header, falling back to the file's micrograph pixel size."""

    # rlnMicrographOriginalPixelSize (micrograph_pixel_size_a) is the movie's: last, for unbinned data
    order = (
        ("rlnMicrographPixelSize", "header", "micrograph_pixel_size_a") if prefer_header else ("pixel_size_a", "header")
    )
    for src in order:
        if src == "header":
            v = read_mrc_pixel_size(mic_path)
        else:
            v = float(sub[src].iloc[0]) if src in sub else None
        if v is not None and np.isfinite(v) and v > 0:
            return float(v)
    raise InputError(
        f"{mic_path}: no micrograph pixel size (rlnMicrographPixelSize / MRC header); add it to the STAR file."
    )


# ------------------------------------------------------------------------------------ work unit


def background_radius_px(
    table: ParticleTable, bg_diameter_a: float, *, box_px: int, final_box_px: int, from_star: bool
) -> float:
    """The background radius (px of the final box) for a diameter in Å.

    Uses the micrograph's pixel size, resolved as extraction resolves it (``_micrograph_pixel_size``:
    rlnMicrographPixelSize or the micrograph's MRC header, never the movie's
    rlnMicrographOriginalPixelSize when either is known), times ``box_px / final_box_px`` when the
    particles are rescaled.
    """
    if not bg_diameter_a > 0:
        raise InputError(f"the background diameter must be a positive number of Å, got {bg_diameter_a}.")
    d = table.data
    name = str(d["micrograph_name"].iloc[0]) if "micrograph_name" in d and len(d) else None
    mic_path = resolve_path(name, search_roots(table)) if name else Path("(no micrograph named)")
    first = d.iloc[:1] if name is None else d[d["micrograph_name"].astype(str) == name].iloc[:1]
    psize = _micrograph_pixel_size(first, mic_path, prefer_header=not from_star)
    return 0.5 * bg_diameter_a / (psize * box_px / final_box_px)


def _record_ok(task: MicrographTask) -> dict | None:
    return read_record(task.record, task.stack, expect={"options": task.options.digest(), "n_input": len(task.x_px)})


def extract_micrograph(task: MicrographTask) -> dict:
    """Cut, process and write one micrograph's particles; returns what was written (small dict)."""

    o = task.options
    mic, _ = read_mrc(Path(task.micrograph), mmap=True)
    if mic.ndim != 2:
        mic = mic.reshape(mic.shape[-2:]) if mic.size == mic.shape[-1] * mic.shape[-2] else None
        if mic is None:
            raise InputError(f"{task.micrograph}: not a 2D micrograph.")
    h, w = mic.shape
    x, y = task.x_px, task.y_px
    clipped = edge_clipped(x, y, micrograph_width_px=w, micrograph_height_px=h, box_px=o.cut_box_px)
    keep = ~clipped if o.edge == "drop" else np.ones(x.size, bool)
    kept = np.flatnonzero(keep)
    n_out = o.final_box_px
    mic_f = mic.astype(np.float32, copy=False)
    if o.premultiply_micrograph:
        mic_f = _filter_whole_micrograph(mic_f, task)
    cache: dict = {}  # per micrograph: its mean, and CTF grids shared by all its particles
    step = chunk_size(o.cut_box_px)
    pixel_size_out = o.output_pixel_size_a(task.pixel_size_a)
    with StackWriter(task.stack, kept.size, n_out, pixel_size_a=pixel_size_out, float16=o.float16) as out:
        for start in range(0, kept.size, step):
            out.write(_process_chunk(mic_f, task, kept[start : start + step], cache))
    info = {
        "options": o.digest(),
        "n_input": int(x.size),
        "kept": kept.tolist(),
        "filled": np.flatnonzero(clipped & keep).tolist(),
        "n_dropped": int((~keep).sum()),
    }
    write_record(task.record, info)
    return info


def _filter_whole_micrograph(mic: np.ndarray, task: MicrographTask) -> np.ndarray:
    """--premultiply-micrograph: multiply the whole micrograph by its CTF once (the limit of an
    infinitely large premultiply box: no delocalised signal wraps around a box). The particles
    of the micrograph must share one CTF."""
    c = task.ctf
    keys = ("defocus_u_a", "defocus_v_a", "defocus_angle_deg", "phase_shift_deg", "ctf_bfactor_a2", "ctf_scale")
    vals = {k: c[k] for k in keys if k in c}
    for k, v in vals.items():
        if np.ptp(v) > 1e-6 * max(1.0, float(np.abs(v).max())):
            raise InputError(
                f"{task.micrograph}: particles carry different CTFs ({k} varies); `premultiply_micrograph` needs one "
                "CTF "
                "per micrograph (use `premultiply_box_px` instead)."
            )

    return premultiply_micrograph(mic, task.pixel_size_a, CtfParams.from_columns({k: v[0] for k, v in c.items()}))


def _process_chunk(mic: np.ndarray, task: MicrographTask, sel: np.ndarray, cache: dict | None = None) -> np.ndarray:

    o = task.options
    h, w = mic.shape
    x, y = task.x_px[sel], task.y_px[sel]
    if o.premultiply_box_px or o.phase_flip:
        m = o.premultiply_box_px or o.box_px
        cache = {} if cache is None else cache
        if "mean" not in cache:
            cache["mean"] = float(mic.mean())
            same = all(np.ptp(v) == 0 for v in task.ctf.values())
            cache["grid"] = (
                ex.ctf_grids({k: v[:1] for k, v in task.ctf.items()}, m, task.pixel_size_a, phase_flip=o.phase_flip)
                if same
                else None
            )
        big = ex.window_particles(mic, x, y, m, fill=cache["mean"])
        ctf = (
            cache["grid"]
            if cache["grid"] is not None
            else ex.ctf_grids({k: v[sel] for k, v in task.ctf.items()}, m, task.pixel_size_a, phase_flip=o.phase_flip)
        )
        stack = ex.premultiply_and_crop(big, ctf, o.box_px)
        ex._replicate_edges(stack, x, y, width_px=w, height_px=h)
    else:
        stack = ex.window_particles(mic, x, y, o.box_px)
    return finish_batch(stack, o, pixel_size_a=task.pixel_size_a, overwrite=True)


# ----------------------------------------------------------------------------------------- run


def run_extract(
    table: ParticleTable,
    options: ExtractOptions,
    out: Path,
    *,
    recenter: bool = False,
    overwrite: bool = False,
    keep_going: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress=None,
    log=None,
    from_star: bool = False,
    plan: tuple | None = None,
    inputs: tuple = (),
) -> ExtractSummary:
    """Extract everything, write particles.star / particles.cs in ``out``; returns the summary.

    ``plan``: the result of ``plan_extraction`` for the same arguments, when the caller already
    made it (to print the edge report first). ``out`` is locked and holds the outputs of one set
    of settings (``jobs.outputs.OutputFolder``): another run's stacks and STAR files there are
    removed before any work; ``overwrite`` also redoes stacks written with these settings.
    ``inputs``: files besides the particle table that must not be overwritten.
    """

    out = Path(out)
    refuse_star_unsafe_path(out, what="output folder")
    check_star_text(table, purpose="extract", skip=("image_path",))
    folder = OutputFolder(
        out,
        job="extract",
        settings={"options": asdict(options), "recenter": recenter, "from_star": from_star},
        inputs=[p for p in (table.path, *inputs) if p is not None],
        outputs=[out / "particles.star"]
        + ([] if options.no_cryosparc_file else [out / "particles.cs", out / "particles.csg"]),
        owns=("Particles", "particles.star", "particles.cs", "particles.csg"),
    )
    with folder:
        return _run_extract(
            table,
            options,
            out,
            recenter=recenter,
            overwrite=overwrite,
            keep_going=keep_going,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            log=log,
            from_star=from_star,
            plan=plan,
        )


def _run_extract(
    table, options, out, *, recenter, overwrite, keep_going, workers, scheduler, progress, log, from_star, plan
) -> ExtractSummary:

    t0 = time.perf_counter()
    tasks, report, notes = plan or plan_extraction(
        table, options, out, recenter=recenter, keep_going=keep_going, from_star=from_star
    )
    summary = ExtractSummary(
        n_micrographs=len(tasks), n_particles_in=len(table), n_partly_outside=report["n_partly_outside"]
    )
    for n in notes:
        log and log(n)
    todo = []
    records: dict[int, dict] = {}
    for t in tasks:
        rec = None if overwrite else _record_ok(t)
        if rec is not None:
            records[t.index] = rec
            summary.n_skipped_done += 1
        else:
            todo.append(t)
    if progress:
        progress.start(total=sum(len(t.x_px) for t in todo), done_units=summary.n_skipped_done, units=len(tasks))
    # closing(): on an error the workers are stopped here, before the output folder cleans up
    with contextlib.closing(run_tasks(extract_micrograph, todo, workers=workers, scheduler=scheduler)) as results:
        for task, result in results:
            if isinstance(result, Exception):
                msg = (
                    str(result)
                    if isinstance(result, InputError)
                    else f"{task.micrograph}: {type(result).__name__}: {result}"
                )
                if not keep_going:
                    raise InputError(
                        msg if isinstance(result, InputError) else msg + "; nothing was written for this micrograph."
                    )
                summary.failed.append(msg)
                log and log(f"skipped: {msg}")
                continue
            records[task.index] = result
            if progress:
                progress.advance(len(task.x_px))
    if progress:
        progress.stop()
    _write_outputs(table, tasks, records, options, out, summary)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _write_outputs(table, tasks, records, o: ExtractOptions, out: Path, summary: ExtractSummary) -> None:
    done = [(t, np.asarray(records[t.index]["kept"], dtype=np.int64)) for t in tasks if t.index in records]
    if not done:
        raise InputError("no particles were extracted; see the messages above.")
    for t, kept in done:
        rec = records[t.index]
        summary.n_written += kept.size
        summary.n_dropped_at_edges += rec["n_dropped"]
        summary.n_filled_at_edges += len(rec["filled"])

    def per_particle(
        value,
    ) -> np.ndarray:  # value(task, kept): one per micrograph or per particle -> every written particle
        return np.concatenate([np.broadcast_to(value(t, kept), kept.shape) for (t, kept) in done])

    # one take of the written rows, then whole columns (not micrograph by micrograph: pandas
    # costs about 1 ms per column assignment)
    data = table.data.iloc[np.concatenate([np.asarray(t.rows)[kept] for t, kept in done])].reset_index(drop=True)
    x = per_particle(lambda t, k: t.x_px[k])
    y = per_particle(lambda t, k: t.y_px[k])
    psize_mic = per_particle(lambda t, k: t.pixel_size_a)
    if "shift_x_a" in data:
        # --recenter moved the coordinates by whole micrograph pixels; the rest stays a shift (Å)
        data["shift_x_a"] = data["shift_x_a"].to_numpy(float) - (data["coord_x_px"].to_numpy(float) - x) * psize_mic
        data["shift_y_a"] = data["shift_y_a"].to_numpy(float) - (data["coord_y_px"].to_numpy(float) - y) * psize_mic
    data["coord_x_px"] = x
    data["coord_y_px"] = y
    data["image_path"] = per_particle(lambda t, k: project_relative(t.stack)).astype(object)
    data["image_index"] = per_particle(lambda t, k: np.arange(k.size, dtype=np.int64))
    data["micrograph_width_px"] = per_particle(lambda t, k: float(t.width_px))
    data["micrograph_height_px"] = per_particle(lambda t, k: float(t.height_px))
    if "micrograph_pixel_size_a" not in data:
        data["micrograph_pixel_size_a"] = psize_mic
    data["pixel_size_a"] = o.output_pixel_size_a(psize_mic)
    data["box_px"] = o.final_box_px
    data["ctf_premultiplied"] = o.premultiplied
    if "optics_group" not in data:
        data["optics_group"] = 1

    drop = [
        c
        for c in data.columns
        if c.startswith("rlnImage") or c in ("rlnMicrographPixelSize", "rlnMicrographOriginalPixelSize")
    ]
    data = data.drop(columns=drop)
    result = ParticleTable(
        data,
        kind="particles",
        source_format="cryobox extract",
        path=None,
        optics_passthrough=[
            c
            for c in table.optics_passthrough
            if c in data and not c.startswith("rlnImage") and c not in ("rlnMicrographPixelSize",)
        ],
    )
    summary.star = str(write_star(out / "particles.star", result))
    if o.no_cryosparc_file:
        summary.cs = ""
        summary.notes.append(o.no_cryosparc_file)
    else:
        summary.cs = str(write_cs(out / "particles.cs", result, group=True))
    summary.pixel_size_a = float(data["pixel_size_a"].iloc[0])
    summary.box_px = o.final_box_px
