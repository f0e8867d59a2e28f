"""`cryobox ctf`: the CTF sampled on a box's own Fourier grid, where aliasing shows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cryobox.core.boxsize import aliasing_limited_resolution_a
from cryobox.core.optics import CtfParams, ctf_1d, electron_wavelength_a
from cryobox.errors import InputError
from cryobox.io.particles import ParticleTable
from cryobox.io.schema import CTF_REQUIRED, checked, checked_defocus
from cryobox.jobs.records import check_memory

__all__ = ["CtfParameters", "CtfPicture", "parameters_from_table", "compute_ctf_picture"]


@dataclass(frozen=True, kw_only=True)
class CtfParameters(CtfParams):
    """One CTF (``core.optics.CtfParams``: defocus U / V in Å and angle in degrees, voltage in kV,
    Cs in mm, amplitude contrast, phase shift in degrees) on one box: box (px), pixel size (Å/px),
    and where the values came from (``source``: "flags" or the particle file and percentile)."""

    box_px: int
    pixel_size_a: float
    source: str = "flags"


@dataclass
class CtfPicture:
    """Everything the CTF figure shows; ``to_dict`` gives the ``--json`` form (no arrays)."""

    params: CtfParameters
    power: int
    resolution_a: float | None
    image: np.ndarray  # (N, N) centred, origin at N//2: relion_ctf_toolbox --simulate layout
    box_frequencies_inv_a: np.ndarray  # k_n = n / (N p), n = 0..N//2, along the max-defocus direction
    box_profile: np.ndarray
    fine_frequencies_inv_a: np.ndarray
    fine_profile: np.ndarray
    first_aliased_resolution_a: float  # inf when nothing aliases to Nyquist
    wavelength_a: float

    def to_dict(self) -> dict:
        p = self.params
        alias = self.first_aliased_resolution_a
        nyq = 2.0 * p.pixel_size_a
        return {
            "source": p.source,
            "box_px": p.box_px,
            "box_a": p.box_px * p.pixel_size_a,
            "pixel_size_a": p.pixel_size_a,
            "defocus_u_a": p.defocus_u_a,
            "defocus_v_a": p.defocus_v_a,
            "defocus_angle_deg": p.defocus_angle_deg,
            "voltage_kv": p.voltage_kv,
            "cs_mm": p.cs_mm,
            "amplitude_contrast": p.amplitude_contrast,
            "phase_shift_deg": p.phase_shift_deg,
            "ctf_power": self.power,
            "wavelength_a": self.wavelength_a,
            "nyquist_a": nyq,
            "first_aliased_resolution_a": None if not np.isfinite(alias) or alias <= nyq * (1 + 1e-9) else alias,
            "aliasing_free_to_nyquist": bool(alias <= nyq * (1 + 1e-9)),
            "resolution_a": self.resolution_a,
            "aliasing_free_at_resolution": None if self.resolution_a is None else bool(alias <= self.resolution_a),
        }


def parameters_from_table(table: ParticleTable, *, percentile: float, box_px: int | None = None) -> CtfParameters:
    """The CTF of the particle at the given percentile of mean defocus (its own astigmatism)."""
    if not 0 <= percentile <= 100:
        raise InputError(f"`percentile` must be between 0 and 100, got {percentile}.")
    table.require(
        *CTF_REQUIRED,
        "pixel_size_a",
        purpose="the CTF picture",
    )
    d = table.data
    if len(d) == 0:
        raise InputError(f"{table.path}: no particles; nothing to draw.")
    mean = 0.5 * (d["defocus_u_a"].to_numpy(dtype=np.float64) + d["defocus_v_a"].to_numpy(dtype=np.float64))
    target = np.percentile(mean, percentile)
    i = int(np.argmin(np.abs(mean - target)))
    row = d.iloc[i]
    if box_px is None:
        if "box_px" not in d:
            raise InputError(f"{table.path}: no box size (rlnImageSize / blob/shape) in the file; give `box_px`.")
        box_px = int(row["box_px"])
    return CtfParameters(
        box_px=int(box_px),
        pixel_size_a=float(row["pixel_size_a"]),
        defocus_u_a=float(row["defocus_u_a"]),
        defocus_v_a=float(row["defocus_v_a"]),
        defocus_angle_deg=float(row["defocus_angle_deg"]),
        voltage_kv=float(row["voltage_kv"]),
        cs_mm=float(row["cs_mm"]),
        amplitude_contrast=float(row["amplitude_contrast"]),
        phase_shift_deg=float(row["phase_shift_deg"]) if "phase_shift_deg" in d else 0.0,
        source=f"{table.path} (particle {i + 1}, {percentile:g}th percentile of mean defocus)",
    )


def compute_ctf_picture(
    params: CtfParameters, *, resolution_a: float | None = None, power: int = 1, oversample: int = 16
) -> CtfPicture:
    """2D CTF on the box grid plus box-sampled and finely sampled 1D profiles (pure math)."""
    p = params
    if p.box_px < 2:
        raise InputError(f"`box_px` must be at least 2 px, got {p.box_px}.")
    check_memory(8.0 * 6 * float(p.box_px) ** 2, what=f"a CTF picture of a {p.box_px} px box")
    if not p.pixel_size_a > 0:
        raise InputError(f"`pixel_size_a` must be positive (Å/px), got {p.pixel_size_a}.")
    if p.defocus_u_a < 0 or p.defocus_v_a < 0:
        raise InputError("defocus must be a positive number of Å (underfocus).")
    if p.source.startswith("flags"):  # values from the command line: the instrument's ranges and units
        checked("voltage_kv", p.voltage_kv, "voltage_kv")
        checked("cs_mm", p.cs_mm, "cs_mm")
        checked("amplitude_contrast", p.amplitude_contrast, "amplitude_contrast")
        checked_defocus(p.defocus_u_a, "defocus_u_a")
        checked_defocus(p.defocus_v_a, "defocus_v_a")
    if resolution_a is not None and not (math.isfinite(resolution_a) and resolution_a >= 2 * p.pixel_size_a):
        raise InputError(
            f"`resolution_a` {resolution_a:g} Å is finer than Nyquist ({2 * p.pixel_size_a:g} Å at {p.pixel_size_a:g} "
            "Å/px): the box cannot show it."
        )
    kw = dict(
        voltage_kv=p.voltage_kv,
        cs_mm=p.cs_mm,
        amplitude_contrast=p.amplitude_contrast,
        phase_shift_deg=p.phase_shift_deg,
        power=power,
    )  # of the 1D profiles along the largest defocus
    try:
        image = p.on_box(p.box_px, p.pixel_size_a, power=power)
    except ValueError as exc:
        raise InputError(f"CTF parameters: {exc}.") from None
    df_max = max(p.defocus_u_a, p.defocus_v_a)
    nyq = 0.5 / p.pixel_size_a
    k_box = np.arange(p.box_px // 2 + 1) / (p.box_px * p.pixel_size_a)
    k_fine = np.linspace(0.0, nyq, oversample * (p.box_px // 2) + 1)
    alias = aliasing_limited_resolution_a(
        p.box_px, p.pixel_size_a, defocus_a=df_max, voltage_kv=p.voltage_kv, cs_mm=p.cs_mm, ctf_power=power
    )
    return CtfPicture(
        params=p,
        power=power,
        resolution_a=resolution_a,
        image=image,
        box_frequencies_inv_a=k_box,
        box_profile=ctf_1d(k_box, defocus_a=df_max, **kw),
        fine_frequencies_inv_a=k_fine,
        fine_profile=ctf_1d(k_fine, defocus_a=df_max, **kw),
        first_aliased_resolution_a=float(alias),
        wavelength_a=float(electron_wavelength_a(p.voltage_kv)),
    )
