"""`cryobox simulate`: micrographs or particle stacks with known ground truth.

The CTF is applied to whole micrographs (so delocalised signal really leaves a particle's
neighbourhood), with a B-factor envelope, an ice-thickness ramp and Gaussian noise at a chosen
SNR (variance of the CTF-modulated particle signal over the noise variance, measured inside the
particles' discs). Outputs: micrographs (MRC), micrographs.star with CTF, one coordinate STAR per
micrograph (the layout relion_preprocess takes), particles.star and particles.cs with the true
poses, shifts and CTF, and the true map. Same seed, same bytes. One micrograph at a time: memory
does not grow with the number of micrographs.

Truth conventions: a particle whose centre is at (xc, yc) px gets the coordinate (int(xc),
int(yc)) (RELION truncates) and the shift rlnOriginXAngst = (int(xc) - xc) * p (RELION: the
particle centre is the coordinate minus the origin).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft as sfft

from cryobox.core.boxsize import next_fft_friendly_size
from cryobox.core.extract import ctf_grids
from cryobox.core.fourier import fft_workers, resample_to, window
from cryobox.core.optics import ctf_2d
from cryobox.core.simulate import (
    Projector,
    apply_ctf_to_images,
    default_particle_map,
    random_relion_angles,
    shift_images,
)
from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path
from cryobox.io.coords import write_coordinates
from cryobox.io.matching import set_half_sets
from cryobox.io.model import model_potential
from cryobox.io.mrc import read_map, stamp_header, write_mrc
from cryobox.io.particles import ParticleTable, read_particles, write_cs, write_star
from cryobox.io.paths import project_relative
from cryobox.jobs.outputs import OutputFolder, refuse_star_unsafe_path
from cryobox.jobs.records import check_memory, digest

__all__ = ["SimulationSettings", "simulate_micrographs", "simulate_stack", "load_density", "poses_from_particles"]


@dataclass(frozen=True)
class SimulationSettings:
    """The microscope and the sample of a simulation (Å, kV, mm, Å² as named).

    Per micrograph the defocus is drawn uniformly in [``defocus_min_a``, ``defocus_max_a``] with up
    to ``astigmatism_max_a`` astigmatism; ``bfactor_a2`` is the CTF envelope; ``snr`` is the
    variance of the CTF-modulated particle signal over the noise variance inside the particles;
    ``crowding`` lets neighbours come closer than 0.9 D; ``ice_ramp`` is the background's change
    across the micrograph in units of the noise SD. Same ``seed``, same bytes.
    """

    pixel_size_a: float = 1.06
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    defocus_min_a: float = 18000.0
    defocus_max_a: float = 30000.0
    astigmatism_max_a: float = 500.0
    bfactor_a2: float = 50.0
    snr: float = 0.05
    seed: int = 0
    crowding: bool = False
    ice_ramp: float = 0.5  # background change across the micrograph, in units of the noise sd


def poses_from_particles(path, *, pixel_size_a: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Orientations (n, 3) (RELION Euler angles, degrees) and image displacements (n, 2) (px at
    ``pixel_size_a``) from any particle file with poses; displacements None when it has no shifts.
    RELION's origin is minus the particle's displacement in the image."""

    t = read_particles(path)
    t.require("angle_rot_deg", "angle_tilt_deg", "angle_psi_deg", purpose="simulating with given orientations")
    d = t.data
    angles = d[["angle_rot_deg", "angle_tilt_deg", "angle_psi_deg"]].to_numpy(float)
    shifts = -d[["shift_x_a", "shift_y_a"]].to_numpy(float) / pixel_size_a if "shift_x_a" in d else None
    return angles, shifts


def load_density(
    *, map_path: Path | None, model_path: Path | None, pixel_size_a: float, box_px: int | None
) -> tuple[np.ndarray, str]:
    """The density to image: an MRC map (resampled to the pixel size), an atomic model (electron
    scattering potential via gemmi), or the built-in particle."""

    if map_path is not None and model_path is not None:
        raise InputError("give `map_path` or `model_path`, not both.")
    if box_px is not None and box_px < 2:
        raise InputError(f"`box_px` must be at least 2 px, got {box_px}.")
    if box_px is not None:
        check_memory(16.0 * 4 * (2.0 * box_px) ** 3, what=f"a {box_px} px particle map and its projector")
    if map_path is not None:
        vol, pixel_a = read_map(map_path, what="map", ndim=3)
        if abs(pixel_a - pixel_size_a) > 1e-4 * pixel_a:
            vol, _ = resample_to(vol, pixel_a, pixel_size_a)
        if box_px is not None and vol.shape[-1] != box_px:
            vol = window(vol, box_px)
        return vol.astype(np.float32), f"map {map_path}"
    if model_path is not None:
        return model_potential(model_path, pixel_size_a=pixel_size_a, box_px=box_px), f"model {model_path}"
    box = box_px or _default_box(pixel_size_a)
    return default_particle_map(box, pixel_size_a), "built-in two-domain particle (~220 Å)"


def _default_box(pixel_size_a: float) -> int:

    return next_fft_friendly_size(1.3 * 220.0 / pixel_size_a)


def _micrograph_ctf(rng, s: SimulationSettings) -> dict:
    mean = rng.uniform(s.defocus_min_a, s.defocus_max_a)
    half = 0.5 * rng.uniform(0.0, s.astigmatism_max_a)
    return {"defocus_u_a": mean + half, "defocus_v_a": mean - half, "defocus_angle_deg": rng.uniform(-180.0, 180.0)}


def _positions(rng, n: int, w: int, h: int, min_dist_px: float) -> np.ndarray:
    """Up to ``n`` random centres at least ``min_dist_px`` apart (rejection sampling)."""
    pts = np.empty((n, 2))
    k = tries = 0
    while k < n and tries < 200 * n:
        tries += 1
        p = rng.uniform([0.0, 0.0], [w, h])
        if k == 0 or np.min(np.hypot(pts[:k, 0] - p[0], pts[:k, 1] - p[1])) >= min_dist_px:
            pts[k] = p
            k += 1
    return pts[:k]


def _simulate_micrographs(
    out: Path,
    density: np.ndarray,
    *,
    n_micrographs: int,
    size_px: tuple[int, int],
    per_micrograph: int,
    settings: SimulationSettings,
    diameter_a: float = 220.0,
    log=None,
) -> dict:
    """Write simulated micrographs and their metadata to ``out``; returns a summary."""
    t0 = time.perf_counter()
    s = settings
    w, h = size_px
    n = density.shape[-1]
    if n_micrographs < 1 or per_micrograph < 1:
        raise InputError(
            f"`n_micrographs` and `per_micrograph` must be at least 1, got {n_micrographs} and {per_micrograph}."
        )
    if n > min(w, h):
        raise InputError(f"the particle box ({n} px) is larger than the micrographs ({w} x {h} px, `size_px`).")
    # a micrograph, its noise and its Fourier transform in float64 at once (and the CTF grid)
    check_memory(6 * 8.0 * w * h, what=f"one {w} x {h} px micrograph (`size_px`)")
    out = Path(out)
    refuse_star_unsafe_path(out, what="output folder")
    (out / "Micrographs").mkdir(parents=True, exist_ok=True)
    proj = Projector(density)
    d_px = diameter_a / s.pixel_size_a
    min_dist = (0.5 if s.crowding else 0.9) * d_px
    mic_rows, particle_frames = [], []
    for k in range(n_micrographs):
        rng = np.random.default_rng([s.seed, k])
        name = f"Micrographs/mic{k:04d}.mrc"
        ctf = _micrograph_ctf(rng, s)
        centres = _positions(rng, per_micrograph, w, h, min_dist)
        angles = random_relion_angles(len(centres), rng)
        xi, yi = np.trunc(centres[:, 0]), np.trunc(centres[:, 1])
        images = shift_images(proj.project(angles), centres[:, 0] - xi, centres[:, 1] - yi)
        mic = _micrograph(images, xi.astype(int), yi.astype(int), (h, w), ctf, 0.5 * d_px, s, rng)
        write_mrc(out / name, mic, pixel_size_a=s.pixel_size_a)
        write_coordinates(out / "Micrographs" / f"mic{k:04d}_pick.star", xi, yi)
        mic_rows.append({"micrograph_name": name, **ctf})
        frame = pd.DataFrame({"micrograph_name": name, "coord_x_px": xi, "coord_y_px": yi, **ctf})
        frame["shift_x_a"], frame["shift_y_a"] = (
            (xi - centres[:, 0]) * s.pixel_size_a,
            (yi - centres[:, 1]) * s.pixel_size_a,
        )
        frame["angle_rot_deg"], frame["angle_tilt_deg"], frame["angle_psi_deg"] = angles.T
        particle_frames.append(frame)
        log and log(f"micrograph {k + 1}/{n_micrographs}: {len(centres)} particles")
    write_star(out / "micrographs.star", ParticleTable(_with_optics(pd.DataFrame(mic_rows), s), kind="micrographs"))
    data = _with_optics(pd.concat(particle_frames, ignore_index=True), s)
    data["box_px"], data["micrograph_width_px"], data["micrograph_height_px"] = n, float(w), float(h)
    table = ParticleTable(data, kind="particles", source_format="cryobox simulate")
    write_star(out / "particles.star", table)
    write_cs(out / "particles.cs", table)
    write_mrc(out / "true_map.mrc", density, pixel_size_a=s.pixel_size_a)
    asked = n_micrographs * per_micrograph
    notes = []
    if len(data) < asked:
        notes.append(
            f"placed {len(data):,} of the {asked:,} particles asked for: the micrographs have no room for more at "
            f"{min_dist * s.pixel_size_a:.0f} Å apart (use bigger or more micrographs, or crowding)"
        )
    return {
        "n_micrographs": n_micrographs,
        "n_particles": len(data),
        "n_particles_asked": asked,
        "notes": notes,
        "box_px": n,
        "pixel_size_a": s.pixel_size_a,
        "micrographs_star": str(out / "micrographs.star"),
        "particles_star": str(out / "particles.star"),
        "true_map": str(out / "true_map.mrc"),
        "wall_s": time.perf_counter() - t0,
    }


def _with_optics(frame: pd.DataFrame, s: SimulationSettings) -> pd.DataFrame:
    """The columns every simulated micrograph and particle shares (one optics group)."""
    frame["phase_shift_deg"], frame["ctf_bfactor_a2"], frame["ctf_scale"] = 0.0, s.bfactor_a2, 1.0
    frame["voltage_kv"], frame["cs_mm"], frame["amplitude_contrast"] = s.voltage_kv, s.cs_mm, s.amplitude_contrast
    frame["pixel_size_a"], frame["micrograph_pixel_size_a"], frame["optics_group"] = s.pixel_size_a, s.pixel_size_a, 1
    return frame


def _micrograph(
    images: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    shape: tuple[int, int],
    ctf: dict,
    radius_px: float,
    s: SimulationSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """One micrograph: the projections pasted with their centres at (``x0``, ``y0``), the
    micrograph's CTF applied, noise at the settings' SNR (the signal's variance measured inside
    discs of ``radius_px`` around the particles) and a linear ice ramp."""
    h, w = shape
    n = images.shape[-1]
    clean = np.zeros((h, w), np.float32)
    signal_mask = np.zeros((h, w), bool)
    yy, xx = np.mgrid[:n, :n]
    disc = (yy - n // 2) ** 2 + (xx - n // 2) ** 2 <= radius_px**2
    for img, xa, ya in zip(images, x0 - n // 2, y0 - n // 2):
        ys, xs = slice(max(0, ya), min(h, ya + n)), slice(max(0, xa), min(w, xa + n))
        iy, ix = slice(ys.start - ya, ys.stop - ya), slice(xs.start - xa, xs.stop - xa)
        clean[ys, xs] += img[iy, ix]
        signal_mask[ys, xs] |= disc[iy, ix]
    ky = np.fft.fftfreq(h, d=s.pixel_size_a).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(w, d=s.pixel_size_a).astype(np.float32)[None, :]
    grid = ctf_2d(
        ky,
        kx,
        voltage_kv=s.voltage_kv,
        cs_mm=s.cs_mm,
        amplitude_contrast=s.amplitude_contrast,
        bfactor_a2=s.bfactor_a2,
        dtype=np.float32,
        **ctf,
    )
    workers = fft_workers()
    signal = sfft.irfft2(sfft.rfft2(clean, workers=workers) * grid, s=(h, w), workers=workers).astype(np.float32)
    sig_var = float(signal[signal_mask].var()) if signal_mask.any() else float(signal.var())
    noise_sd = np.sqrt(sig_var / s.snr) if s.snr > 0 else 0.0
    # as a camera records it: protein dark on a light background (RELION's CTF makes the
    # density positive), so the --invert that real micrographs need is right here too
    mic = rng.standard_normal((h, w), dtype=np.float32) * np.float32(noise_sd) - signal
    mic += np.float32(s.ice_ramp * noise_sd) * (np.arange(w, dtype=np.float32)[None, :] / w - 0.5)
    return mic


def _simulate_stack(
    out: Path,
    density: np.ndarray,
    *,
    n_particles: int,
    settings: SimulationSettings,
    max_shift_px: float = 2.0,
    angles_deg: np.ndarray | None = None,
    shifts_px: np.ndarray | None = None,
    log=None,
) -> dict:
    """A particle stack (box = the map's box) with per-particle CTF, shifts and noise.

    ``angles_deg`` (n, 3) RELION Euler angles and ``shifts_px`` (n, 2) image displacements give
    the orientations instead of random ones (uniform on the sphere) and random sub-pixel shifts.
    """

    t0 = time.perf_counter()
    s = settings
    n = density.shape[-1]
    if n_particles < 1:
        raise InputError(f"`n_particles` must be at least 1, got {n_particles}.")
    rng = np.random.default_rng(s.seed)
    out = Path(out)
    # drawn even when given, so that the CTFs and the noise below are the same either way
    angles = random_relion_angles(n_particles, rng)
    shifts = rng.uniform(-max_shift_px, max_shift_px, (n_particles, 2))
    if angles_deg is not None:
        angles = np.asarray(angles_deg, dtype=np.float64).reshape(n_particles, 3)
    if shifts_px is not None:
        shifts = np.asarray(shifts_px, dtype=np.float64).reshape(n_particles, 2)
    mean = rng.uniform(s.defocus_min_a, s.defocus_max_a, n_particles)
    half = 0.5 * rng.uniform(0, s.astigmatism_max_a, n_particles)
    ctf = {
        "defocus_u_a": mean + half,
        "defocus_v_a": mean - half,
        "defocus_angle_deg": rng.uniform(-180, 180, n_particles),
        "voltage_kv": np.full(n_particles, s.voltage_kv),
        "cs_mm": np.full(n_particles, s.cs_mm),
        "amplitude_contrast": np.full(n_particles, s.amplitude_contrast),
        "ctf_bfactor_a2": np.full(n_particles, s.bfactor_a2),
    }
    proj = Projector(density)
    chunk = 256

    def clean_chunk(sl):
        imgs = shift_images(proj.project(angles[sl]), shifts[sl, 0], shifts[sl, 1])
        return apply_ctf_to_images(imgs, ctf_grids({k: v[sl] for k, v in ctf.items()}, n, s.pixel_size_a))

    # noise level from the first batch's signal (deterministic), then stream batch by batch
    first = clean_chunk(slice(0, chunk))
    noise_sd = np.sqrt(float(first.var()) / s.snr) if s.snr > 0 else 0.0
    import mrcfile

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "particles.mrcs") as tmp:
        with mrcfile.new_mmap(tmp, shape=(n_particles, n, n), mrc_mode=2, overwrite=True) as mrc:
            for a in range(0, n_particles, chunk):
                sl = slice(a, a + chunk)
                imgs = first if a == 0 else clean_chunk(sl)
                noise = np.random.default_rng([s.seed, 1, a]).standard_normal(imgs.shape, dtype=np.float32)
                mrc.data[sl] = imgs + noise * np.float32(noise_sd)
                log and log(f"particles {min(a + chunk, n_particles)}/{n_particles}")
            mrc.set_image_stack()
            stamp_header(mrc)
            mrc.voxel_size = s.pixel_size_a
            mrc.update_header_stats()

    data = pd.DataFrame(
        {
            "image_path": project_relative(str((out / "particles.mrcs").resolve())),
            "image_index": np.arange(n_particles),
            "angle_rot_deg": angles[:, 0],
            "angle_tilt_deg": angles[:, 1],
            "angle_psi_deg": angles[:, 2],
            # the projection was moved by +shift: RELION's origin is minus that
            "shift_x_a": -shifts[:, 0] * s.pixel_size_a,
            "shift_y_a": -shifts[:, 1] * s.pixel_size_a,
            "defocus_u_a": ctf["defocus_u_a"],
            "defocus_v_a": ctf["defocus_v_a"],
            "defocus_angle_deg": ctf["defocus_angle_deg"],
            "phase_shift_deg": 0.0,
            "ctf_bfactor_a2": s.bfactor_a2,
            "ctf_scale": 1.0,
            "voltage_kv": s.voltage_kv,
            "cs_mm": s.cs_mm,
            "amplitude_contrast": s.amplitude_contrast,
            "pixel_size_a": s.pixel_size_a,
            "box_px": n,
            "optics_group": 1,
        }
    )
    # gold-standard half sets, alternating (1, 2, 1, ...) so both halves see every part of the stack
    set_half_sets(data, 1 + np.arange(n_particles) % 2)
    table = ParticleTable(data, kind="particles", source_format="cryobox simulate")
    write_star(out / "particles.star", table)
    write_cs(out / "particles.cs", table)
    write_mrc(out / "true_map.mrc", density, pixel_size_a=s.pixel_size_a)
    return {
        "n_particles": n_particles,
        "box_px": n,
        "pixel_size_a": s.pixel_size_a,
        "particles_star": str(out / "particles.star"),
        "true_map": str(out / "true_map.mrc"),
        "wall_s": time.perf_counter() - t0,
    }


MICROGRAPH_OUTPUTS = ("Micrographs", "micrographs.star", "particles.star", "particles.cs", "true_map.mrc")
STACK_OUTPUTS = ("particles.mrcs", "particles.star", "particles.cs", "true_map.mrc")


def _density_digest(density: np.ndarray) -> str:

    return hashlib.sha1(np.ascontiguousarray(density).tobytes()).hexdigest()[:16]


def _simulation_folder(out: Path, job: str, settings: dict, inputs, owns):

    refuse_star_unsafe_path(out, what="output folder")
    s = {k: (asdict(v) if k == "settings" else v) for k, v in settings.items()}
    return OutputFolder(Path(out), job=job, settings=s, inputs=list(inputs), owns=owns)


def simulate_micrographs(out: Path, density: np.ndarray, *, inputs=(), **kwargs) -> dict:
    """Synthetic micrographs, picks, particle files and the true map in ``out`` (see
    ``_simulate_micrographs`` for the parameters), holding the folder's lock and run record:
    what an earlier run with other settings wrote there is removed first, and ``inputs`` (the
    files the density and poses came from) are never written over."""
    key = {**kwargs, "density": _density_digest(density), "log": None}
    with _simulation_folder(out, "simulate-micrographs", key, inputs, MICROGRAPH_OUTPUTS):
        return _simulate_micrographs(Path(out), density, **kwargs)


def simulate_stack(out: Path, density: np.ndarray, *, inputs=(), **kwargs) -> dict:
    """A particle stack with its STAR, .cs and the true map in ``out`` (see ``_simulate_stack``),
    holding the folder's lock and run record as ``simulate_micrographs`` does."""

    key = {
        k: (digest(np.asarray(v).tolist()) if k in ("angles_deg", "shifts_px") and v is not None else v)
        for k, v in kwargs.items()
        if k != "log"
    }
    key["density"] = _density_digest(density)
    with _simulation_folder(out, "simulate-stack", key, inputs, STACK_OUTPUTS):
        return _simulate_stack(Path(out), density, **kwargs)
