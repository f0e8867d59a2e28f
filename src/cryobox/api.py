"""The public Python API of cryobox: the functions a user calls from Python, with every unit stated.

``import cryobox`` gives these names (loaded when first used, so the command line starts fast).
Everything else in the package is importable but not promised: it may change between versions.
Each function is a thin, stable layer over the module that does the work (named under "See Also").
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryobox.api_maps import directional_resolution, fourier_rescale, masked_fsc, reconstruct, window
from cryobox.api_results import DirectionalResolution, ResolutionComparison, SamplingCompensation
from cryobox.core import extract as ex
from cryobox.core.boxsize import BoxAdvice
from cryobox.core.boxsize import advise_box as _advise
from cryobox.core.diagnose import sampling_compensation_factor, viewing_directions
from cryobox.core.fsc import FscResult
from cryobox.core.optics import ctf_2d_on_box
from cryobox.core.stats import compare_resolutions as _compare
from cryobox.io.particles import read_particles as _read
from cryobox.io.particles import write_particles as _write
from cryobox.io.table import ParticleTable
from cryobox.report.text import advice_sentences

__all__ = [
    "read_particles",
    "write_particles",
    "advise_box",
    "ctf_on_box",
    "masked_fsc",
    "fourier_rescale",
    "window",
    "reconstruct",
    "extract_particles",
    "compare_resolutions",
    "directional_resolution",
    "sampling_compensation",
    "ParticleTable",
    "BoxAdvice",
    "FscResult",
    "ResolutionComparison",
    "SamplingCompensation",
    "DirectionalResolution",
]


def read_particles(path: str | os.PathLike):
    """Read a RELION ``.star`` or cryoSPARC ``.cs`` particle (or micrograph) file.

    Parameters
    ----------
    path : str or path-like
        A RELION 3.0, 3.1, 4 or 5 STAR file or a cryoSPARC ``.cs`` file (format from the
        suffix, else from the content).

    Returns
    -------
    cryobox.io.particles.ParticleTable
        One row per particle in canonical columns with their unit in the name: ``defocus_u_a``
        and ``defocus_v_a`` (Å, underfocus positive), ``defocus_angle_deg`` (degrees),
        ``pixel_size_a`` (Å/px), ``box_px`` (px), ``voltage_kv`` (kV), ``cs_mm`` (mm),
        ``amplitude_contrast`` (fraction), ``shift_x_a`` / ``shift_y_a`` (Å),
        ``coord_x_px`` / ``coord_y_px`` (micrograph px), ``angle_rot_deg`` ... (degrees, RELION's
        Euler convention); every other column is carried through under its own name.

    Raises
    ------
    cryobox.errors.InputError
        One sentence naming the file, the field and the fix, for a file that cannot be read.

    See Also
    --------
    cryobox.io.particles.read_particles

    Examples
    --------
    >>> import cryobox, tempfile, pathlib
    >>> from cryobox.jobs.example import example_particles
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cryobox.write_particles(folder / "p.star", example_particles(n_particles=100, n_micrographs=2))
    >>> table = cryobox.read_particles(folder / "p.star")
    >>> len(table), round(float(table.data["pixel_size_a"].iloc[0]), 2)
    (100, 1.06)
    """
    return _read(path)


def write_particles(path: str | os.PathLike, table) -> Path:
    """Write a particle table as RELION 3.1+ STAR (``.star``) or cryoSPARC ``.cs``, atomically.

    Parameters
    ----------
    path : str or path-like
        The file to write; its suffix chooses the format (``.star`` or ``.cs``).
    table : cryobox.io.particles.ParticleTable
        Canonical columns (units as in ``read_particles``); angles in degrees and shifts in Å
        are converted to cryoSPARC's radians and pixels for ``.cs``.

    Returns
    -------
    pathlib.Path
        The file written (mode 0666 less the user's umask).

    Examples
    --------
    >>> import cryobox, tempfile, pathlib
    >>> from cryobox.jobs.example import example_particles
    >>> table = example_particles(n_particles=10, n_micrographs=1)
    >>> out = cryobox.write_particles(pathlib.Path(tempfile.mkdtemp()) / "p.cs", table)
    >>> out.suffix
    '.cs'
    """
    return _write(path, table)


def advise_box(
    *,
    diameter_a: float,
    resolution_a: float,
    pixel_size_a: float,
    defocus_u_a: ArrayLike,
    defocus_v_a: ArrayLike,
    voltage_kv: ArrayLike,
    cs_mm: ArrayLike,
    coord_x_px: ArrayLike | None = None,
    coord_y_px: ArrayLike | None = None,
    micrograph_width_px: ArrayLike | None = None,
    micrograph_height_px: ArrayLike | None = None,
    user_boxes_px: tuple[int, ...] = (),
):
    """Candidate boxes for a particle set, and the boxes to refine and to extract in.

    The CTF aliases in a box of B px at pixel size p where B p < 2 R(k), with
    R(k) = |λ Δf k − Cs λ³ k³| (Å) the CTF's local oscillation; the delocalisation box is
    D + 2 max R(k) up to 1/d (Rosenthal & Henderson 2003, J. Mol. Biol. 333:721). Per particle
    the larger of defocus U and V is used.

    Parameters
    ----------
    diameter_a : float
        The particle's longest dimension D (Å).
    resolution_a : float
        The resolution aimed for, d (Å); must be coarser than Nyquist (2 p).
    pixel_size_a : float
        Pixel size of the particle images (Å/px).
    defocus_u_a, defocus_v_a : array_like
        Per-particle defocus (Å, underfocus positive); scalars broadcast.
    voltage_kv : array_like
        Acceleration voltage (kV), per particle or one value.
    cs_mm : array_like
        Spherical aberration (mm), per particle or one value.
    coord_x_px, coord_y_px : array_like, optional
        Particle centres (micrograph px); with the micrograph sizes they give edge losses.
    micrograph_width_px, micrograph_height_px : array_like, optional
        Micrograph sizes (px).
    user_boxes_px : tuple of int, optional
        Boxes (px) that are always rows of the table, marked ``user_box``.

    Returns
    -------
    cryobox.core.boxsize.BoxAdvice
        ``recommended_refine_box_px`` and ``recommended_extract_box_px`` (px), ``premultiply``,
        the Rosenthal & Henderson and alias-free boxes (Å), and ``candidates``: per box the
        fractions of particles alias-free (CTF and CTF²) and whose delocalised signal fits, the
        edge-loss fraction, the relative cost (B², B³) and cryoSPARC's default window in Å; and
        ``reasons`` / ``warnings``, the recommendation in words.

    Examples
    --------
    >>> import cryobox
    >>> a = cryobox.advise_box(diameter_a=220, resolution_a=3.7, pixel_size_a=1.06, defocus_u_a=[18000, 30000],
    ...                        defocus_v_a=[17500, 29500], voltage_kv=300, cs_mm=2.7, user_boxes_px=(280,))
    >>> a.recommended_refine_box_px, a.recommended_extract_box_px
    (320, 504)
    """
    advice = _advise(
        diameter_a=diameter_a,
        resolution_a=resolution_a,
        pixel_size_a=pixel_size_a,
        defocus_u_a=defocus_u_a,
        defocus_v_a=defocus_v_a,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        coord_x_px=coord_x_px,
        coord_y_px=coord_y_px,
        micrograph_width_px=micrograph_width_px,
        micrograph_height_px=micrograph_height_px,
        user_boxes_px=user_boxes_px,
    )
    reasons, warnings = advice_sentences(advice)
    return replace(advice, reasons=reasons, warnings=warnings)


def ctf_on_box(
    box_px: int,
    pixel_size_a: float,
    *,
    defocus_u_a: float,
    defocus_v_a: float,
    defocus_angle_deg: float = 0.0,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift_deg: float = 0.0,
    bfactor_a2: float = 0.0,
    power: int = 1,
    layout: str = "centred",
) -> NDArray:
    """Sample the CTF on a box's own Fourier grid (spacing 1 / (N p)), so aliasing shows.

    RELION 3.1's convention (checked against ``relion_ctf_toolbox --simulate``):
    CTF(k) = sin(π λ Δf(θ) k² − (π/2) Cs λ³ k⁴ + arctan(Q0 / sqrt(1 − Q0²)) + φ), times
    exp(−B k² / 4).

    Parameters
    ----------
    box_px : int
        Box size N (px), even or odd.
    pixel_size_a : float
        Pixel size p (Å/px).
    defocus_u_a, defocus_v_a : float
        Defocus along the astigmatism's major and minor axes (Å, underfocus positive).
    defocus_angle_deg : float, optional
        Astigmatism angle (degrees, RELION's rlnDefocusAngle).
    voltage_kv : float
        Acceleration voltage (kV).
    cs_mm : float
        Spherical aberration (mm).
    amplitude_contrast : float
        Amplitude contrast Q0 (fraction, 0 to 1).
    phase_shift_deg : float, optional
        Phase-plate shift φ (degrees).
    bfactor_a2 : float, optional
        Envelope B-factor (Å²).
    power : int, optional
        1 for the CTF, 2 for CTF² (what premultiplied data carry).
    layout : {"centred", "rfft"}, optional
        ``"centred"``: (N, N), origin at (N//2, N//2); ``"rfft"``: (N, N//2 + 1), ready to
        multiply ``scipy.fft.rfft2`` of an image.

    Returns
    -------
    numpy.ndarray
        The CTF (float32, unitless).

    Examples
    --------
    >>> import cryobox
    >>> c = cryobox.ctf_on_box(64, 1.06, defocus_u_a=20000, defocus_v_a=20000, voltage_kv=300, cs_mm=2.7,
    ...                        amplitude_contrast=0.1)
    >>> c.shape, round(float(c[32, 32]), 3)
    ((64, 64), 0.1)
    """
    return ctf_2d_on_box(
        box_px,
        pixel_size_a,
        defocus_u_a=defocus_u_a,
        defocus_v_a=defocus_v_a,
        defocus_angle_deg=defocus_angle_deg,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_shift_deg=phase_shift_deg,
        bfactor_a2=bfactor_a2,
        power=power,
        layout=layout,
    )


def extract_particles(
    micrograph: ArrayLike,
    x_px: ArrayLike,
    y_px: ArrayLike,
    *,
    box_px: int,
    normalise: bool = True,
    bg_radius_px: float | None = None,
    invert: bool = False,
) -> NDArray:
    """Cut particles from a micrograph as ``relion_preprocess --extract`` does.

    Boxes are centred on int(x), int(y) at pixel N//2; pixels outside the micrograph repeat the
    nearest edge pixel (RELION's behaviour); the background outside ``bg_radius_px`` is fitted
    by a plane and the image scaled to zero mean and unit SD there (``--norm``); ``invert``
    flips the contrast (particles dark on a micrograph become white).

    Parameters
    ----------
    micrograph : array_like
        (H, W) micrograph.
    x_px, y_px : array_like
        Particle centres (micrograph px, RELION's rlnCoordinateX / Y).
    box_px : int
        Box size N (px).
    normalise : bool, optional
        Background normalisation as ``relion_preprocess --norm``.
    bg_radius_px : float, optional
        Background radius (px); default int(0.375 N), RELION's.
    invert : bool, optional
        Invert the contrast.

    Returns
    -------
    numpy.ndarray
        (n, N, N) float32 particle images.

    Examples
    --------
    >>> import numpy as np, cryobox
    >>> mic = np.random.default_rng(0).standard_normal((200, 300)).astype(np.float32)
    >>> cryobox.extract_particles(mic, [150.0, 10.0], [100.0, 190.0], box_px=64).shape
    (2, 64, 64)
    """
    stack = ex.window_particles(
        np.asarray(micrograph, dtype=np.float32), np.asarray(x_px), np.asarray(y_px), int(box_px)
    )
    if normalise:
        radius = float(bg_radius_px) if bg_radius_px is not None else ex.default_bg_radius_px(box_px)
        return ex.normalise_background(stack, radius, invert=invert, overwrite=True)
    return -stack if invert else stack


def compare_resolutions(
    resolutions_a: ArrayLike, other_resolutions_a: ArrayLike, *, shell_width_inv_a: float
) -> ResolutionComparison:
    """Test whether one variant's resolution differs from another's beyond the run-to-run spread.

    Welch's two-sided t-test on the repeats' resolutions as spatial frequency (1/Å), with the
    difference in Å, its 95% interval and p; two one-sided tests with a margin of one Fourier shell
    for equivalence; and the repeats per variant that would detect the difference (and one shell)
    with 80% power.

    Parameters
    ----------
    resolutions_a, other_resolutions_a : array_like
        The repeats' resolutions of the two variants (Å).
    shell_width_inv_a : float
        One Fourier shell, 1 / (box px × pixel size Å), in 1/Å.

    Returns
    -------
    ResolutionComparison
        ``verdict`` ("finer", "coarser" — of the first relative to the second —, "equivalent" or
        "undecided"), ``difference_a`` (Å), ``ci_a`` (Å), ``p``, ``repeats_needed``,
        ``repeats_needed_one_shell``, and every number of the tests in ``details``.

    Examples
    --------
    >>> import cryobox
    >>> c = cryobox.compare_resolutions([3.7, 3.6, 3.8], [4.1, 4.0, 4.2], shell_width_inv_a=1 / (576 * 1.06))
    >>> c.verdict, round(c.difference_a, 2)
    ('finer', -0.4)
    """
    return ResolutionComparison.from_dict(
        _compare(resolutions_a, other_resolutions_a, shell_width_inv_a=shell_width_inv_a)
    )


def sampling_compensation(rot_deg: ArrayLike, tilt_deg: ArrayLike) -> SamplingCompensation:
    """SCF and SCF* of a set of particle orientations (Baldwin & Lyumkis 2020), as ``cryobox diagnose``.

    Parameters
    ----------
    rot_deg, tilt_deg : array_like
        RELION's first two Euler angles (degrees) of each particle (psi only spins the image); from a
        cryoSPARC ``.cs``, ``cryobox.read_particles`` gives them as ``angle_rot_deg`` and
        ``angle_tilt_deg``. At least 100 particles.

    Returns
    -------
    SamplingCompensation
        ``scf``, ``scf_star`` (what cryoSPARC reports; below 0.81 it calls the views anisotropic),
        ``unsampled_fraction`` (of Fourier directions no view samples), ``fourier_radius`` (the
        shell, in voxels, the sampling was counted on) and ``n_views_used`` (at most 10,000).

    See Also
    --------
    cryobox.core.diagnose.sampling_compensation_factor

    Examples
    --------
    >>> import numpy as np, cryobox
    >>> rng = np.random.default_rng(0)
    >>> rot, tilt = rng.uniform(-180, 180, 20000), np.degrees(np.arccos(rng.uniform(-1, 1, 20000)))
    >>> round(cryobox.sampling_compensation(rot, tilt).scf_star, 1)
    1.0
    """
    out = sampling_compensation_factor(viewing_directions(rot_deg, tilt_deg))
    return SamplingCompensation(
        scf=float(out["scf"]),
        scf_star=float(out["scf_star"]),
        unsampled_fraction=float(out["unsampled_fraction"]),
        fourier_radius=float(out["fourier_radius"]),
        n_views_used=int(out["n_views_used"]),
    )
