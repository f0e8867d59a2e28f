"""`cryobox demo`: the whole story on data it generates.

1. simulate crowded micrographs at high defocus (the built-in two-domain ~220 Å particle, at a
   coarse pixel size so that refinements fit on a laptop);
2. advise: the refine box and the delocalisation (extract) box for the target resolution;
3. sweep on RELION: the refine box, the delocalisation box, and the delocalisation box
   premultiplied by the CTF and cropped to the refine box; 3 repeats each, short refinements
   started from the true map low-passed to ``ini_high_a``, each run's poses measured against the
   truth;
4. the HTML report with the sweep.

Every number comes from the run; nothing is canned. The settings below are sized so that the
full demo takes well under 30 minutes and ``quick`` under 6 on 2 cores (most of it RELION).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryobox.engines import build, get_engine
from cryobox.io.jsonio import jsonable, write_json
from cryobox.io.mrc import read_mrc
from cryobox.io.particles import read_particles
from cryobox.jobs.advise import advise_files
from cryobox.jobs.outputs import refuse_star_unsafe_path
from cryobox.jobs.report import build_report
from cryobox.jobs.simulate import SimulationSettings, load_density, simulate_micrographs
from cryobox.jobs.sweep import SweepSettings, run_sweep

__all__ = ["DemoSettings", "DEMO", "QUICK", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    pixel_size_a: float
    micrographs: int
    size_px: tuple[int, int]
    per_micrograph: int
    defocus_min_a: float
    defocus_max_a: float
    snr: float
    resolution_a: float
    diameter_a: float = 220.0
    mask_diameter_a: float = 250.0
    ini_high_a: float = 30.0
    healpix_order: int = 1
    offset_range_a: float = 10.0
    offset_step_a: float = 5.0
    auto_iter_max: int = 5
    repeats: int = 2
    faster_sampling: bool = False
    auto_local_healpix_order: int = 4


# Short runs leave their first, coarse sampling (30°, 15° after oversampling) only when RELION
# samples finer as the resolution allows and turns local early: with RELION's defaults, runs of 4-7
# iterations ended 13-15° from the truth; with these, 4-5° (docs/commands/demo.md).
DEMO = DemoSettings(
    pixel_size_a=4.0,
    micrographs=5,
    size_px=(1536, 1536),
    per_micrograph=100,
    defocus_min_a=30000.0,
    defocus_max_a=50000.0,
    snr=0.3,
    resolution_a=10.0,
    auto_iter_max=6,
    repeats=3,
    faster_sampling=True,
    auto_local_healpix_order=2,
)
QUICK = DemoSettings(
    pixel_size_a=5.0,
    micrographs=3,
    size_px=(1024, 1024),
    per_micrograph=80,
    defocus_min_a=30000.0,
    defocus_max_a=50000.0,
    snr=0.3,
    resolution_a=12.5,
    auto_iter_max=5,
    repeats=3,
    faster_sampling=True,
    auto_local_healpix_order=2,
)


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _demo_data(out: Path, ds: DemoSettings, seed: int, log) -> tuple[Path, float]:
    """Step 1: the simulated micrographs and particles (reused when ``demo.json`` names the same
    settings); returns the particles' STAR and the seconds spent."""

    sim = out / "simulated"
    star = sim / "particles.star"
    t_sim = time.perf_counter()
    marker = sim / "demo.json"
    want = jsonable({"settings": asdict(ds), "seed": seed})  # as it reads back from demo.json
    if not (star.exists() and marker.exists() and _json_or_none(marker) == want):
        log(
            f"1/4 simulating {ds.micrographs} crowded micrographs of {ds.size_px[0]}x{ds.size_px[1]} px at "
            f"{ds.pixel_size_a:g} Å/px, "
            f"defocus {ds.defocus_min_a / 1e4:g}-{ds.defocus_max_a / 1e4:g} µm, {ds.per_micrograph} particles each"
        )
        density, _ = load_density(map_path=None, model_path=None, pixel_size_a=ds.pixel_size_a, box_px=None)
        simulate_micrographs(
            sim,
            density,
            n_micrographs=ds.micrographs,
            size_px=ds.size_px,
            per_micrograph=ds.per_micrograph,
            settings=SimulationSettings(
                pixel_size_a=ds.pixel_size_a,
                defocus_min_a=ds.defocus_min_a,
                defocus_max_a=ds.defocus_max_a,
                snr=ds.snr,
                seed=seed,
                crowding=True,
            ),
            diameter_a=ds.diameter_a,
        )
        write_json(marker, want)
    else:
        log("1/4 simulated data already there: reused")
    t_sim = time.perf_counter() - t_sim
    return star, t_sim


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    seed: int = 0,
    log=print,
    settings: DemoSettings | None = None,
    launcher=None,
) -> dict:
    """Run the demo into ``out`` (resumable: finished sweep runs are reused); returns its summary."""

    t0 = time.perf_counter()
    ds = settings or (QUICK if quick else DEMO)
    out = Path(out)
    refuse_star_unsafe_path(out, what="output folder")
    out.mkdir(parents=True, exist_ok=True)
    if launcher is None:  # two runs at once at least: RELION's master rank mostly waits
        cores = os.cpu_count() or 1
        engine, launcher, _ = build("relion", parallel_runs=max(2, cores // 3), cores=cores)
    else:
        engine = get_engine("relion")
    engine.check()  # fail before simulating when RELION is missing

    # 1. data
    star, t_sim = _demo_data(out, ds, seed, log)

    # 2. advice
    table = read_particles(star)
    adv = advise_files(
        [star], tables=[table], diameter_a=ds.diameter_a, resolution_a=ds.resolution_a
    ).advice  # as advise and report read it
    refine, extract = adv.recommended_refine_box_px, adv.recommended_extract_box_px
    log(
        f"2/4 advise: refine in {refine} px ({refine * ds.pixel_size_a:.0f} Å), the delocalisation box is {extract} px "
        f"({extract * ds.pixel_size_a:.0f} Å) at {ds.resolution_a:g} Å"
    )
    if extract <= refine:
        extract = refine + 16
        log(f"   (the delocalisation box is not larger here; the sweep compares {refine} px with {extract} px)")

    # 3. the sweep
    log(
        f"3/4 sweep on RELION: {refine} px, {extract} px, and {extract} px premultiplied + cropped to {refine} px; "
        f"{ds.repeats} repeats, at most {ds.auto_iter_max} iterations each"
    )
    ref, ref_pixel_a = read_mrc(star.parent / "true_map.mrc")
    sw = run_sweep(
        table,
        SweepSettings(
            boxes_px=(refine, extract),
            particle_diameter_a=ds.mask_diameter_a,
            repeats=ds.repeats,
            premultiply_from_px=extract,
            ini_high_a=ds.ini_high_a,
            healpix_order=ds.healpix_order,
            offset_range_a=ds.offset_range_a,
            offset_step_a=ds.offset_step_a,
            auto_iter_max=ds.auto_iter_max,
            faster_sampling=ds.faster_sampling,
            auto_local_healpix_order=ds.auto_local_healpix_order,
            invert=True,
        ),  # simulated micrographs, like real ones, have dark particles
        reference=ref,
        reference_pixel_size_a=ref_pixel_a or ds.pixel_size_a,
        out=out / "sweep",
        engine=engine,
        log=log,
        launcher=launcher,
        truth=table,  # the simulation knows every particle's pose: how accurately did each box align them?
        truth_map=(ref, ref_pixel_a or ds.pixel_size_a),
    )

    # 4. the report
    t_rep = time.perf_counter()
    rep = build_report(
        star,
        out=out / "report.html",
        diameter_a=ds.diameter_a,
        resolution_a=ds.resolution_a,
        sweep=sw,
        title="cryobox demo: which box gives the better map?",
    )
    t_rep = time.perf_counter() - t_rep
    log(f"4/4 report: {rep['path']}")
    wall = time.perf_counter() - t0
    engine_s = sw["timings"].get("engine_wall_s", sw["timings"]["engine_s"])
    own = (
        wall - engine_s - t_sim
    )  # extraction, references, FSC, summary, report (simulation is the demo's data, not the sweep)
    summary = {
        "settings": asdict(ds),
        "quick": quick,
        "seed": seed,
        "refine_box_px": refine,
        "extract_box_px": extract,
        "simulation_s": t_sim,
        "report_s": t_rep,
        "wall_s": wall,
        "own_s": own,
        "own_fraction": own / engine_s if engine_s > 0 else None,
        "report": rep["path"],
        "sweep": sw,
    }
    write_json(out / "demo.json", {k: v for k, v in summary.items() if k != "sweep"}, indent=1)
    return summary
