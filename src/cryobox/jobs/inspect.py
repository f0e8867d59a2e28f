"""`cryobox inspect`: what is in a particle or micrograph file, in numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cryobox.core.stats import summarize_values
from cryobox.io.particles import ParticleTable

__all__ = ["InspectResult", "summarize_values", "inspect_table"]


def _single_or_list(values: np.ndarray):
    """One value when all agree, else the sorted distinct values (None when absent)."""
    v = np.asarray(values)
    if v.size == 0:
        return None
    uniq = np.unique(v[~np.isnan(v)] if v.dtype.kind == "f" else v)
    if uniq.size == 0:
        return None
    conv = [x.item() if hasattr(x, "item") else x for x in uniq]
    return conv[0] if len(conv) == 1 else conv


@dataclass
class InspectResult:
    """Summary of one file; ``to_dict`` gives the ``--json`` form."""

    path: str
    kind: str
    source_format: str
    n_particles: int | None
    n_micrographs: int | None
    n_optics_groups: int
    pixel_size_a: float | list[float] | None
    box_px: int | list[int] | None
    voltage_kv: float | list[float] | None
    cs_mm: float | list[float] | None
    amplitude_contrast: float | list[float] | None
    ctf_premultiplied: bool | list[bool] | None
    defocus_u_a: dict[str, float] | None
    defocus_v_a: dict[str, float] | None
    defocus_mean_a: dict[str, float] | None
    astigmatism_a: dict[str, float] | None
    particles_per_micrograph: dict[str, float] | None
    has_coordinates: bool
    has_micrograph_shape: bool
    has_poses: bool
    optics_groups: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_table(table: ParticleTable) -> InspectResult:
    """Summarise a canonical table (no I/O)."""
    d = table.data
    n = len(d)

    def col(name):
        return d[name].to_numpy() if name in d else np.array([])

    du = col("defocus_u_a").astype(np.float64) if "defocus_u_a" in d else None
    dv = col("defocus_v_a").astype(np.float64) if "defocus_v_a" in d else None
    n_mics = int(d["micrograph_name"].nunique()) if "micrograph_name" in d else None
    per_mic = None
    if table.kind == "particles" and "micrograph_name" in d and n:
        per_mic = summarize_values(d.groupby("micrograph_name", sort=False).size().to_numpy())
    groups = []
    if "optics_group" in d and n:
        for g, sub in d.groupby("optics_group", sort=True):
            row = {"optics_group": int(g), "n": int(len(sub))}
            for c in ("optics_group_name", "pixel_size_a", "box_px", "voltage_kv", "cs_mm", "amplitude_contrast"):
                if c in sub:
                    v = sub[c].iloc[0]
                    row[c] = v.item() if hasattr(v, "item") else v
            groups.append(row)
    return InspectResult(
        path=str(table.path) if table.path else "",
        kind=table.kind,
        source_format=table.source_format,
        n_particles=n if table.kind == "particles" else None,
        n_micrographs=n if table.kind == "micrographs" else n_mics,
        n_optics_groups=len(groups) if groups else (0 if n == 0 else 1),
        pixel_size_a=_single_or_list(col("pixel_size_a").astype(np.float64)) if "pixel_size_a" in d else None,
        box_px=_single_or_list(col("box_px").astype(np.int64)) if "box_px" in d else None,
        voltage_kv=_single_or_list(col("voltage_kv").astype(np.float64)) if "voltage_kv" in d else None,
        cs_mm=_single_or_list(col("cs_mm").astype(np.float64)) if "cs_mm" in d else None,
        amplitude_contrast=_single_or_list(col("amplitude_contrast").astype(np.float64))
        if "amplitude_contrast" in d
        else None,
        ctf_premultiplied=_single_or_list(col("ctf_premultiplied").astype(bool)) if "ctf_premultiplied" in d else None,
        defocus_u_a=summarize_values(du) if du is not None else None,
        defocus_v_a=summarize_values(dv) if dv is not None else None,
        defocus_mean_a=summarize_values(0.5 * (du + dv)) if du is not None and dv is not None else None,
        astigmatism_a=summarize_values(np.abs(du - dv)) if du is not None and dv is not None else None,
        particles_per_micrograph=per_mic,
        has_coordinates="coord_x_px" in d,
        has_micrograph_shape="micrograph_width_px" in d,
        has_poses="angle_rot_deg" in d or any(f in table.source_fields for f in ("alignments3D/pose", "rlnAngleRot")),
        optics_groups=groups,
    )
