"""`cryobox fsc`, `filter`, `resample`: resolution from half maps, and map filtering on one grid."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cryobox.core.fourier import filter_map, fourier_rescale, padded_volume, window
from cryobox.core.fsc import FscResult, masked_fsc_analysis
from cryobox.core.masks import AutoMaskError, AutoMaskSettings, auto_mask_from_half_maps
from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path
from cryobox.io.ledger import same_file
from cryobox.io.mrc import check_mask, read_map, read_map_header, read_map_into, read_mrc, write_mrc, write_mrc_data
from cryobox.jobs.outputs import check_outputs
from cryobox.jobs.records import check_memory

__all__ = [
    "FscJob",
    "run_fsc",
    "fsc_to_dict",
    "run_filter",
    "run_resample",
    "read_half_maps",
    "fsc_memory_bytes",
]


def fsc_memory_bytes(shape: tuple[int, ...], *, masked: bool, auto_mask: bool = False) -> float:
    """Peak memory (bytes) of ``run_fsc`` on half maps of ``shape``: the two half maps in their
    spectrum buffers, and with a mask the mask and two work buffers (``core.fsc``'s docstring);
    the auto mask's filtering buffer and threshold map come before the work buffers, so they add
    nothing to that peak. 0.2 GB for the interpreter and the slabs' temporaries."""
    n = shape[-1]
    volume = 4.0 * float(np.prod(shape[:-1])) * 2 * (n // 2 + 1)
    return (5 if masked or auto_mask else 2) * volume + 0.2 * 2**30


def _while_writing(tmp: Path, volume: NDArray, pixel_size_a: float, work):
    """``work()``, with ``volume`` written to ``tmp`` on a thread meanwhile (the write is mostly
    the kernel's copying, which the transforms need not wait for); the writer's error, if any,
    is raised after ``work``'s."""

    failed: list[BaseException] = []

    def write():
        try:
            write_mrc_data(tmp, volume, pixel_size_a=pixel_size_a)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failed.append(exc)

    writer = threading.Thread(target=write, name="cryobox-write-mask", daemon=True)
    writer.start()
    try:
        result = work()
    finally:
        writer.join()
    if failed:
        raise failed[0]
    return result


def read_half_maps(
    half1: Path, half2: Path, *, pixel_size_a: float | None = None, masked: bool = True, auto_mask: bool = False
) -> tuple[NDArray, NDArray, float]:
    """Both half maps, checked as `cryobox fsc` checks them, each read into a
    ``core.fourier.padded_volume`` (so ``masked_fsc_analysis(..., overwrite_input=True)``
    transforms them where they are), and their pixel size. Refuses, before reading a voxel, maps
    whose analysis would not fit in the free memory."""
    shape1, p1 = read_map_header(half1, pixel_size_a=pixel_size_a, what="half map", ndim=3)
    shape2, p2 = read_map_header(half2, pixel_size_a=pixel_size_a, what="half map", ndim=3)
    if shape1 != shape2:
        raise InputError(
            f"{half1} is {shape1} but {half2} is {shape2}: half maps must share one box; resample one (cryobox "
            "resample)."
        )
    if abs(p1 - p2) > 1e-3 * p1:
        raise InputError(
            f"{half1} has {p1:g} Å/px but {half2} has {p2:g} Å/px: give `pixel_size_a` if the headers are wrong, or "
            "resample."
        )
    refuse_one_map(half1, half2)  # after the maps' own checks: a bad flag or header says so first
    check_memory(
        fsc_memory_bytes(shape1, masked=masked, auto_mask=auto_mask),
        what=f"the FSC of two {' x '.join(map(str, shape1))} half maps ({half1})",
    )
    h1 = padded_volume(shape1)
    read_map_into(half1, h1, what="half map", varying=True)
    h2 = padded_volume(shape2)
    read_map_into(half2, h2, what="half map", varying=True)
    if all(np.array_equal(h1[i : i + 16], h2[i : i + 16]) for i in range(0, h1.shape[0], 16)):
        raise InputError(
            f"{half1} and {half2} hold the same values: an FSC of a map with itself is 1 everywhere; give the two "
            "half maps of a gold-standard refinement."
        )
    return h1, h2, p1


@dataclass
class FscJob:
    """Inputs and results of one `cryobox fsc` run."""

    half1: str
    half2: str
    result: FscResult
    mask: str | None = None
    mask_written: str | None = None
    notes: list[str] = field(default_factory=list)
    seed: int | None = None  # None: the phase-randomised FSC's expectation; a number: one draw


def run_fsc(
    half1: Path,
    half2: Path,
    *,
    mask: Path | None = None,
    auto: bool = False,
    mask_threshold: float | None = None,
    mask_lowpass_a: float = 15.0,
    mask_extend_a: float = 3.0,
    mask_soft_edge_a: float = 6.0,
    mask_out: Path | None = None,
    pixel_size_a: float | None = None,
    randomise_at_a: float | None = None,
    seed: int | None = None,
    force_mask: bool = False,
    keep_spectra: bool = False,
) -> FscJob:
    """Read half maps (and a mask, or build one), run the masked FSC analysis, write the auto mask.
    ``keep_spectra``: the result keeps the masked half maps' spectra (``FscResult.spectra``)."""
    for name, value, low in (("mask_lowpass_a", mask_lowpass_a, 0.0), ("mask_extend_a", mask_extend_a, None)):
        if auto and not (math.isfinite(value) and (value > low if low is not None else value >= 0)):
            raise InputError(
                f"`{name}` must be a {'positive' if low is not None else 'non-negative'} number of Å, got {value:g}."
            )
    if auto and not (math.isfinite(mask_soft_edge_a) and mask_soft_edge_a >= 0):
        raise InputError(f"`mask_soft_edge_a` must be 0 or more Å, got {mask_soft_edge_a:g}.")
    if randomise_at_a is not None and mask is None and not auto:
        raise InputError(
            "`randomise_at_a` sets where the masked FSC's phases are randomised; without `mask` or `auto_mask` there "
            "is no masked FSC: give a mask, or drop it."
        )
    if auto:
        check_outputs([mask_out or Path("automask.mrc")], [half1, half2, mask], names=["mask_out"])
    if mask is not None and auto:
        raise InputError("give either `mask` or `auto_mask`, not both.")
    h1, h2, p1 = read_half_maps(half1, half2, pixel_size_a=pixel_size_a, masked=mask is not None, auto_mask=auto)
    if randomise_at_a is not None and not (math.isfinite(randomise_at_a) and randomise_at_a >= 2.0 * p1):
        raise InputError(
            f"`randomise_at_a` must be a resolution at or below Nyquist ({2.0 * p1:g} Å at {p1:g} Å/px), got "
            f"{randomise_at_a:g}."
        )
    notes = []
    m = None
    written = None
    if mask is not None:
        m, pm = read_mrc(mask)
        if m.shape != h1.shape:
            raise InputError(f"{mask} is {m.shape} but the half maps are {h1.shape}: the mask must share their box.")
        check_mask(m, mask)
        if pm is not None and abs(pm - p1) > 1e-3 * p1:
            notes.append(f"the mask header says {pm:g} Å/px, the half maps {p1:g} Å/px; the mask was used as it is.")
    if auto:
        settings = AutoMaskSettings(mask_lowpass_a, mask_threshold, mask_extend_a, mask_soft_edge_a)
        try:
            m, thr = auto_mask_from_half_maps(h1, h2, pixel_size_a=p1, settings=settings)
        except AutoMaskError as exc:
            raise InputError(f"`auto_mask`: {exc}; lower `mask_threshold`.") from None
        written_path = mask_out or Path("automask.mrc")
        written = str(written_path)
        notes.append(
            f"auto mask: average of the half maps low-passed to {mask_lowpass_a:g} Å, threshold {thr:.4g}, "
            f"extended {mask_extend_a:g} Å, soft edge {mask_soft_edge_a:g} Å; written to {written_path}."
        )

    def analyse():
        try:
            return masked_fsc_analysis(
                h1,
                h2,
                pixel_size_a=p1,
                mask=m,
                randomise_at_a=randomise_at_a,
                seed=seed,
                force_mask=force_mask,
                overwrite_input=True,
                keep_spectra=keep_spectra,
            )
        except ValueError as exc:
            raise InputError(f"{half1}, {half2}: {exc}.") from None

    if written is None:
        res = analyse()
    else:  # the mask is written while the FSC is computed, and kept only if the FSC succeeds
        with atomic_path(written_path) as tmp:
            res = _while_writing(tmp, m, p1, analyse)
    return FscJob(
        half1=str(half1),
        half2=str(half2),
        result=res,
        mask=str(mask) if mask else written,
        seed=seed,
        mask_written=written,
        notes=notes,
    )


def _curve_list(a) -> list | None:
    return None if a is None else [float(x) for x in a]


def fsc_to_dict(job: FscJob) -> dict:
    """The --json form: resolutions (RELION rule and interpolated) and the curves."""
    r = job.result
    res = {f"{t:g}": r.resolution(t) for t in (0.143, 0.5)}
    return {
        "half1": job.half1,
        "half2": job.half2,
        "mask": job.mask,
        "box_px": r.box_px,
        "pixel_size_a": r.pixel_size_a,
        "resolution_a": res["0.143"]["resolution_a"],
        "resolution_interpolated_a": res["0.143"]["interpolated_resolution_a"],
        # the crossing's spread from the FSC's own sampling; the phase randomisation adds none
        # (its expectation) unless a --seed asked for one draw
        "resolution_measurement_sd_a": res["0.143"]["measurement_sd_a"],
        "phase_randomisation": "expectation over all draws"
        if job.seed is None
        else f"one draw (seed {job.seed}, with the maps' content)",
        "resolution_rule": "last shell before the corrected FSC first drops below the threshold "
        "(relion_postprocess); interpolated crossing beside it",
        "resolutions": res,
        "unmasked_resolution_a": r.resolution(0.143, curve="unmasked")["resolution_a"],
        "randomise_at_shell": r.randomise_at_shell,
        "randomise_at_a": None if r.randomise_at_shell is None else r.box_px * r.pixel_size_a / r.randomise_at_shell,
        "warnings": list(r.warnings),
        "notes": list(job.notes),
        "curves": {
            "shell": [int(s) for s in r.shells],
            "frequency_inv_a": [float(k) for k in r.frequency_inv_a],
            "fsc_unmasked": _curve_list(r.fsc_unmasked),
            "fsc_masked": _curve_list(r.fsc_masked),
            "fsc_random_masked": _curve_list(r.fsc_random_masked),
            "fsc_corrected": _curve_list(r.fsc_corrected),
        },
    }


def write_fsc_star(path: Path, job: FscJob) -> Path:
    """The analysis as relion_postprocess's STAR file (``io.fsc_files.postprocess_star_blocks``)."""
    # imported here: STAR files need pandas, which `cryobox fsc` without --star never loads
    from cryobox.io.fsc_files import postprocess_star_blocks
    from cryobox.io.star import write_star_blocks

    blocks = postprocess_star_blocks(job.result, half1=job.half1, half2=job.half2, mask=job.mask)
    return write_star_blocks(path, blocks)


def refuse_one_map(half1, half2) -> None:
    """Two names for one file (the same path, a link, ``..``, a hard link) are not two half maps."""

    if same_file(half1, half2):
        raise InputError(
            f"{half1} and {half2} are one file: an FSC of a map with itself is 1 everywhere; give the two half maps "
            "of a gold-standard refinement."
        )


def run_filter(
    path: Path,
    out: Path,
    *,
    lowpass_a: float | None = None,
    highpass_a: float | None = None,
    bfactor_a2: float = 0.0,
    edge_width_shells: int = 2,
    mask: Path | None = None,
    pixel_size_a: float | None = None,
) -> dict:
    check_outputs([out], [path, mask], names=["out"])
    if lowpass_a is None and highpass_a is None and not bfactor_a2 and mask is None:
        raise InputError(
            f"{path}: nothing to do; give `lowpass_a`, `highpass_a`, `bfactor_a2` or `mask` (a plain copy is `cp`)."
        )
    vol, pixel_a = read_map(path, pixel_size_a=pixel_size_a)
    if edge_width_shells < 0:
        raise InputError(f"`edge_width_shells` must be 0 or more Fourier shells, got {edge_width_shells}.")
    for name, v in (("`lowpass_a`", lowpass_a), ("`highpass_a`", highpass_a), ("`bfactor_a2`", bfactor_a2)):
        if v is not None and not math.isfinite(v):
            raise InputError(f"{name} must be a number, got {v}.")
    for name, v in (("`lowpass_a`", lowpass_a), ("`highpass_a`", highpass_a)):
        if v is not None and v < 2 * pixel_a:
            raise InputError(f"{name} {v:g} Å is finer than Nyquist ({2 * pixel_a:.3g} Å at {pixel_a:g} Å/px).")
    try:
        outv = filter_map(
            vol,
            pixel_size_a=pixel_a,
            lowpass_a=lowpass_a,
            highpass_a=highpass_a,
            bfactor_a2=bfactor_a2,
            edge_width_shells=edge_width_shells,
        )
    except ValueError as exc:
        raise InputError(f"{path}: {exc}.") from None
    if not np.isfinite(outv).all():
        raise InputError(
            f"{path}: the filtered map is not finite (`bfactor_a2` {bfactor_a2:g} Å² is too strong); "
            "use a milder B-factor."
        )
    if mask is not None:
        m, _ = read_mrc(mask)
        if m.shape != outv.shape:
            raise InputError(f"{mask} is {m.shape} but {path} is {outv.shape}: the mask must share the map's box.")
        check_mask(m, mask)
        outv = outv * m.astype(np.float32)
    write_mrc(out, outv, pixel_size_a=pixel_a)
    return {
        "input": str(path),
        "output": str(out),
        "pixel_size_a": pixel_a,
        "box_px": int(vol.shape[-1]),
        "lowpass_a": lowpass_a,
        "highpass_a": highpass_a,
        "bfactor_a2": bfactor_a2,
        "edge_width_shells": edge_width_shells,
        "mask": str(mask) if mask else None,
    }


def run_resample(
    path: Path,
    out: Path,
    *,
    new_pixel_size_a: float | None = None,
    box_px: int | None = None,
    pixel_size_a: float | None = None,
) -> dict:
    """Fourier-rescale to a pixel size (exact pad/crop) and/or window to a box, centre kept at N//2."""
    check_outputs([out], [path], names=["out"])
    vol, pixel_a = read_map(path, pixel_size_a=pixel_size_a)
    n = vol.shape[-1]
    if new_pixel_size_a is None and box_px is None:
        raise InputError("give `new_pixel_size_a` and/or `box_px` for resample.")
    achieved = pixel_a
    if new_pixel_size_a is not None:
        if not new_pixel_size_a > 0:
            raise InputError(f"`new_pixel_size_a` must be positive, got {new_pixel_size_a}.")
        new_n = int(round(n * pixel_a / new_pixel_size_a))
        if new_n < 2:
            raise InputError(
                f"`new_pixel_size_a` {new_pixel_size_a:g} Å leaves {new_n} px of a {n} px box; choose a smaller "
                "pixel size."
            )
        check_memory(16.0 * 3 * max(new_n, n) ** vol.ndim, what=f"resampling to {new_n} px ({new_pixel_size_a:g} Å/px)")
        vol, achieved = fourier_rescale(vol, new_n, pixel_size_a=pixel_a)
    if box_px is not None:
        if box_px < 2:
            raise InputError(f"`box_px` must be at least 2 px, got {box_px}.")
        vol = window(vol, box_px)
    write_mrc(out, vol, pixel_size_a=achieved)
    return {
        "input": str(path),
        "output": str(out),
        "input_pixel_size_a": pixel_a,
        "input_box_px": n,
        "pixel_size_a": achieved,
        "box_px": int(vol.shape[-1]),
        "requested_pixel_size_a": new_pixel_size_a,
    }
