"""`cryobox reconstruct`: half maps (or one map) from particles with poses, CTF-weighted the same
way for plain and CTF-premultiplied stacks (``core.reconstruct``).

Streams the stacks in chunks, so memory is the two reconstruction grids plus one chunk, however
many particles there are. The sweep uses it for runs that stopped before the engine wrote its
final half maps.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.particles import ParticleTable

__all__ = ["reconstruct_particles", "write_reconstructions", "HALF_SET_COLUMNS"]

CHUNK = 128
HALF_SET_COLUMNS = ("rlnRandomSubset", "alignments3D/split")
POSE = ("angle_rot_deg", "angle_tilt_deg", "angle_psi_deg")
CTF = ("defocus_u_a", "defocus_v_a", "defocus_angle_deg", "voltage_kv", "cs_mm", "amplitude_contrast")


def _half_sets(table: ParticleTable) -> np.ndarray:
    d = table.data
    for col in HALF_SET_COLUMNS:
        if col in d:
            v = d[col].to_numpy()
            v = v.astype(int) + (1 if col == "alignments3D/split" else 0)  # cryoSPARC: 0/1, RELION: 1/2
            bad = ~np.isin(v, (1, 2))
            if bad.any():
                raise InputError(f"{table.path}: {col} must be 1 or 2 for every particle ({int(bad.sum())} are not); "
                                 f"give the data STAR of a refinement with --split_random_halves.")
            return v
    raise InputError(f"{table.path}: no half-set labels (rlnRandomSubset / alignments3D/split); "
                     "give the data STAR of a gold-standard refinement, or use --no-halves for one map.")


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
    from cryobox.core.extract import CTF_KEYS, ctf_grids
    from cryobox.core.reconstruct import Backprojector
    from cryobox.io.mrc import StackReader

    t0 = time.perf_counter()
    d = table.data
    table.require("image_path", "image_index", "pixel_size_a", *POSE, purpose="reconstruction")
    if "box_px" not in d or len(np.unique(d["box_px"])) != 1 or len(np.unique(d["pixel_size_a"].round(6))) != 1:
        raise InputError(f"{table.path}: reconstruction needs one box and pixel size (rlnImageSize, rlnImagePixelSize) for all particles.")
    n = int(d["box_px"].iloc[0])
    psize = float(d["pixel_size_a"].iloc[0])
    use_ctf = ctf and all(c in d for c in CTF)
    premultiplied = bool("ctf_premultiplied" in d and d["ctf_premultiplied"].astype(bool).any())
    if premultiplied and not use_ctf:
        raise InputError(f"{table.path}: the images are CTF-premultiplied but the CTF parameters are missing; "
                         "they are needed to weight the reconstruction.")
    sets = _half_sets(table) if halves else np.ones(len(d), dtype=int)
    pad = int(padding) if padding else (2 if n <= 320 else 1)
    names = ("half1", "half2") if halves else ("map",)
    bps = {k: Backprojector(n, padding=pad) for k in names}
    off_x = d["shift_x_a"].to_numpy(float) / psize if "shift_x_a" in d else np.zeros(len(d))
    off_y = d["shift_y_a"].to_numpy(float) / psize if "shift_y_a" in d else np.zeros(len(d))
    angles = d[list(POSE)].to_numpy(float)
    roots = [Path.cwd()] + ([table.path.parent] if table.path is not None else [])
    done = 0
    for path, rows in d.groupby(d["image_path"].astype(str), sort=False).indices.items():
        src = next((r / path for r in roots if (r / path).exists()), None)
        if src is None:
            raise InputError(f"{path}: particle stack not found (looked beside {', '.join(map(str, roots))}); check rlnImageName / blob/path.")
        reader = StackReader(src)
        if (reader.nx, reader.ny) != (n, n):
            raise InputError(f"{src}: images are {reader.nx} x {reader.ny} px but rlnImageSize says {n}.")
        idx = d["image_index"].to_numpy()[rows].astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= reader.nz):
            raise InputError(f"{src}: holds {reader.nz} images but the particles name image {int(idx.max()) + 1}.")
        for s in range(0, len(rows), CHUNK):
            r = rows[s : s + CHUNK]
            imgs = reader.read(idx[s : s + CHUNK])
            grids = None
            if use_ctf:
                params = {k: d[k].to_numpy(float)[r] for k in CTF_KEYS if k in d}
                grids = ctf_grids(params, n, psize)
            for h, name in enumerate(names, start=1):
                sel = sets[r] == h if halves else np.ones(len(r), dtype=bool)
                if not sel.any():
                    continue
                g = None if grids is None else (grids if grids.ndim == 2 else grids[sel])
                bps[name].insert(imgs[sel], angles[r][sel], offsets_px=np.stack([off_x[r][sel], off_y[r][sel]], axis=1),
                                 ctf_rfft=g, premultiplied=premultiplied)
            done += len(r)
            if progress is not None:
                progress(done, len(d))
    maps = {k: bp.reconstruct(regularisation=regularisation) for k, bp in bps.items()}
    summary = {"box_px": n, "pixel_size_a": psize, "padding": pad, "regularisation": regularisation,
               "ctf_weighted": use_ctf, "ctf_premultiplied": premultiplied,
               "particles": {k: int(bp.count) for k, bp in bps.items()}, "seconds": time.perf_counter() - t0}
    return maps, summary


def write_reconstructions(maps: dict[str, np.ndarray], paths: dict[str, Path], *, pixel_size_a: float) -> dict[str, Path]:
    """Write each map atomically (MRC, the given pixel size)."""
    from cryobox.io.mrc import write_mrc

    return {k: write_mrc(paths[k], maps[k], pixel_size_a=pixel_size_a) for k in maps}
