"""`cryobox judge`: the box-size experiment from refinements made anywhere.

Each variant names its runs; a run is

- a pair of half maps, ``half1.mrc:half2.mrc``;
- a cryoSPARC refinement job folder, or an exported job (Export Job writes the same files under
  ``exports/``): its final iteration's half maps, ``J50_008_volume_map_half_A.mrc`` and
  ``..._half_B.mrc`` (cryoSPARC guide, "Job: Homogeneous Refinement" / "Non-uniform Refinement",
  outputs "map_half_A" / "map_half_B": the unfiltered, unmasked half maps of the last iteration);
- a RELION Refine3D folder: ``run_half1_class001_unfil.mrc`` and ``run_half2_class001_unfil.mrc``
  (RELION 3.1 documentation, 3D auto-refine outputs; written when the refinement converged).

Every run gets the same FSC as `cryobox fsc --mask` and the sweep: one soft mask in Å, built
once (``--mask`` or the auto mask of the runs' average) at the largest box and windowed to each
box, so boxes differ only in what the box holds. Runs at one pixel size only, unless
``resample``: then every map is Fourier-resampled to the first run's pixel size (noted).
The result is ``judge.json`` in the sweep.json schema (per variant the runs' resolutions, mean
and SD; per pair the test, its interval, power and verdict) and ``judge.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cryobox.core.fourier import padded_volume, resample_to, window
from cryobox.core.masks import auto_mask_from_map, auto_mask_scales_a
from cryobox.errors import InputError
from cryobox.io.layouts import RunMaps, find_half_maps
from cryobox.io.ledger import same_file
from cryobox.io.mrc import read_map, read_map_padded, read_mrc, read_mrc_header_shape, read_mrc_pixel_size
from cryobox.jobs.boxmaps import masks_for_boxes
from cryobox.jobs.convergence import convergence_flags, mark_unconverged
from cryobox.jobs.fsc import fsc_memory_bytes, refuse_one_map
from cryobox.jobs.outputs import OutputFolder
from cryobox.jobs.records import check_memory
from cryobox.jobs.verdicts import TEST_TEXT, compare_variants, decided_best, run_fsc_record, variant_row, write_sweep

__all__ = ["RunMaps", "find_half_maps", "parse_variants", "run_judge"]


def parse_variants(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``["box280=J50,J51", "box576=J80"]`` -> [("box280", ["J50", "J51"]), ("box576", ["J80"])]."""
    out: list[tuple[str, list[str]]] = []
    for spec in specs:
        if "=" not in spec:
            raise InputError(f"{spec!r}: name each variant and its runs, like box280=J50,J51,J52.")
        label, runs = spec.split("=", 1)
        label = label.strip()
        runs_list = [r.strip() for r in runs.split(",") if r.strip()]
        if not label or not runs_list:
            raise InputError(f"{spec!r}: name each variant and its runs, like box280=J50,J51,J52.")
        if label in [v for v, _ in out]:
            raise InputError(f"{label}: the variant is named twice; give each variant once with all its runs.")
        out.append((label, runs_list))
    if not out:
        raise InputError("give at least one variant, like box280=J50,J51,J52 box576=J80,J81,J82.")
    return out


def _header(path: Path) -> tuple[int, float | None]:

    shape = read_mrc_header_shape(path)
    if shape is None:
        raise InputError(f"{path}: not a readable MRC file; check the half map.")
    return int(shape[0]), read_mrc_pixel_size(path)


def _read_on_grid(path: Path, pixel_size_a: float, header_pixel_a: float) -> np.ndarray:
    """A half map on the common grid, in a ``padded_volume`` (its FSC transforms it in place)."""

    if abs(header_pixel_a - pixel_size_a) <= 1e-6 * pixel_size_a:
        return read_map_padded(path, what="half map", ndim=3, varying=True)[0]
    vol, _ = read_map(path, what="half map", ndim=3, varying=True)
    vol = resample_to(vol, header_pixel_a, pixel_size_a)[0]
    out = padded_volume(vol.shape)
    out[...] = vol
    return out


def _add_centred(acc: np.ndarray, vol: np.ndarray, weight: float) -> None:
    """acc += weight * vol, ``vol`` placed as ``window`` places it (its centre N//2 on acc's n//2;
    cropped where it is larger), a slab at a time."""
    n, b = acc.shape[0], vol.shape[0]
    off = n // 2 - b // 2
    src, dst = [], []
    for _ in range(3):
        s0, d0 = max(0, -off), max(0, off)
        length = min(b - s0, n - d0)
        src.append((s0, s0 + length))
        dst.append((d0, d0 + length))
    (s0, s1), (d0, _) = src[0], dst[0]
    rows = (slice(*dst[1]), slice(*dst[2]))
    cols = (slice(*src[1]), slice(*src[2]))
    for i in range(s0, s1, 16):
        k = min(16, s1 - i)
        acc[(slice(d0 + i - s0, d0 + i - s0 + k),) + rows] += weight * vol[(slice(i, i + k),) + cols]


def run_judge(
    variants: list[tuple[str, list[str]]],
    *,
    out: Path,
    mask: Path | None = None,
    auto_mask: bool = True,
    resample: bool = False,
    seed: int | None = None,
    log=None,
    plot: bool = True,
    unmasked_across_boxes: bool = False,
    particles: Path | None = None,
    diameter_a: float | None = None,
) -> dict:
    """Judge the variants' runs; writes judge.json (sweep.json schema), judge.png and the masks in
    ``out``, holding the folder's lock (a second run into it is refused, naming the holder).
    With ``particles`` and ``diameter_a`` and runs in two or more boxes, judge.json carries
    ``cryobox explain``'s explanation under ``explain`` (the runs as measured, the roomiest box's
    mean FSC as the basis of the prediction).
    Unmasked FSCs (no ``mask``, no ``auto_mask``) of variants in different boxes are refused unless
    ``unmasked_across_boxes``; then every output carries the warning."""

    settings = {"variants": variants, "mask": str(mask), "auto_mask": auto_mask, "resample": resample, "seed": seed}
    runs = [(label, find_half_maps(r)) for label, specs in variants for r in specs]
    inputs = [p for _, rm in runs for p in (rm.half1, rm.half2)] + ([mask] if mask is not None else [])
    particle_inputs = None
    if (particles is None) != (diameter_a is None):
        raise InputError(
            "give both `particles` and `diameter_a` (the explanation of the boxes needs both), or neither."
        )
    if particles is not None:  # read and checked before any work
        from cryobox.jobs.inputs import gather_inputs  # here: particle files need pandas; maps alone do not

        particle_inputs = gather_inputs([particles])
        inputs.append(particles)
    owns = ("judge.json", "judge.png", "masks")
    with OutputFolder(out, job="judge", settings=settings, inputs=inputs, owns=owns):
        return _run_judge(
            variants,
            runs,
            out=out,
            mask=mask,
            auto_mask=auto_mask,
            resample=resample,
            seed=seed,
            log=log,
            plot=plot,
            unmasked_across_boxes=unmasked_across_boxes,
            explain_with=None if particle_inputs is None else (particle_inputs, float(diameter_a)),
        )


def _run_judge(
    variants: list[tuple[str, list[str]]],
    runs: list[tuple[str, RunMaps]],
    *,
    out: Path,
    mask: Path | None = None,
    auto_mask: bool = True,
    resample: bool = False,
    seed: int | None = None,
    log=None,
    plot: bool = True,
    unmasked_across_boxes: bool = False,
    explain_with: tuple | None = None,
) -> dict:
    """Judge the variants' runs; writes judge.json (sweep.json schema), judge.png and the masks in ``out``."""

    t0 = time.perf_counter()
    say = log or (lambda s: None)
    info, psize, grid_box, notes = _check_runs(runs, resample=resample)
    boxes = sorted(set(grid_box.values()))
    _check_judge_memory(boxes, masked=mask is not None or auto_mask)
    m_big, mask_text = _judge_mask(
        runs, info, psize=psize, boxes=boxes, mask=mask, auto_mask=auto_mask, resample=resample,
        unmasked_across_boxes=unmasked_across_boxes, notes=notes,
    )  # fmt: skip
    masks = {}
    if m_big is not None:
        written, mask_notes = masks_for_boxes(m_big, boxes, pixel_size_a=psize, folder=Path(out) / "masks")
        masks = {b: arr for b, (_, arr) in written.items()}
        notes += mask_notes
    del m_big  # each box's windowed copy is in masks: one mask per box in memory, no more
    say(f"judge: {len(runs)} run(s) in {len(variants)} variant(s) at {psize:g} Å/px; mask: {mask_text}")

    results = _judge_fscs(variants, runs, info, grid_box, masks, psize=psize, seed=seed, say=say)
    summary = summarise_judge(variants, results, pixel_size_a=psize, mask_text=mask_text, notes=notes)
    mark_unconverged(summary, convergence_flags(results))
    if explain_with is not None and len({v["box_px"] for v in summary["variants"]}) >= 2:
        summary["explain"] = _explain_runs(summary, *explain_with).to_dict()
    summary["timings"] = {"total_s": time.perf_counter() - t0}
    Path(out).mkdir(parents=True, exist_ok=True)
    write_sweep(out, summary, plot=plot, name="judge")
    return summary


def _check_judge_memory(boxes: list[int], *, masked: bool) -> None:
    """One sentence before any work when the judge would not fit in the free memory: one FSC of
    the largest box at a time (``jobs.fsc.fsc_memory_bytes``) and one mask per box."""

    big = boxes[-1]
    other_masks = sum(4.0 * b**3 for b in boxes[:-1]) if masked else 0.0  # the largest one is in the FSC's
    check_memory(
        fsc_memory_bytes((big,) * 3, masked=masked) + other_masks,
        what=f"judging runs of up to {big} px ({big}³ half maps, {len(boxes)} box size(s))",
    )


def _check_runs(runs: list[tuple[str, RunMaps]], *, resample: bool):
    """Every check of the runs before any work: no run named twice, each pair one box and pixel
    size, one pixel size for all (or ``resample``), two different maps. Returns each run's (box,
    pixel size), the common pixel size, each run's box on the common grid, and notes."""

    notes: list[str] = []
    for i, (_, rm) in enumerate(runs):
        for _, other in runs[:i]:
            if same_file(rm.half1, other.half1) or same_file(rm.half1, other.half2):
                raise InputError(
                    f"{rm.spec} and {other.spec}: the same run is named twice (its half map {rm.half1} is "
                    f"{other.half1 if same_file(rm.half1, other.half1) else other.half2}); each run belongs to one "
                    "variant, once."
                )
    info = {}
    for _, rm in runs:
        (b1, p1), (b2, p2) = _header(rm.half1), _header(rm.half2)
        if b1 != b2 or p1 is None or p2 is None or abs(p1 - p2) > 1e-3 * p1:
            raise InputError(
                f"{rm.half1} ({b1} px, {p1} Å/px) and {rm.half2} ({b2} px, {p2} Å/px) are not one pair: half maps "
                "must share box and pixel size (a pixel size of 0 in a header: fix it with relion_image_handler "
                "--angpix)."
            )
        info[rm.spec] = (b1, p1)
    sizes = sorted({round(p, 4) for _, p in info.values()})
    psize = info[runs[0][1].spec][1]
    if len(sizes) > 1:
        if not resample:
            raise InputError(
                f"the runs have pixel sizes {', '.join(f'{p:g}' for p in sizes)} Å/px: judge compares runs on one "
                "grid; "
                "give `resample` to Fourier-resample every map to the first run's pixel size."
            )
        notes.append(f"maps Fourier-resampled to {psize:g} Å/px (from {', '.join(f'{p:g}' for p in sizes)} Å/px)")
    for _, rm in runs:  # after the grid checks: their message is the more useful one
        refuse_one_map(rm.half1, rm.half2)
    grid_box = {spec: int(round(b * p / psize)) for spec, (b, p) in info.items()}  # each run's box on the common grid

    return info, psize, grid_box, notes


def _judge_mask(
    runs,
    info,
    *,
    psize: float,
    boxes: list[int],
    mask,
    auto_mask: bool,
    resample: bool,
    unmasked_across_boxes: bool,
    notes: list[str],
):
    """The one mask in Å at the largest box (given, or built from the average of every run in one
    fixed order), or none; and the sentence that says which."""

    big = boxes[-1]
    if mask is not None:
        m_big, mask_pixel_a = read_mrc(mask)
        if m_big.ndim != 3 or len(set(m_big.shape)) != 1:
            raise InputError(f"{mask}: the mask is {m_big.shape}, not a cubic 3D map.")
        if mask_pixel_a is not None and abs(mask_pixel_a - psize) > 1e-3 * psize:
            if not resample:
                raise InputError(
                    f"{mask}: the mask is at {mask_pixel_a:g} Å/px, the runs at {psize:g} Å/px; give `resample` or a "
                    "mask on their grid."
                )

            m_big, _ = resample_to(m_big, mask_pixel_a, psize)
            m_big = np.clip(m_big, 0.0, 1.0)
        if m_big.min() < -1e-6 or m_big.max() > 1 + 1e-6:
            raise InputError(
                f"{mask}: mask values run {float(m_big.min()):.3g}..{float(m_big.max()):.3g}; a mask holds values in "
                "[0, 1]."
            )
        m_big = window(m_big, big, ndim=3)
        mask_text = f"{mask}, windowed to each box"
    elif auto_mask:
        # the average of every run, summed in one fixed order (by path) in float64: the same mask
        # whatever the order in which the runs and variants are given
        # (float32, one map in memory at a time)
        acc = np.zeros((big,) * 3, np.float32)
        ordered = sorted((r for _, r in runs), key=lambda r: (str(r.half1.resolve()), str(r.half2.resolve())))
        for rm in ordered:
            for half in (rm.half1, rm.half2):
                _add_centred(acc, _read_on_grid(half, psize, info[rm.spec][1]), 0.5 / len(ordered))
        used = len(ordered)
        lowpass, extend, soft = auto_mask_scales_a(psize)
        try:
            m_big, thr = auto_mask_from_map(
                acc,
                pixel_size_a=psize,
                lowpass_a=lowpass,
                extend_a=extend,
                soft_edge_a=soft,
            )
        except ValueError as exc:
            raise InputError(f"auto mask: {exc}; give a mask with `mask`.") from None
        mask_text = (
            f"auto mask from the average of {used} run(s) at {big} px: low-passed to {lowpass:g} Å, threshold "
            f"{thr:.4g}, "
            f"extended {extend:g} Å, soft edge {soft:g} Å; windowed to each box"
        )
    else:
        m_big = None
        mask_text = "no mask (unmasked FSC)"
        if len(boxes) > 1:
            if not unmasked_across_boxes:
                raise InputError(
                    f"unmasked FSCs of runs in different boxes ({', '.join(map(str, boxes))} px) are not comparable: "
                    "an unmasked FSC pays for the solvent in its box, so the bigger box looks worse; use a mask "
                    "(`mask` or the default `auto_mask`), or give `unmasked_across_boxes` to compare anyway."
                )
            notes.append(
                "UNMASKED FSCs OF DIFFERENT BOXES: each pays for the solvent in its box (a bigger box looks worse "
                "for that alone); the verdict compares boxes, not just the maps."
            )
    return m_big, mask_text


def _judge_fscs(variants, runs, info, grid_box, masks, *, psize: float, seed: int | None, say) -> dict[str, list[dict]]:
    """Every run's FSC record, read one pair of maps at a time."""

    results: dict[str, list[dict]] = {label: [] for label, _ in variants}
    for k, (label, rm) in enumerate(runs):
        b = grid_box[rm.spec]
        h1 = _read_on_grid(rm.half1, psize, info[rm.spec][1])
        h2 = _read_on_grid(rm.half2, psize, info[rm.spec][1])
        if all(np.array_equal(h1[i : i + 16], h2[i : i + 16]) for i in range(0, h1.shape[0], 16)):
            raise InputError(
                f"{rm.half1} and {rm.half2} ({rm.spec}) hold the same values: a run's FSC with itself is 1 everywhere; "
                "give the two half maps of each run."
            )
        t_run = time.perf_counter()
        # the randomisation is a function of the maps (and --seed), never of the run's position
        rec = run_fsc_record(h1, h2, masks.get(b), pixel_size_a=psize, seed=seed, overwrite_input=True)
        del h1, h2
        rec.update(
            {
                "repeat": len(results[label]) + 1,
                "run": rm.spec,
                "seed": seed,
                "half1": str(rm.half1),
                "half2": str(rm.half2),
                "half_maps_from": rm.source,
                "half_maps_kind": "given",
                "box_px": b,
                "fsc_seconds": time.perf_counter() - t_run,
            }
        )
        results[label].append(rec)
        say(
            f"[{k + 1}/{len(runs)}] {label} {rm.spec} ({b} px): FSC 0.143 at {rec['interpolated_resolution_a']:.2f} Å "
            f"(RELION rule {rec['resolution_a']:.2f} Å)"
            + ("; limited by Nyquist" if rec.get("limited_by_nyquist") else "")
        )
    return results


def _explain_runs(summary: dict, inputs, diameter_a: float):
    """``cryobox explain`` on the judged boxes: each variant's mean resolution as measured, the
    roomiest box's mean FSC curve as the basis of the prediction (predicting a tight box from a
    roomy one is the direction the benchmarks check)."""
    from cryobox.jobs.explain import ExplainSettings, MeasuredRun, explain_boxes  # with particles only: see above

    if abs(inputs.pixel_size_a - summary["pixel_size_a"]) > 0.01 * summary["pixel_size_a"]:
        raise InputError(
            f"the particles are at {inputs.pixel_size_a:g} Å/px, the runs at {summary['pixel_size_a']:g} Å/px; give "
            "the particles the runs were refined from (`particles`)."
        )
    measured = []
    for v in sorted(summary["variants"], key=lambda v: -v["box_px"]):
        curves = [r["curve"] for r in v["runs"] if r.get("curve")]
        if v["mean_a"] is None:
            continue
        k = np.asarray(curves[0]["frequency_inv_a"]) if curves else None
        f = np.mean([c["fsc"] for c in curves], axis=0) if curves else None
        measured.append(MeasuredRun(f"judge {v['variant']}", int(v["box_px"]), float(v["mean_a"]), k, f))
    settings = ExplainSettings(
        diameter_a=diameter_a,
        boxes_px=tuple(sorted({v["box_px"] for v in summary["variants"]})),
        pixel_size_a=inputs.pixel_size_a,
        resolution_a=measured[0].resolution_a,
        program=inputs.program or "cryosparc",
    )
    return explain_boxes(inputs, settings, measured=measured)


def summarise_judge(
    variants, results: dict[str, list[dict]], *, pixel_size_a: float, mask_text: str, notes: list[str]
) -> dict:
    """judge.json: the sweep.json schema for runs made elsewhere."""

    rows = []
    for label, _ in variants:
        rs = results[label]
        boxes = sorted({r["box_px"] for r in rs})
        if len(boxes) > 1:
            notes.append(
                f"{label}: its runs have different boxes ({', '.join(map(str, boxes))} px); the first is the variant's"
            )
        rows.append(
            variant_row(
                label,
                rs,
                box_px=boxes[0],
                pixel_size_a=pixel_size_a,
                description=f"{len(rs)} run(s) at {boxes[0]} px: " + ", ".join(r["run"] for r in rs),
                sources=sorted({r["half_maps_from"].split(":")[0] for r in rs}),
            )
        )
    comparisons = compare_variants(rows, pixel_size_a=pixel_size_a)
    best = decided_best(rows, comparisons)
    half_maps: dict[str, int] = {}
    for rs in results.values():
        for r in rs:
            src = (
                r["half_maps_from"].split(":")[0].rsplit(" ", 1)[0]
                if r["half_maps_from"] != "half maps given"
                else "half maps given"
            )
            half_maps[src] = half_maps.get(src, 0) + 1
    return {
        "cryobox": "judge",
        "version": 1,
        "pixel_size_a": pixel_size_a,
        "mask": mask_text,
        "n_runs": sum(len(v) for v in results.values()),
        "n_particles_refined": None,
        "settings": {"repeats": max((len(v) for v in results.values()), default=0)},
        "engine": {"engine": "runs made elsewhere (cryoSPARC / RELION / half maps)"},
        "resolution_rule": "FSC = 0.143 of the masked, phase-randomisation-corrected FSC (relion_postprocess), the "
        "same for "
        "every run; 'resolution_a' by RELION's rule (last shell above), 'interpolated' between shells",
        "test": TEST_TEXT,
        "variants": rows,
        "comparisons": comparisons,
        "best": best,
        "notes": notes,
        "half_maps_from": half_maps,
    }
