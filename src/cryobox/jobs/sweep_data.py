"""The particles of each arm of a sweep: extracted (or restacked) at its box, checked for
contrast, and started with or without consensus poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryobox.core.extract import particle_contrast
from cryobox.io.matching import POSE_COLUMNS, particle_keys, set_half_sets, strip_poses
from cryobox.io.mrc import StackReader
from cryobox.io.particles import ParticleTable, read_particles, resolve_path, search_roots
from cryobox.io.paths import find_stack
from cryobox.jobs.extract import ExtractOptions, run_extract
from cryobox.jobs.restack import RestackOptions, run_restack
from cryobox.jobs.sweep_plan import SweepSettings

__all__ = ["has_micrographs", "contrast_note", "start_table", "input_rows", "make_arm_data"]


def has_micrographs(table: ParticleTable) -> bool:
    d = table.data
    if not {"micrograph_name", "coord_x_px", "coord_y_px"} <= set(d.columns) or d["micrograph_name"].isna().any():
        return False
    return resolve_path(str(d["micrograph_name"].iloc[0]), search_roots(table)).exists()


def contrast_note(table: ParticleTable, diameter_a: float, pixel_size_a: float, sample: int = 200) -> str | None:
    """A sentence when the extracted particles are dark on a bright background: RELION refines
    white particles against a positive reference, and dark ones align to noise (say `invert`)."""

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


def start_table(table: ParticleTable, poses: np.ndarray | None, halves: np.ndarray | None) -> ParticleTable:
    """The particles a run refines: without poses (a global search from the reference), or with
    the consensus poses and half sets (local searches)."""
    t = strip_poses(table)
    if poses is None:
        return t
    d = t.data
    for k, col in enumerate(POSE_COLUMNS):
        d[col] = poses[:, k]
    set_half_sets(d, halves)
    return t


def input_rows(table: ParticleTable, mode: str, order: list) -> np.ndarray:
    """The row of the input table behind each refined particle (keys as ``particle_keys``)."""
    if mode == "restack":
        return np.asarray(order, dtype=np.int64)
    pos = {k: i for i, k in enumerate(particle_keys(table, "extract"))}
    return np.array([pos[k] for k in order], dtype=np.int64)


def make_arm_data(
    table: ParticleTable, mode: str, box: int, pm: int | None, s: SweepSettings, folder: Path, log, workers
) -> Path:
    """Extract (or restack) the particles for one (box, premultiply) arm; returns its particles.star."""
    if mode == "extract":
        opts = ExtractOptions(box_px=box, invert=s.invert, premultiply_box_px=pm, edge=s.edge)
        summary = run_extract(table, opts, folder, workers=workers, log=None, from_star=table.kind == "micrographs")
        log(
            f"  {folder.name}: {summary.n_written} particles written, {summary.n_dropped_at_edges} dropped at edges, "
            f"{summary.n_skipped_done} micrographs already done"
        )
        return Path(summary.star)

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
