"""Electron optics: wavelength, the contrast transfer function and its local oscillation.

Conventions are RELION 3.1's (verified against ``relion_ctf_toolbox --simulate`` in the tests):

    CTF(k) = sin(pi * lambda * df(theta) * k**2 - (pi / 2) * Cs * lambda**3 * k**4
                 + arctan(Q0 / sqrt(1 - Q0**2)) + phase_shift)
    df(theta) = (dfU + dfV) / 2 + (dfU - dfV) / 2 * cos(2 * (theta - theta_ast))

with ``theta = atan2(ky, kx)``, defocus positive for underfocus, Cs converted from mm to Å
inside, k in 1/Å. Every function takes and returns physical units named in its arguments.
Pure numpy; no files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CtfParams",
    "electron_wavelength_a",
    "ctf_1d",
    "ctf_2d",
    "ctf_2d_on_box",
    "spatial_frequency_grid_2d",
    "local_oscillation_a",
    "max_local_oscillation_a",
]

_PLANCK_WAVELENGTH_CONSTANT = 12.2643247  # Å * sqrt(V)
_RELATIVISTIC_CORRECTION = 0.978466e-6  # 1/V


def electron_wavelength_a(voltage_kv: ArrayLike) -> NDArray[np.float64] | float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV.

    lambda = 12.2643247 / sqrt(V * (1 + 0.978466e-6 * V)), V in volts (RELION's formula):
    0.019688 Å at 300 kV, 0.025079 Å at 200 kV.
    """
    v = np.asarray(voltage_kv, dtype=np.float64) * 1e3
    if np.any(v <= 0):
        raise ValueError(f"`voltage_kv` must be positive (kV), got {voltage_kv!r}")
    lam = _PLANCK_WAVELENGTH_CONSTANT / np.sqrt(v * (1.0 + _RELATIVISTIC_CORRECTION * v))
    return float(lam) if lam.ndim == 0 else lam


def _amplitude_contrast_phase(amplitude_contrast: float) -> float:
    q0 = float(amplitude_contrast)
    if not 0.0 <= q0 < 1.0:
        raise ValueError(f"`amplitude_contrast` must be a fraction in [0, 1), got {q0}")
    return float(np.arctan(q0 / np.sqrt(1.0 - q0 * q0)))


def ctf_phase_terms(
    *, voltage_kv: float, cs_mm: float, amplitude_contrast: float, phase_shift_deg: float
) -> tuple[float, float, float]:
    """The CTF's phase chi(k) = a df k^2 - b k^4 + c, as its three terms: a = pi lambda,
    b = pi Cs lambda^3 / 2 (Cs in Å) and c = the amplitude-contrast phase plus the phase shift
    (radians); the one place the formula's constants are written (``ctf_1d`` and ``ctf_2d``)."""
    lam = float(electron_wavelength_a(voltage_kv))
    return (
        float(np.pi * lam),
        float(0.5 * np.pi * float(cs_mm) * 1e7 * lam**3),
        _amplitude_contrast_phase(amplitude_contrast) + float(np.deg2rad(phase_shift_deg)),
    )


def _ctf_from_k2_defocus(
    k2: NDArray,
    defocus_a: NDArray | float,
    *,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift_deg: float,
    bfactor_a2: float,
    power: int,
) -> NDArray[np.float64]:
    a, b, c = ctf_phase_terms(
        voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast, phase_shift_deg=phase_shift_deg
    )
    chi = a * defocus_a * k2 - b * k2 * k2 + c
    ctf = np.sin(chi)
    if bfactor_a2:
        ctf = ctf * np.exp(-0.25 * bfactor_a2 * k2)
    if power != 1:
        ctf = ctf**power
    return ctf


def ctf_1d(
    frequency_inv_a: ArrayLike,
    *,
    defocus_a: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift_deg: float = 0.0,
    bfactor_a2: float = 0.0,
    power: int = 1,
) -> NDArray[np.float64]:
    """CTF at spatial frequencies ``frequency_inv_a`` (1/Å) for one defocus (Å, underfocus > 0).

    ``bfactor_a2`` (Å^2) multiplies by the envelope exp(-B k^2 / 4) as RELION does;
    ``power=2`` gives CTF^2, what CTF-premultiplied images carry.
    """
    k = np.asarray(frequency_inv_a, dtype=np.float64)
    return _ctf_from_k2_defocus(
        k * k,
        defocus_a,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_shift_deg=phase_shift_deg,
        bfactor_a2=bfactor_a2,
        power=power,
    )


def spatial_frequency_grid_2d(
    box_px: int, pixel_size_a: float, *, layout: str = "centred"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(ky, kx) in 1/Å on the Fourier grid of a ``box_px`` square image.

    layout ``"centred"``: shape (N, N), zero frequency at pixel (N//2, N//2), as an fftshift-ed
    spectrum (and ``relion_ctf_toolbox --simulate``) has it, for even and odd N.
    layout ``"rfft"``: shape (N, N//2 + 1), zero at index 0, the layout of ``scipy.fft.rfft2``.
    layout ``"rfft-relion"``: the same, but for even N the Nyquist row is +N/2 (RELION's FFTW
    loops) instead of numpy's -N/2; an astigmatic CTF differs there.
    """
    n = int(box_px)
    if n < 1:
        raise ValueError(f"box must be at least 1 px, got {box_px}")
    if not pixel_size_a > 0:
        raise ValueError(f"pixel size must be positive (Å), got {pixel_size_a}")
    if layout == "centred":
        f = (np.arange(n) - n // 2) / (n * pixel_size_a)
        return f[:, None] * np.ones((1, n)), np.ones((n, 1)) * f[None, :]
    if layout in ("rfft", "rfft-relion"):
        fy = np.fft.fftfreq(n, d=pixel_size_a)
        if layout == "rfft-relion" and n % 2 == 0:
            fy[n // 2] = -fy[n // 2]  # RELION's FFTW loops give the Nyquist row +N/2, numpy -N/2
        fx = np.fft.rfftfreq(n, d=pixel_size_a)
        return fy[:, None] * np.ones((1, fx.size)), np.ones((n, 1)) * fx[None, :]
    raise ValueError(f"layout must be 'centred', 'rfft' or 'rfft-relion', got {layout!r}")


def ctf_2d(
    ky_inv_a: ArrayLike,
    kx_inv_a: ArrayLike,
    *,
    defocus_u_a: float,
    defocus_v_a: float,
    defocus_angle_deg: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift_deg: float = 0.0,
    bfactor_a2: float = 0.0,
    power: int = 1,
    dtype: type = np.float64,
) -> NDArray:
    """Astigmatic CTF at frequency coordinates (ky, kx) in 1/Å, any shapes that broadcast.

    ``dtype=np.float32`` computes in single precision (phase error ~1e-4 rad at the highest
    frequencies of a 3 µm defocus): for micrograph-sized grids where speed matters.
    """
    ky = np.asarray(ky_inv_a, dtype=dtype)
    kx = np.asarray(kx_inv_a, dtype=dtype)
    # df(theta) k^2 without angles: cos(2(theta - a)) k^2 = (kx^2 - ky^2) cos 2a + 2 kx ky sin 2a.
    # Written so that separable inputs (a column of ky, a row of kx) touch the full grid as few
    # times as possible: the kx^2 and ky^2 terms are broadcast sums, the B-factor envelope an
    # outer product, and the rest is done in place.
    a = float(np.deg2rad(defocus_angle_deg))
    mean = 0.5 * float(defocus_u_a + defocus_v_a)
    half = 0.5 * float(defocus_u_a - defocus_v_a)
    pl, b4, offset = ctf_phase_terms(
        voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast, phase_shift_deg=phase_shift_deg
    )
    c2, s2 = float(np.cos(2 * a)), float(np.sin(2 * a))
    kx2, ky2 = kx * kx, ky * ky
    real = np.dtype(dtype).type
    chi = np.empty(np.broadcast_shapes(kx.shape, ky.shape), dtype=dtype)
    np.add((pl * (mean + half * c2)) * kx2, (pl * (mean - half * c2)) * ky2, out=chi)
    if half * s2:
        chi += ((2.0 * pl * half * s2) * ky) * kx
    k4 = kx2 + ky2
    k4 *= k4
    k4 *= real(b4)
    chi -= k4
    del k4
    chi += real(offset)
    ctf = np.sin(chi, out=chi)
    if bfactor_a2:
        ctf *= np.exp((-0.25 * float(bfactor_a2)) * ky2) * np.exp((-0.25 * float(bfactor_a2)) * kx2)
    if power != 1:
        ctf = ctf**power
    return ctf


def ctf_2d_on_box(
    box_px: int,
    pixel_size_a: float,
    *,
    defocus_u_a: float,
    defocus_v_a: float,
    defocus_angle_deg: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift_deg: float = 0.0,
    bfactor_a2: float = 0.0,
    power: int = 1,
    layout: str = "centred",
    dtype: type = np.float32,
) -> NDArray:
    """The CTF sampled on the box's own Fourier grid (spacing 1/(N p)), so aliasing shows.

    ``layout="centred"`` returns (N, N) with the origin at (N//2, N//2): the image
    ``relion_ctf_toolbox --simulate`` writes. ``layout="rfft"`` returns (N, N//2 + 1), ready to
    multiply an ``rfft2`` of an image.
    """
    ky, kx = spatial_frequency_grid_2d(box_px, pixel_size_a, layout=layout)
    ctf = ctf_2d(
        ky,
        kx,
        defocus_u_a=defocus_u_a,
        defocus_v_a=defocus_v_a,
        defocus_angle_deg=defocus_angle_deg,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_shift_deg=phase_shift_deg,
        bfactor_a2=bfactor_a2,
        power=power,
    )
    return ctf.astype(dtype, copy=False)


@dataclass(frozen=True)
class CtfParams:
    """One CTF in RELION's terms, the pack that travels from a particle's metadata to a grid:
    defocus U / V (Å, underfocus > 0) and astigmatism angle (degrees), voltage (kV), Cs (mm),
    amplitude contrast (fraction), phase shift (degrees), B-factor (Å², RELION's rlnCtfBfactor)
    and scale (rlnCtfScalefactor: multiplies the CTF where a job applies it, never inside
    ``on_grid``)."""

    defocus_u_a: float
    defocus_v_a: float
    defocus_angle_deg: float
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    phase_shift_deg: float = 0.0
    bfactor_a2: float = 0.0
    scale: float = 1.0

    #: the canonical particle-table column of each field (``io.schema``'s names)
    COLUMNS = {"bfactor_a2": "ctf_bfactor_a2", "scale": "ctf_scale"}

    @classmethod
    def from_columns(cls, values: Mapping[str, float]) -> CtfParams:
        """From canonical column names (``defocus_u_a``, ..., ``ctf_bfactor_a2``, ``ctf_scale``);
        the phase shift, B-factor and scale default to 0, 0 and 1 when absent."""
        fields = {}
        for name in cls.__dataclass_fields__:
            column = cls.COLUMNS.get(name, name)
            if column in values:
                fields[name] = float(values[column])
        return cls(**fields)

    def _ctf_kwargs(self) -> dict:
        """The CTF's own fields (a subclass may add others), less the scale: ``ctf_2d``'s keywords."""
        return {f: getattr(self, f) for f in CtfParams.__dataclass_fields__ if f != "scale"}

    def on_grid(self, ky_inv_a: ArrayLike, kx_inv_a: ArrayLike, *, power: int = 1, dtype: type = np.float64):
        """``ctf_2d`` of these parameters at (ky, kx) in 1/Å (without ``scale``)."""
        return ctf_2d(ky_inv_a, kx_inv_a, power=power, dtype=dtype, **self._ctf_kwargs())

    def on_box(
        self, box_px: int, pixel_size_a: float, *, power: int = 1, layout: str = "centred", dtype: type = np.float32
    ) -> NDArray:
        """``ctf_2d_on_box`` of these parameters (without ``scale``)."""
        return ctf_2d_on_box(box_px, pixel_size_a, power=power, layout=layout, dtype=dtype, **self._ctf_kwargs())


def local_oscillation_a(
    frequency_inv_a: ArrayLike, *, defocus_a: ArrayLike, voltage_kv: ArrayLike, cs_mm: ArrayLike
) -> NDArray[np.float64]:
    """R(k) = |lambda * df * k - Cs * lambda^3 * k^3| in Å.

    (1 / 2 pi) |d chi / d k|: the distance by which the CTF displaces the signal at frequency k
    (delocalisation; Rosenthal & Henderson 2003) and, equivalently, the CTF's local oscillation
    period in frequency is 1 / (2 R(k)), so a box of B p Å samples it without aliasing while
    B p >= 2 R(k). Broadcasts over all arguments.
    """
    k = np.asarray(frequency_inv_a, dtype=np.float64)
    lam = electron_wavelength_a(voltage_kv)
    cs_a = np.asarray(cs_mm, dtype=np.float64) * 1e7
    df = np.asarray(defocus_a, dtype=np.float64)
    return np.abs(lam * df * k - cs_a * lam**3 * k**3)


def max_local_oscillation_a(
    max_frequency_inv_a: ArrayLike, *, defocus_a: ArrayLike, voltage_kv: ArrayLike, cs_mm: ArrayLike
) -> NDArray[np.float64]:
    """max over 0 <= k <= K of R(k) (Å), closed form, broadcasting over all arguments.

    For underfocus, lambda df k - Cs lambda^3 k^3 rises to its peak at k* = sqrt(df / (3 Cs
    lambda^2)) and then falls (through zero, to negative values); so the maximum of its absolute
    value on [0, K] is the larger of |R(K)| and the peak when k* < K.
    """
    kmax = np.asarray(max_frequency_inv_a, dtype=np.float64)
    lam = electron_wavelength_a(voltage_kv)
    cs_a = np.asarray(cs_mm, dtype=np.float64) * 1e7
    df = np.asarray(defocus_a, dtype=np.float64)
    at_k = np.abs(lam * df * kmax - cs_a * lam**3 * kmax**3)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k_peak = np.sqrt(np.where((df > 0) & (cs_a > 0), df / (3.0 * cs_a * lam**2), np.inf))
        peak = np.where(k_peak < kmax, np.abs(lam * df * k_peak - cs_a * lam**3 * k_peak**3), 0.0)
    return np.maximum(at_k, np.nan_to_num(peak, nan=0.0, posinf=0.0))
