"""The maps a box-size experiment puts on every box: one reference and one FSC mask in Å, made
once at the largest box and windowed (centre N//2 kept) to each, so the boxes differ only in what
they hold. Used by ``sweep`` and ``judge``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryobox.core.fourier import filter_map, resample_to, window
from cryobox.core.masks import auto_mask_from_map, auto_mask_scales_a
from cryobox.io.mrc import write_mrc

__all__ = ["masks_for_boxes", "reference_grids"]


def masks_for_boxes(
    mask_big: np.ndarray, boxes: list[int], *, pixel_size_a: float, folder: Path
) -> tuple[dict[int, tuple[Path, np.ndarray]], list[str]]:
    """The mask windowed to each box, written as ``folder/mask_box<N>.mrc``; per box (path, array),
    and a note for each box that cuts off more than 1% of the mask."""

    total = float(mask_big.sum())
    out, notes = {}, []
    for b in boxes:
        m = np.clip(window(np.asarray(mask_big, np.float32), b, ndim=3), 0, 1).astype(np.float32)
        kept = float(m.sum()) / total if total > 0 else 1.0
        if kept < 0.99:
            notes.append(f"the FSC mask does not fit the {b} px box: {100 * (1 - kept):.0f}% of it is cut off there")
        out[b] = (write_mrc(Path(folder) / f"mask_box{b}.mrc", m, pixel_size_a=pixel_size_a), m)
    return out, notes


def reference_grids(
    reference: np.ndarray,
    reference_pixel_size_a: float,
    pixel_size_a: float,
    boxes: list[int],
    ini_high_a: float,
    mask: np.ndarray | None,
    folder: Path,
) -> tuple[dict, dict, list[str]]:
    """The sweep's reference (resampled to the particles' pixel size, windowed to each box and
    low-passed to ``ini_high_a`` Å) and FSC mask per box (``masks_for_boxes``), as files."""

    notes = []
    ref = np.asarray(reference, dtype=np.float32)
    if abs(reference_pixel_size_a - pixel_size_a) > 1e-4 * pixel_size_a:
        ref, achieved = resample_to(ref, reference_pixel_size_a, pixel_size_a)
        notes.append(
            f"reference resampled from {reference_pixel_size_a:g} to {achieved:.4g} Å/px ({ref.shape[-1]} px) to "
            "match the particles"
        )
    big = max(boxes)
    ref_big = window(ref, big, ndim=3)
    if mask is None:
        lowpass, extend, soft = auto_mask_scales_a(pixel_size_a)
        mask_big, _ = auto_mask_from_map(
            ref_big, pixel_size_a=pixel_size_a, lowpass_a=lowpass, extend_a=extend, soft_edge_a=soft
        )
        notes.append(
            f"FSC mask: the reference low-passed to {lowpass:g} Å, thresholded at mean + 3 sd, "
            f"extended {extend:g} Å, soft edge {soft:g} Å; one mask for every box"
        )
    else:
        mask_big = window(np.asarray(mask, np.float32), big, ndim=3)
    refs = {}
    folder.mkdir(parents=True, exist_ok=True)
    for b in boxes:
        r = filter_map(window(ref_big, b, ndim=3), pixel_size_a=pixel_size_a, lowpass_a=ini_high_a)
        refs[b] = write_mrc(folder / f"ref_box{b}.mrc", r.astype(np.float32), pixel_size_a=pixel_size_a)
    masks, mask_notes = masks_for_boxes(mask_big, boxes, pixel_size_a=pixel_size_a, folder=folder)
    return refs, {b: path for b, (path, _) in masks.items()}, notes + mask_notes
