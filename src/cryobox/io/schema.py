"""The canonical particle columns: one table of names, units, RELION labels and cryoSPARC fields.

The readers and writers (``io.relion``, ``io.cryosparc``), validation and error messages all take
their labels from ``SCHEMA``. Columns marked ``direct`` map one to one (with ``cs_scale``:
canonical value = cryoSPARC value x scale); the others are converted by the readers (image names,
coordinates from fractions, shifts from pixels, poses from rotation vectors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cryobox.errors import InputError

__all__ = [
    "Column",
    "SCHEMA",
    "COLUMNS",
    "CTF_REQUIRED",
    "RANGES",
    "relion_label",
    "cryosparc_field",
    "schema_markdown",
]


@dataclass(frozen=True)
class Column:
    """One canonical column: its unit, where RELION keeps it (label and block), where cryoSPARC
    keeps it (field), and whether the value maps one to one (``direct``, times ``cs_scale``)."""

    name: str
    unit: str
    relion: str | None
    block: str | None  # "particles" or "optics" (RELION 3.1+); None when not a plain label
    cryosparc: str | None
    direct: bool = True
    cs_scale: float = 1.0
    meaning: str = ""


_DEG_PER_RAD = 180.0 / math.pi

SCHEMA: tuple[Column, ...] = (
    # per-particle CTF (RELION particles block; cryoSPARC ctf/*)
    Column("defocus_u_a", "Å", "rlnDefocusU", "particles", "ctf/df1_A", meaning="defocus U, underfocus positive"),
    Column("defocus_v_a", "Å", "rlnDefocusV", "particles", "ctf/df2_A", meaning="defocus V, underfocus positive"),
    Column(
        "defocus_angle_deg",
        "degree",
        "rlnDefocusAngle",
        "particles",
        "ctf/df_angle_rad",
        cs_scale=_DEG_PER_RAD,
        meaning="astigmatism angle",
    ),
    Column(
        "phase_shift_deg",
        "degree",
        "rlnPhaseShift",
        "particles",
        "ctf/phase_shift_rad",
        cs_scale=_DEG_PER_RAD,
        meaning="phase-plate shift",
    ),
    Column("ctf_bfactor_a2", "Å²", "rlnCtfBfactor", "particles", "ctf/bfactor", meaning="CTF envelope B-factor"),
    Column("ctf_scale", "", "rlnCtfScalefactor", "particles", "ctf/scale", meaning="CTF scale factor"),
    # where the particle is, and its pose
    Column("micrograph_name", "", "rlnMicrographName", "particles", "location/micrograph_path", direct=False),
    Column(
        "coord_x_px",
        "px",
        "rlnCoordinateX",
        "particles",
        "location/center_x_frac",
        direct=False,
        meaning="box centre; cryoSPARC: fraction x micrograph_shape[1]",
    ),
    Column(
        "coord_y_px",
        "px",
        "rlnCoordinateY",
        "particles",
        "location/center_y_frac",
        direct=False,
        meaning="box centre; cryoSPARC: fraction x micrograph_shape[0]",
    ),
    Column(
        "shift_x_a",
        "Å",
        "rlnOriginXAngst",
        "particles",
        "alignments3D/shift",
        direct=False,
        meaning="RELION 3.0: rlnOriginX x pixel size; cryoSPARC: px of alignments3D/psize_A",
    ),
    Column("shift_y_a", "Å", "rlnOriginYAngst", "particles", "alignments3D/shift", direct=False),
    Column(
        "angle_rot_deg",
        "degree",
        "rlnAngleRot",
        "particles",
        "alignments3D/pose",
        direct=False,
        meaning="RELION Euler angles; cryoSPARC: rotation vector, RELION's matrix = expmap(pose)",
    ),
    Column("angle_tilt_deg", "degree", "rlnAngleTilt", "particles", "alignments3D/pose", direct=False),
    Column("angle_psi_deg", "degree", "rlnAnglePsi", "particles", "alignments3D/pose", direct=False),
    Column(
        "optics_group",
        "",
        "rlnOpticsGroup",
        "particles",
        "ctf/exp_group_id",
        direct=False,
        meaning="cryoSPARC counts from 0",
    ),
    # optics (RELION 3.1+ optics block; RELION 3.0 and cryoSPARC per particle)
    Column("optics_group_name", "", "rlnOpticsGroupName", "optics", None),
    Column("voltage_kv", "kV", "rlnVoltage", "optics", "ctf/accel_kv"),
    Column("cs_mm", "mm", "rlnSphericalAberration", "optics", "ctf/cs_mm"),
    Column("amplitude_contrast", "fraction", "rlnAmplitudeContrast", "optics", "ctf/amp_contrast"),
    Column(
        "micrograph_pixel_size_a",
        "Å/px",
        "rlnMicrographOriginalPixelSize",
        "optics",
        "location/micrograph_psize_A",
        meaning="the movie's pixel size",
    ),
    Column(
        "box_px",
        "px",
        "rlnImageSize",
        "optics",
        "blob/shape",
        direct=False,
        meaning="RELION 3.0: from the stacks' MRC headers",
    ),
    Column("ctf_premultiplied", "", "rlnCtfDataAreCtfPremultiplied", "optics", None),
    Column(
        "pixel_size_a",
        "Å/px",
        "rlnImagePixelSize",
        None,
        "blob/psize_A",
        meaning="micrographs: rlnMicrographPixelSize; RELION 3.0: rlnDetectorPixelSize x 1e4 / rlnMagnification",
    ),
    # images and micrographs
    Column(
        "image_path",
        "",
        "rlnImageName",
        None,
        "blob/path",
        direct=False,
        meaning="``000001@stack.mrcs``; cryoSPARC's leading '>' stripped",
    ),
    Column("image_index", "", "rlnImageName", None, "blob/idx", direct=False, meaning="stored 0-based"),
    Column(
        "micrograph_height_px",
        "px",
        None,
        None,
        "location/micrograph_shape",
        direct=False,
        meaning="rows; RELION: from the micrographs' MRC headers",
    ),
    Column(
        "micrograph_width_px",
        "px",
        None,
        None,
        "location/micrograph_shape",
        direct=False,
        meaning="columns; RELION: from the micrographs' MRC headers",
    ),
)

COLUMNS = {c.name: c for c in SCHEMA}

#: the columns a particle's CTF cannot be computed without (phase shift, B-factor and scale have
#: defaults: 0, 0, 1)
CTF_REQUIRED = ("defocus_u_a", "defocus_v_a", "defocus_angle_deg", "voltage_kv", "cs_mm", "amplitude_contrast")

#: the values each numeric column may take: (lowest, highest, lowest allowed?, highest allowed?,
#: the rule in words); every value must also be finite. Checked by ``io.table.validate``.
RANGES: dict[str, tuple[float, float, bool, bool, str]] = {
    "defocus_u_a": (0.0, math.inf, True, False, "a positive number of Å (underfocus)"),
    "defocus_v_a": (0.0, math.inf, True, False, "a positive number of Å (underfocus)"),
    "defocus_angle_deg": (-math.inf, math.inf, False, False, "a finite angle in degrees"),
    "phase_shift_deg": (-math.inf, math.inf, False, False, "a finite angle in degrees"),
    "ctf_bfactor_a2": (-math.inf, math.inf, False, False, "a finite B-factor in Å²"),
    "ctf_scale": (0.0, math.inf, False, False, "a positive scale factor"),
    "voltage_kv": (
        20.0,
        1000.0,
        True,
        True,
        "an acceleration voltage of an electron microscope, 20-1000 kV (300 is usual; 0.3 would be MV)",
    ),
    "cs_mm": (0.0, 10.0, True, True, "a spherical aberration of 0-10 mm (2.7 is usual; 2700 would be µm)"),
    "amplitude_contrast": (0.0, 1.0, True, False, "a fraction in [0, 1)"),
    "pixel_size_a": (0.0, math.inf, False, False, "a positive pixel size in Å/px"),
    "micrograph_pixel_size_a": (0.0, math.inf, False, False, "a positive pixel size in Å/px"),
    "box_px": (2.0, math.inf, True, False, "a box of at least 2 px"),
    "image_index": (0.0, math.inf, True, False, "an image number from 000001@ (RELION) or 0 (cryoSPARC blob/idx)"),
    "coord_x_px": (-math.inf, math.inf, False, False, "a finite coordinate in px"),
    "coord_y_px": (-math.inf, math.inf, False, False, "a finite coordinate in px"),
    "shift_x_a": (-math.inf, math.inf, False, False, "a finite shift in Å"),
    "shift_y_a": (-math.inf, math.inf, False, False, "a finite shift in Å"),
    "angle_rot_deg": (-math.inf, math.inf, False, False, "a finite angle in degrees"),
    "angle_tilt_deg": (-math.inf, math.inf, False, False, "a finite angle in degrees"),
    "angle_psi_deg": (-math.inf, math.inf, False, False, "a finite angle in degrees"),
}


def check_value(name: str, value: float, *, what: str) -> float:
    """One value of a canonical column given another way (a flag, a setting): inside the column's
    range (``RANGES``), or ``ValueError`` naming ``what`` and the rule."""
    lo, hi, lo_ok, hi_ok, rule = RANGES[name]
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (v == lo and not lo_ok) or (v == hi and not hi_ok):
        raise ValueError(f"{what} is {value:g}; it must be {rule}")
    return v


def checked(name: str, value: float | None, param: str) -> float | None:
    """A value given as a parameter (``param``, shown as its flag by the CLI) inside the range of
    its canonical column (``io.schema.RANGES``); None stays None."""
    if value is None:
        return None
    try:
        return check_value(name, value, what=f"`{param}`")
    except ValueError as exc:
        raise InputError(f"{exc}.") from None


def checked_defocus(value: float | None, param: str) -> float | None:
    """A defocus in Å given as a parameter: 0 or more, and not a number of µm."""
    if value is None:
        return None
    checked("defocus_u_a", value, param)
    if 0 < value <= 20.0:
        raise InputError(
            f"`{param}` is {value:g} Å; defocus is given in Å (1.8 µm is 18000 Å): {value:g} looks like µm, give "
            f"{value * 1e4:g}."
        )
    return float(value)


def relion_label(name: str) -> str:
    """The RELION label of a canonical column (the name itself when RELION has none)."""
    c = COLUMNS.get(name)
    return c.relion if c is not None and c.relion else name


def cryosparc_field(name: str) -> str:
    """The cryoSPARC field of a canonical column ("no field" when cryoSPARC has none)."""
    c = COLUMNS.get(name)
    return c.cryosparc if c is not None and c.cryosparc else "no field"


def schema_markdown() -> str:
    """``SCHEMA`` as a Markdown table (docs/conventions.md holds this table; a test keeps them equal)."""
    rows = ["| canonical column | unit | RELION label (block) | cryoSPARC field | conversion |"]
    rows.append("|---|---|---|---|---|")
    for c in SCHEMA:
        relion = f"`{c.relion}`" + (f" ({c.block})" if c.block else "") if c.relion else "—"
        cs = f"`{c.cryosparc}`" if c.cryosparc else "—"
        if c.direct and c.cryosparc and c.cs_scale != 1.0:
            how = f"cryoSPARC × {c.cs_scale:.6g}"
        elif c.direct:
            how = "one to one"
        else:
            how = c.meaning or "converted"
        if c.direct and c.meaning:
            how += f"; {c.meaning}"
        rows.append(f"| `{c.name}` | {c.unit or '—'} | {relion} | {cs} | {how} |")
    return "\n".join(rows) + "\n"
