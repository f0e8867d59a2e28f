"""`cryobox restack`: the extraction operations on particles that are already extracted.

Per input stack file (the work unit): read the particles in chunks (memory-mapped), then in
RELION's order: premultiply by the CTF or phase flip (on the input box, before any cropping, so
the delocalised signal the big box holds is used), window (centred crop/pad, centre N//2 kept),
Fourier rescale, normalise, invert; stream to a new stack. Metadata is carried over and updated
(pixel size, image size, premultiplied flag); shifts are in Å and stay as they are.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.core import extract as ex
from cryobox.core.extract import CTF_KEYS
from cryobox.core.fourier import window
from cryobox.errors import InputError
from cryobox.io.mrc import StackReader, StackWriter
from cryobox.io.particles import (
    ParticleTable,
    check_star_text,
    fill_box_from_stacks,
    find_stack,
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

__all__ = ["RestackOptions", "run_restack"]

CHUNK = 64  # particles per batch: bounds memory (a 512 px batch is 64 MiB, its spectra twice that)


@dataclass(frozen=True)
class RestackOptions(ParticleOps):
    """``ParticleOps`` for restacking: ``box_px`` None keeps the input's box; extracted particles
    usually are normalised already, so ``norm`` is off by default."""

    norm: bool = False


@dataclass
class _Unit:
    stack_in: str
    stack_out: str
    record: str
    indices: np.ndarray
    rows: np.ndarray
    pixel_size_a: float
    ctf: dict | None
    options: RestackOptions
    box_in: int


def _process(unit: _Unit) -> dict:

    o = unit.options
    n_in = unit.box_in
    n_win = o.window_px(n_in)
    n_out = o.output_box_px(n_in)
    src = StackReader(unit.stack_in)
    if src.nx != n_in or (unit.indices.size and unit.indices.max() >= src.nz):
        raise InputError(
            f"{unit.stack_in}: holds {src.nz} images of {src.nx} px, but the particle file asks for image "
            f"{int(unit.indices.max()) + 1} of {n_in} px; the metadata and the stack disagree."
        )
    with StackWriter(
        unit.stack_out,
        unit.indices.size,
        n_out,
        pixel_size_a=o.output_pixel_size_a(unit.pixel_size_a, n_in),
        float16=o.float16,
    ) as out:
        for start in range(0, unit.indices.size, CHUNK):
            sel = slice(start, start + CHUNK)
            stack = src.read(unit.indices[sel])
            if o.premultiply or o.phase_flip:
                ctf = ex.ctf_grids(
                    {k: v[sel] for k, v in unit.ctf.items()}, n_in, unit.pixel_size_a, phase_flip=o.phase_flip
                )
                stack = ex.premultiply_and_crop(stack, ctf, min(n_win, n_in))
                if n_win > n_in:
                    stack = window(stack, n_win, ndim=2)
            elif n_win != n_in:
                stack = window(stack, n_win, ndim=2)
            out.write(finish_batch(stack, o, pixel_size_a=unit.pixel_size_a))
    info = {"options": o.digest(), "n": int(unit.indices.size)}
    write_record(unit.record, info)
    return info


def run_restack(
    table: ParticleTable,
    options: RestackOptions,
    out: Path,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    log=None,
) -> dict:
    """Restack every particle of ``table`` into ``out``; writes particles.star and particles.cs
    (no .cs for premultiplied or phase-flipped particles: ``ParticleOps.no_cryosparc_file``).

    ``out`` is locked and holds one set of settings (``jobs.outputs.OutputFolder``): another
    run's stacks and STAR files there are removed before any work; ``overwrite`` also redoes
    stacks already written with these settings; no output may replace an input."""

    t0 = time.perf_counter()
    o = options
    o.check()
    d = _checked_input(table, o)
    box_in = int(d["box_px"].iloc[0])
    psize = float(d["pixel_size_a"].iloc[0])
    for v, flag in ((o.box_px, "`box_px`"), (o.rescale_px, "`rescale_px`")):
        if v is not None and v < 2:
            raise InputError(f"{flag} must be at least 2 px, got {v}.")
    out = Path(out).resolve()
    units = _units(table, o, out, box_in, psize)

    refuse_star_unsafe_path(out, what="output folder")
    folder = OutputFolder(
        out,
        job="restack",
        settings={"options": asdict(o)},
        inputs=[p for p in (table.path,) if p is not None] + [u.stack_in for u in units],
        outputs=[out / "particles.star"]
        + ([] if o.no_cryosparc_file else [out / "particles.cs", out / "particles.csg"])
        + [u.stack_out for u in units],
        owns=("Particles", "particles.star", "particles.cs", "particles.csg"),
    )
    with folder:
        todo, skipped = [], 0
        for u in units:
            if not overwrite and read_record(
                u.record, u.stack_out, expect={"options": o.digest(), "n": int(u.indices.size)}
            ):
                skipped += 1
                continue
            todo.append(u)
        done_particles = 0
        # closing(): on an error the workers are stopped here, before the output folder cleans up
        with contextlib.closing(run_tasks(_process, todo, workers=workers, scheduler=scheduler)) as results:
            for unit, result in results:
                if isinstance(result, Exception):
                    raise (
                        result
                        if isinstance(result, InputError)
                        else InputError(f"{unit.stack_in}: {type(result).__name__}: {result}")
                    )
                done_particles += unit.indices.size
                log and log(f"restacked {unit.stack_in}: {unit.indices.size} particles")

        result = _restacked_table(table, o, units, box_in, psize)
        new = result.data
        n_out = o.output_box_px(box_in)
        star = write_star(out / "particles.star", result)
        cs = None if o.no_cryosparc_file else write_cs(out / "particles.cs", result, group=True)
    wall = time.perf_counter() - t0
    return {
        "n_particles": len(new),
        "n_restacked": done_particles,
        "n_stacks_skipped": skipped,
        "box_px": n_out,
        "pixel_size_a": o.output_pixel_size_a(psize, box_in),
        "premultiplied": bool(o.premultiply),
        "star": str(star),
        "cs": None if cs is None else str(cs),
        "notes": [o.no_cryosparc_file] if o.no_cryosparc_file else [],
        "wall_s": wall,
        "particles_per_s": done_particles / wall if wall > 0 else None,
    }


def _checked_input(table: ParticleTable, o: RestackOptions) -> pd.DataFrame:
    """The particles' data once they are fit to restack (image names, one box and pixel size, CTF
    parameters when premultiplying or phase flipping, not premultiplied already)."""
    d = table.data
    table.require("image_path", "image_index", "pixel_size_a", purpose="restacking")
    check_star_text(table, purpose="restack", skip=("image_path",))  # its stacks get names of cryobox's
    if fill_box_from_stacks(table):
        d = table.data
    if "box_px" not in d:
        raise InputError(
            f"{table.path}: no image size (rlnImageSize / blob/shape) and no stack found to read it from; "
            "add rlnImageSize or put the stacks where rlnImageName points."
        )
    if len(np.unique(d["box_px"])) != 1 or len(np.unique(d["pixel_size_a"].round(6))) != 1:
        raise InputError(f"{table.path}: particles of several box or pixel sizes; restack one optics group at a time.")
    if o.premultiply or o.phase_flip:
        table.require(
            *CTF_REQUIRED,
            purpose="premultiply / phase flip",
        )
        if o.premultiply and o.phase_flip:
            raise InputError("choose `premultiply` or `phase_flip`, not both.")
        if "ctf_premultiplied" in d and d["ctf_premultiplied"].any():
            raise InputError(
                f"{table.path}: the particles are already CTF-premultiplied (rlnCtfDataAreCtfPremultiplied 1)."
            )
    return d


def _units(table: ParticleTable, o: RestackOptions, out: Path, box_in: int, psize: float) -> list[_Unit]:
    """One unit of work per input stack: where it is read and written, its particles' rows."""
    d = table.data
    roots = search_roots(table)
    units = []
    for k, (path, rows) in enumerate(d.groupby(d["image_path"].astype(str), sort=False).indices.items()):
        src = find_stack(path, roots, where=table.path)
        stem = star_safe_name(Path(path).stem)  # the STAR file names it: no space, # or quote from the input's name
        dst = out / "Particles" / f"{stem}_{k}.mrcs"
        ctf = None
        if o.premultiply or o.phase_flip:
            ctf = {c: d[c].to_numpy(float)[rows] for c in CTF_KEYS if c in d}
        units.append(
            _Unit(
                str(src.resolve()),
                str(dst),
                str(dst.with_suffix(".json")),
                d["image_index"].to_numpy(np.int64)[rows],
                rows,
                psize,
                ctf,
                o,
                box_in,
            )
        )
    return units


def _restacked_table(
    table: ParticleTable, o: RestackOptions, units: list[_Unit], box_in: int, psize: float
) -> ParticleTable:
    """The input's particles pointing at the new stacks, with the output box and pixel size."""
    new = table.data.reset_index(drop=True)
    paths = np.empty(len(new), dtype=object)  # plain strings: the input's column may be categorical (.cs files)
    index = np.zeros(len(new), dtype=np.int64)
    for u in units:
        paths[u.rows] = project_relative(u.stack_out)
        index[u.rows] = np.arange(u.indices.size)
    new["image_path"] = paths
    new["image_index"] = index
    new["box_px"] = o.output_box_px(box_in)
    new["pixel_size_a"] = o.output_pixel_size_a(psize, box_in)
    if o.premultiply:
        new["ctf_premultiplied"] = True
    elif "ctf_premultiplied" not in new:
        new["ctf_premultiplied"] = False
    return ParticleTable(
        new, kind="particles", source_format="cryobox restack", path=None, optics_passthrough=table.optics_passthrough
    )
