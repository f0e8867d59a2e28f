"""What `extract` and `restack` do to each particle: one options type and one per-batch finish.

Both follow relion_preprocess's order: cut (extract) or read (restack) the boxes; premultiply by
the CTF or flip its phases on the big box, then window to the box; Fourier rescale; normalise the
background; invert. The first steps differ (extract cuts from micrographs, restack reads stacks);
``finish_batch`` is the shared rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryobox.core import extract as ex
from cryobox.core.extract import default_bg_radius_px
from cryobox.errors import InputError
from cryobox.jobs.records import settings_digest

__all__ = ["ParticleOps", "finish_batch"]


#: Said whenever float16 stacks are written (checked: relion_image_handler 3.1.3 stops on a mode-12
#: stack with "RELION 3.1 does not support half-precision floating point numbers (MRC mode 12)").
FLOAT16_NOTE = (
    "float16 stacks (MRC mode 12) halve the disk space, but RELION 3.1 cannot read them; RELION 4.0 and later, "
    "cryobox and mrcfile do. For RELION 3.1 (and programs older than the MRC-2014 mode 12), write float32."
)


@dataclass(frozen=True)
class ParticleOps:
    """The operations on each particle, in RELION's order (all sizes in px).

    ``box_px``: the box written before ``rescale_px`` (restack: None keeps the input's);
    ``premultiply_box_px`` (extract): cut this bigger box, multiply by the particle's CTF and crop
    to ``box_px``; ``premultiply`` (restack): multiply by the CTF on the input box, then window;
    ``premultiply_micrograph`` (extract): multiply the whole micrograph by its CTF first (the
    limit of an infinite premultiply box); ``phase_flip``: flip the CTF's phases instead;
    ``rescale_px``: Fourier crop/pad to this size; ``norm`` / ``bg_radius_px`` (px of the final
    box, default ``default_bg_radius_px``) / ``ramp``: relion_preprocess --norm; ``invert``:
    contrast; ``edge`` (extract): "keep" (RELION: pixels outside the micrograph repeat its edge) or
    "drop" (cryoSPARC: such particles are left out); ``float16``: half-precision stacks.
    """

    box_px: int | None = None
    norm: bool = True
    bg_radius_px: float | None = None
    ramp: bool = True
    invert: bool = False
    premultiply: bool = False
    premultiply_box_px: int | None = None
    premultiply_micrograph: bool = False
    phase_flip: bool = False
    rescale_px: int | None = None
    edge: str = "keep"
    float16: bool = False

    @property
    def final_box_px(self) -> int:
        """The box written (px): ``rescale_px``, else ``box_px``."""
        return self.output_box_px()

    def window_px(self, input_box_px: int | None = None) -> int:
        """The box windowed to (px): ``box_px``, else (restack) the input's box."""
        return self.box_px or input_box_px

    def output_box_px(self, input_box_px: int | None = None) -> int:
        """The box written (px) for particles of ``input_box_px`` (restack keeps it without ``box_px``)."""
        return self.rescale_px or self.window_px(input_box_px)

    def output_pixel_size_a(self, pixel_size_a: float, input_box_px: int | None = None) -> float:
        """The pixel size (Å/px) of what is written, from the pixel size windowed at: a Fourier
        rescale from the window to ``rescale_px`` scales it by window / rescale. The one place that
        says it (extract, restack and their STAR, .cs and MRC headers all use it)."""
        return pixel_size_a * self.window_px(input_box_px) / self.output_box_px(input_box_px)

    @property
    def cut_box_px(self) -> int:
        """The box cut from the micrograph (px): the premultiply box when there is one."""
        return self.premultiply_box_px or self.box_px

    def bg_radius_for(self, final_box_px: int) -> float:
        """The background radius (px) on a final box of ``final_box_px``."""
        return float(self.bg_radius_px) if self.bg_radius_px is not None else default_bg_radius_px(final_box_px)

    @property
    def bg_radius(self) -> float:
        """The background radius (px of ``final_box_px``)."""
        return self.bg_radius_for(self.final_box_px)

    @property
    def premultiplied(self) -> bool:
        """True when the output carries the CTF once (rlnCtfDataAreCtfPremultiplied 1)."""
        return bool(self.premultiply or self.premultiply_box_px or self.premultiply_micrograph)

    @property
    def no_cryosparc_file(self) -> str | None:
        """Why no particles.cs is written for these settings (None: one is). A .cs has no field
        that says its images carry the CTF already (RELION's rlnCtfDataAreCtfPremultiplied and
        rlnCtfDataArePhaseFlipped have no cryoSPARC counterpart), so cryoSPARC would apply it again."""
        if not (self.premultiplied or self.phase_flip):
            return None
        what = "CTF-premultiplied" if self.premultiplied else "phase-flipped"
        return (
            f"particles.cs not written: these particles are {what} and a .cs cannot say so, so cryoSPARC would "
            "apply the CTF to them a second time; for cryoSPARC, crop without premultiplying (`--box N` alone) "
            "and see `cryobox explain` for the signal a tight box leaves out."
        )

    def check(self) -> None:
        """One sentence (``InputError``) for settings no particle can have."""

        if self.bg_radius_px is not None and not (np.isfinite(self.bg_radius_px) and self.bg_radius_px > 0):
            raise InputError(f"`bg_radius_px` must be a positive radius in px, got {self.bg_radius_px}.")

    def digest(self) -> str:
        """A short hash of the settings: outputs written with other settings are redone."""
        return settings_digest(self)


def finish_batch(stack: np.ndarray, ops: ParticleOps, *, pixel_size_a: float, overwrite: bool = False) -> np.ndarray:
    """Rescale to ``ops.rescale_px``, normalise the background and invert, as relion_preprocess.

    ``stack`` (n, N, N) at ``pixel_size_a`` (Å/px) is the windowed (and premultiplied) batch;
    ``overwrite`` lets the normalisation work in the batch itself.
    """

    n = stack.shape[-1]
    if ops.rescale_px and ops.rescale_px != n:
        stack, _ = ex.fourier_rescale_stack(stack, ops.rescale_px, pixel_size_a=pixel_size_a)
        overwrite = True
    if ops.norm:
        return ex.normalise_background(
            stack, ops.bg_radius_for(stack.shape[-1]), ramp=ops.ramp, invert=ops.invert, overwrite=overwrite
        )
    return -stack if ops.invert else stack
