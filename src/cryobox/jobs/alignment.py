"""How accurately and how reproducibly each run of a sweep aligned its particles: against the
truth when it is known (a simulation), and between repeats."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from cryobox.core.fsc import fsc_curve, resolution_interpolated
from cryobox.core.poses import pose_differences
from cryobox.core.stats import compare_repeats, mean_sd
from cryobox.engines.base import HalfMaps
from cryobox.io.atomic import atomic_path
from cryobox.io.matching import pose_array
from cryobox.io.mrc import read_mrc
from cryobox.io.particles import read_particles
from cryobox.jobs.runqueue import RunSpec
from cryobox.jobs.sweep_plan import Variant

__all__ = ["ALIGNMENT_KEYS", "run_alignment", "format_alignment", "alignment_summary"]


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


def run_alignment(halves: HalfMaps, spec: RunSpec, truth_poses, truth_maps, mask, pixel_size_a) -> dict:
    """Keep the run's poses (poses.npy, for run-to-run comparisons) and, when the truth is known,
    how far they are from it and how well the run's map matches the true map."""

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


def format_alignment(r: dict) -> str:
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
