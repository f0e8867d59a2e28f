"""`cryobox reconstruct`: half maps (or one map) from particles with poses, CTF-weighted the same
way for plain and CTF-premultiplied stacks (``core.reconstruct``).

Streams the stacks in chunks, so memory is the two reconstruction grids plus one chunk, however
many particles there are. The two half sets are filled in two processes when there are two cores.
The sweep uses it for runs that stopped before the engine wrote its final half maps.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.core.extract import CTF_KEYS, ctf_grids
from cryobox.core.reconstruct import Backprojector
from cryobox.errors import InputError
from cryobox.io.matching import half_sets
from cryobox.io.mrc import StackReader, write_mrc
from cryobox.io.particles import ParticleTable, find_stack, search_roots
from cryobox.io.paths import stack_files
from cryobox.io.schema import CTF_REQUIRED, relion_label
from cryobox.jobs.outputs import OutputFolder
from cryobox.parallel import default_workers, run_tasks

__all__ = ["reconstruct_particles", "write_reconstructions", "reconstruct_into"]

CHUNK = 128
_SHARED_COUNT = None  # a multiprocessing.Value while forked workers fill the half sets
POSE = ("angle_rot_deg", "angle_tilt_deg", "angle_psi_deg")
CTF = CTF_REQUIRED


def _checked_stacks(table: ParticleTable, n: int) -> dict[str, str]:
    """Every stack the particles name, found and checked (box, image numbers) before any work:
    image path as written -> the file to read."""

    d = table.data
    roots = search_roots(table)
    stacks = {}
    for path, rows in d.groupby(d["image_path"].astype(str), sort=False).indices.items():
        src = find_stack(path, roots, where=table.path)
        reader = StackReader(src)
        if (reader.nx, reader.ny) != (n, n):
            raise InputError(f"{src}: images are {reader.nx} x {reader.ny} px but rlnImageSize says {n}.")
        idx = d["image_index"].to_numpy()[rows]
        if idx.size and (idx.min() < 0 or idx.max() >= reader.nz):
            raise InputError(f"{src}: holds {reader.nz} images but the particles name image {int(idx.max()) + 1}.")
        stacks[path] = str(src)
    return stacks


def _fill_in_processes(tasks, workers: int, maps: dict, counts: dict, *, progress, total: int) -> None:
    """The half sets in forked processes (one each); they add to a shared counter that a thread
    here reports to ``progress`` while they run."""
    global _SHARED_COUNT
    import multiprocessing as mp

    _SHARED_COUNT = mp.get_context("fork").Value("q", 0) if "fork" in mp.get_all_start_methods() else None
    finished = threading.Event()

    def report() -> None:
        while not finished.wait(1.0):
            if progress is not None and _SHARED_COUNT is not None:
                progress(min(int(_SHARED_COUNT.value), total - 1), total)

    watcher = threading.Thread(target=report, daemon=True)
    watcher.start()
    try:
        for _, result in run_tasks(_fill, tasks, workers=workers):
            if isinstance(result, Exception):
                raise result
            name, vol, count = result
            maps[name], counts[name] = vol, count
    finally:
        finished.set()
        watcher.join()
        _SHARED_COUNT = None
    if progress is not None:
        progress(total, total)


def reconstruct_particles(
    table: ParticleTable,
    *,
    halves: bool = True,
    padding: int | None = None,
    regularisation: float = 0.05,
    ctf: bool = True,
    progress=None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Maps from the particles' stacks and poses: {"half1", "half2"} or {"map"}; and a summary.

    ``padding``: 2 (RELION's default) up to a 320 px box, 1 beyond (memory). ``ctf=False``
    backprojects without CTF weighting (also what happens when the table has no CTF).
    ``progress(done, total)`` is called after every chunk.
    """

    t0 = time.perf_counter()
    d = table.data
    table.require("image_path", "image_index", "pixel_size_a", *POSE, purpose="reconstruction")
    if "box_px" not in d or len(np.unique(d["box_px"])) != 1 or len(np.unique(d["pixel_size_a"].round(6))) != 1:
        raise InputError(
            f"{table.path}: reconstruction needs one box and pixel size (rlnImageSize, rlnImagePixelSize) for all "
            "particles."
        )
    n = int(d["box_px"].iloc[0])
    psize = float(d["pixel_size_a"].iloc[0])
    missing = [c for c in CTF if c not in d]
    if ctf and missing:
        raise InputError(
            f"{table.path}: no {missing[0]} ({relion_label(missing[0])}) for CTF weighting; use a file with CTF "
            "parameters, or give `ctf=False` to reconstruct without CTF weighting."
        )
    use_ctf = ctf
    premultiplied = bool("ctf_premultiplied" in d and d["ctf_premultiplied"].astype(bool).any())
    if premultiplied and not use_ctf:
        raise InputError(
            f"{table.path}: the images are CTF-premultiplied but the CTF parameters are missing; "
            "they are needed to weight the reconstruction."
        )
    sets = half_sets(table) if halves else np.ones(len(d), dtype=int)
    if halves:
        for h in (1, 2):
            if not (sets == h).any():
                raise InputError(
                    f"{table.path}: half set {h} has no particles (rlnRandomSubset); "
                    "give a refinement that split the particles into two halves, or use `halves=False`."
                )
    shift_cols = [c for c in ("shift_x_a", "shift_y_a") if c in d]
    bad = ~np.isfinite(d[list(POSE) + shift_cols].to_numpy(float)).all(axis=1)
    if bad.any():
        raise InputError(
            f"{table.path}: {int(bad.sum())} particle(s) have missing or non-finite angles or origin offsets "
            f"(first: row {int(np.flatnonzero(bad)[0]) + 1}); remove them or give a refinement's data STAR."
        )
    pad = int(padding) if padding else (2 if n <= 320 else 1)
    names = ("half1", "half2") if halves else ("map",)
    keep = [c for c in ("image_path", "image_index", *POSE, "shift_x_a", "shift_y_a", *CTF_KEYS) if c in d]
    stacks = _checked_stacks(table, n)  # every stack before any work: a bad one fails at once
    tasks = [
        _Half(
            name,
            d.loc[sets == h, keep]
            .assign(stack=lambda x: x["image_path"].astype(str).map(stacks))
            .reset_index(drop=True),
            n,
            psize,
            pad,
            use_ctf,
            premultiplied,
            regularisation,
        )
        for h, name in enumerate(names, start=1)
    ]
    # the half sets are independent: one process each (fork) when there are cores to spare
    workers = min(len(tasks), default_workers())
    maps, counts, done = {}, {}, 0
    if workers == 1:
        for t in tasks:
            name, vol, count = _fill(
                t, progress=None if progress is None else (lambda k, base=done: progress(base + k, len(d)))
            )
            maps[name], counts[name] = vol, count
            done += count
    else:
        _fill_in_processes(tasks, workers, maps, counts, progress=progress, total=len(d))
    maps = {k: maps[k] for k in names}
    summary = {
        "box_px": n,
        "pixel_size_a": psize,
        "padding": pad,
        "regularisation": regularisation,
        "ctf_weighted": use_ctf,
        "ctf_premultiplied": premultiplied,
        "particles": {k: int(counts[k]) for k in names},
        "processes": workers,
        "seconds": time.perf_counter() - t0,
    }
    return maps, summary


@dataclass
class _Half:
    name: str
    rows: pd.DataFrame  # the half set's particles: stack (resolved path), image_index, poses, shifts, CTF
    box_px: int
    pixel_size_a: float
    padding: int
    use_ctf: bool
    premultiplied: bool
    regularisation: float


def _fill(task: _Half, progress=None) -> tuple[str, np.ndarray, int]:
    """Stream one half set's images into a Backprojector and reconstruct it."""

    d, n, psize = task.rows, task.box_px, task.pixel_size_a
    bp = Backprojector(n, padding=task.padding)
    off = np.stack(
        [d[c].to_numpy(float) / psize if c in d else np.zeros(len(d)) for c in ("shift_x_a", "shift_y_a")], axis=1
    )
    angles = d[list(POSE)].to_numpy(float)
    done = 0
    for stack, rows in d.groupby("stack", sort=False).indices.items():
        reader = StackReader(stack)
        idx = d["image_index"].to_numpy()[rows].astype(np.int64)
        for s in range(0, len(rows), CHUNK):
            r = rows[s : s + CHUNK]
            grids = None
            if task.use_ctf:
                grids = ctf_grids({k: d[k].to_numpy(float)[r] for k in CTF_KEYS if k in d}, n, psize)
            bp.insert(
                reader.read(idx[s : s + CHUNK]),
                angles[r],
                offsets_px=off[r],
                ctf_rfft=grids,
                premultiplied=task.premultiplied,
            )
            done += len(r)
            if progress is not None:
                progress(done)
            if _SHARED_COUNT is not None:
                with _SHARED_COUNT.get_lock():
                    _SHARED_COUNT.value += len(r)
    return task.name, bp.reconstruct(regularisation=task.regularisation), bp.count


def write_reconstructions(
    maps: dict[str, np.ndarray], paths: dict[str, Path], *, pixel_size_a: float
) -> dict[str, Path]:
    """Write each map atomically (MRC, the given pixel size)."""

    return {k: write_mrc(paths[k], maps[k], pixel_size_a=pixel_size_a) for k in maps}


MAP_NAMES = ("half1_unfil.mrc", "half2_unfil.mrc", "map_unfil.mrc")


def reconstruct_into(
    table: ParticleTable,
    out: Path,
    *,
    halves: bool = True,
    padding: int | None = None,
    regularisation: float = 0.05,
    ctf: bool = True,
    progress=None,
) -> tuple[dict[str, Path], dict]:
    """``reconstruct_particles`` written into the folder ``out`` (``{name}_unfil.mrc``), holding its
    lock and run record (``jobs.outputs.OutputFolder``): maps another run wrote there with other
    settings are removed before any work, so an interrupted re-run never leaves maps that look
    current; the particle file and its stacks are never written over."""

    out = Path(out)
    stacks = stack_files(table)
    settings = {"halves": halves, "padding": padding, "regularisation": regularisation, "ctf": ctf}
    names = ("half1", "half2") if halves else ("map",)
    with OutputFolder(
        out,
        job="reconstruct",
        settings=settings,
        inputs=[p for p in (table.path, *stacks) if p is not None],
        outputs=[out / f"{k}_unfil.mrc" for k in names],
        owns=MAP_NAMES,
    ):
        maps, info = reconstruct_particles(
            table, halves=halves, padding=padding, regularisation=regularisation, ctf=ctf, progress=progress
        )
        paths = write_reconstructions(
            maps, {k: out / f"{k}_unfil.mrc" for k in maps}, pixel_size_a=info["pixel_size_a"]
        )
    return paths, info
