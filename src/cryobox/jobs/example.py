"""The bundled example: a particle set like the motivating dataset, generated deterministically.

130,675 particles of a ~220 Å glycoprotein on 871 micrographs of 5760 x 4092 px (K3), 1.06 Å/px,
300 kV, Cs 2.7 mm, amplitude contrast 0.1, micrograph defocus 1.8-3.0 µm with 50-600 Å of
astigmatism and per-particle refinement scatter, picked up to 20 px from the edges, extracted at
576 px. The same seed gives the same table on every machine, so the package ships the generator
instead of a multi-megabyte binary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryobox.io.particles import ParticleTable

__all__ = ["EXAMPLE", "example_particles"]

EXAMPLE = {
    "n_particles": 130_675,
    "n_micrographs": 871,
    "pixel_size_a": 1.06,
    "voltage_kv": 300.0,
    "cs_mm": 2.7,
    "amplitude_contrast": 0.1,
    "defocus_min_a": 18_000.0,
    "defocus_max_a": 30_000.0,
    "micrograph_width_px": 5760,
    "micrograph_height_px": 4092,
    "box_px": 576,
    "diameter_a": 220.0,
    "resolution_a": 3.7,
    "seed": 20_260_131,
}


def example_particles(
    *,
    n_particles: int = EXAMPLE["n_particles"],
    n_micrographs: int = EXAMPLE["n_micrographs"],
    seed: int = EXAMPLE["seed"],
) -> ParticleTable:
    """The bundled example particle table (canonical columns), same seed -> same values."""
    e = EXAMPLE
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_particles, np.full(n_micrographs, 1.0 / n_micrographs))
    mic = np.repeat(np.arange(n_micrographs), counts)
    index_in_mic = np.concatenate([np.arange(c) for c in counts]) if n_particles else np.zeros(0, int)

    margin = 150.0  # keep the micrograph mean inside the range after the per-particle scatter
    mic_mean = rng.uniform(e["defocus_min_a"] + margin, e["defocus_max_a"] - margin, n_micrographs)
    mic_astig = rng.uniform(50.0, 600.0, n_micrographs)
    mic_angle = rng.uniform(-180.0, 180.0, n_micrographs)
    mean = np.clip(mic_mean[mic] + rng.normal(0.0, 60.0, n_particles), e["defocus_min_a"], e["defocus_max_a"])
    half_astig = 0.5 * mic_astig[mic]

    w, h = e["micrograph_width_px"], e["micrograph_height_px"]
    pick_margin = 20.0
    x = np.round(rng.uniform(pick_margin, w - pick_margin, n_particles), 1)
    y = np.round(rng.uniform(pick_margin, h - pick_margin, n_particles), 1)
    mic_names = np.array(
        [f"MotionCorr/job002/Movies/FoilHole_{1000 + i}_Data.mrc" for i in range(n_micrographs)], dtype=object
    )
    stack_names = np.array(
        [f"Extract/job012/Movies/FoilHole_{1000 + i}_Data.mrcs" for i in range(n_micrographs)], dtype=object
    )
    data = pd.DataFrame(
        {
            "defocus_u_a": np.round(mean + half_astig, 2),
            "defocus_v_a": np.round(mean - half_astig, 2),
            "defocus_angle_deg": np.round(mic_angle[mic], 2),
            "phase_shift_deg": 0.0,
            "ctf_bfactor_a2": 0.0,
            "ctf_scale": 1.0,
            "voltage_kv": e["voltage_kv"],
            "cs_mm": e["cs_mm"],
            "amplitude_contrast": e["amplitude_contrast"],
            "pixel_size_a": e["pixel_size_a"],
            "micrograph_pixel_size_a": e["pixel_size_a"],
            "box_px": e["box_px"],
            "optics_group": 1,
            "optics_group_name": "opticsGroup1",
            "image_path": stack_names[mic],
            "image_index": index_in_mic.astype(np.int64),
            "micrograph_name": mic_names[mic],
            "coord_x_px": x,
            "coord_y_px": y,
            "micrograph_width_px": float(w),
            "micrograph_height_px": float(h),
        }
    )
    return ParticleTable(data, kind="particles", source_format="cryobox example", path=None)
