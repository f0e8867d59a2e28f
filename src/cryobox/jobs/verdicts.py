"""The FSC record of each run and the verdicts between variants, shared by sweep and judge.

``run_fsc_record``: one run's masked, phase-randomisation-corrected FSC as sweep.json and
judge.json keep it; ``compare_variants``: every pair's test, verdict and sentence;
``decided_best``: a best variant only where the tests decide; ``write_sweep``: the JSON and figure.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from cryobox.core.fsc import masked_fsc_analysis
from cryobox.core.stats import compare_resolutions, mean_sd
from cryobox.io.jsonio import write_json
from cryobox.io.mrc import read_map_padded, read_mrc
from cryobox.report.text import verdict_sentence

__all__ = [
    "RESOLUTION_KEY",
    "TEST_TEXT",
    "format_resolution",
    "fsc_of_files",
    "run_fsc_record",
    "compare_variants",
    "decided_best",
    "write_sweep",
    "RUN_KEYS",
    "variant_row",
]


RESOLUTION_KEY = "interpolated_resolution_a"  # the continuous value the repeat test uses


def format_resolution(r: dict) -> str:
    a, b = r.get("resolution_a"), r.get("interpolated_resolution_a")
    return (
        f"FSC 0.143 at {a:.2f} Å (interpolated {b:.2f} Å)"
        if a is not None and b is not None
        else "FSC did not drop below 0.143"
    )


def fsc_of_files(half1: Path, half2: Path, mask_path: Path, pixel_size_a: float, seed: int | None) -> dict:
    """``run_fsc_record`` of two half-map files (read into their transform buffers) and a mask file."""

    maps = [
        read_map_padded(path, pixel_size_a=pixel_size_a, what="half map", ndim=3, varying=True)[0]
        for path in (half1, half2)
    ]
    m, _ = read_mrc(mask_path)
    return run_fsc_record(*maps, m, pixel_size_a=pixel_size_a, seed=seed, overwrite_input=True)


def run_fsc_record(
    h1: np.ndarray,
    h2: np.ndarray,
    m: np.ndarray | None,
    *,
    pixel_size_a: float,
    seed: int | None = None,
    overwrite_input: bool = False,
) -> dict:
    """One run's FSC as the sweep and judge record it: ``cryobox fsc --mask`` (masked,
    phase-randomisation-corrected), resolutions at 0.143 (RELION's rule and interpolated) and 0.5,
    and the curve. Randomises from 2/3 Nyquist when the unmasked FSC never drops below 0.8. The
    phase-randomised curve is its expectation over all draws (``seed`` None) or one seeded draw.
    ``overwrite_input``: the half maps may be used as the transforms' buffers (then garbage)."""

    res = masked_fsc_analysis(
        h1,
        h2,
        pixel_size_a=pixel_size_a,
        mask=m,
        seed=seed,
        fallback_randomise_at_a=3.0 * pixel_size_a,
        overwrite_input=overwrite_input,
    )
    r143 = res.resolution(0.143)
    r05 = res.resolution(0.5)
    return {
        "resolution_a": r143["resolution_a"],
        "interpolated_resolution_a": r143["interpolated_resolution_a"],
        "resolution_0.5_a": r05["resolution_a"],
        "randomise_at_shell": res.randomise_at_shell,
        "limited_by_nyquist": r143["limited_by_nyquist"],
        "measurement_sd_a": r143["measurement_sd_a"],
        "warnings": list(res.warnings),
        "mask_check_failed": any("too sharp or too tight" in w for w in res.warnings),
        "curve": {
            "frequency_inv_a": [float(v) for v in res.frequency_inv_a],
            "fsc": [float(v) for v in res.final],
            "fsc_unmasked": [float(v) for v in res.fsc_unmasked],
        },
    }


TEST_TEXT = (
    "Welch's t-test (two-sided, alpha = 0.05) on the repeats' interpolated resolutions as spatial frequency (1/Å), "
    "the axis the FSC is sampled on; differences and 95% intervals also in Å; repeats for 80% power from the "
    "noncentral t distribution"
)


# what sweep.json and judge.json keep of each run (keys a run lacks are null)
RUN_KEYS = (
    "repeat",
    "run",
    "seed",
    "resolution_a",
    "interpolated_resolution_a",
    "resolution_0.5_a",
    "measurement_sd_a",
    "limited_by_nyquist",
    "warnings",
    "mask_check_failed",
    "iteration",
    "converged",
    "half_maps_from",
    "half_maps_kind",
    "engine_seconds",
    "engine_resolution_a",
    "half1",
    "half2",
    "box_px",
    "curve",
)


def variant_row(label: str, runs: list[dict], *, box_px: int, pixel_size_a: float, description: str, **extra) -> dict:
    """One variant of sweep.json / judge.json: its runs' resolutions (RELION's rule and
    interpolated), their mean and SD, and what each run keeps (``RUN_KEYS``); ``extra``: the
    variant's own fields (premultiply source, mask policy and diameter, sources)."""

    vals = [r.get(RESOLUTION_KEY) for r in runs]
    rel = [r.get("resolution_a") for r in runs]
    mean, sd = mean_sd(vals)
    mean_rel, sd_rel = mean_sd(rel)
    return {
        "variant": label,
        "box_px": box_px,
        "box_a": box_px * pixel_size_a,
        "premultiply_from_px": extra.pop("premultiply_from_px", None),
        "mask_policy": extra.pop("mask_policy", None),
        "mask_diameter_a": extra.pop("mask_diameter_a", None),
        "description": description,
        "resolutions_a": rel,
        "interpolated_resolutions_a": vals,
        "mean_a": mean,
        "sd_a": sd,
        "mean_relion_rule_a": mean_rel,
        "sd_relion_rule_a": sd_rel,
        **extra,
        "runs": [{k: r.get(k) for k in RUN_KEYS} for r in runs],
    }


def compare_variants(rows: list[dict], *, pixel_size_a: float) -> list[dict]:
    """Every pair of variants (rows with ``variant``, ``box_px``, ``interpolated_resolutions_a``
    and ``runs``): the test, the verdict and its sentence (sweep and judge alike)."""

    out = []
    for va, vb in combinations(rows, 2):
        a, b = va["variant"], vb["variant"]
        shell = 1.0 / (max(va["box_px"], vb["box_px"]) * pixel_size_a)  # one shell of the finer sampling
        c = compare_resolutions(
            va["interpolated_resolutions_a"], vb["interpolated_resolutions_a"], shell_width_inv_a=shell
        )
        finer = {"finer": a, "coarser": b}.get(c["verdict"])
        c.update({"a": a, "b": b, "finer": finer})
        runs = va["runs"] + vb["runs"]
        caveats = []
        sources = {r.get("half_maps_kind") or (r.get("half_maps_from") or "").split(" from ")[0] for r in runs}
        if len(sources) > 1:
            caveats.append(
                "some runs converged and some stopped early, so their half maps come from different "
                "reconstructions (the engine's final ones, cryobox's from the last poses); raise or drop "
                "--auto-iter-max so that all runs end the same way"
            )
        flagged = [r for r in runs if r.get("mask_check_failed")]
        c["measurement_sd_a"] = _measurement_sd(va["runs"], vb["runs"])
        c["runs_used"] = len(runs)
        c["runs_mask_check_failed"] = len(flagged)
        if flagged:
            caveats.append(
                f"it rests on {len(runs)} runs, {len(flagged)} of which failed the mask check (the phase-randomised "
                "masked FSC stays above 0.10 at its resolution: the mask is too sharp or too tight); give a softer "
                "mask"
            )
        if any(r.get("limited_by_nyquist") for r in runs):
            caveats.append(
                "some runs' FSC never falls below 0.143, so their resolution is a bound at Nyquist, not a "
                "measurement; the comparison cannot see differences finer than Nyquist"
            )
        if caveats:
            c["caveat"] = "; ".join(caveats)
        c["sentence"] = verdict_sentence(c, a, b) + (f" Caveat: {c['caveat']}." if c.get("caveat") else "")
        out.append(c)
    return out


def _measurement_sd(runs_a: list[dict], runs_b: list[dict]) -> float | None:
    """The measurement spread (Å) of the difference of the two variants' mean resolutions from the
    FSCs' own sampling (each run's ``measurement_sd_a``), None when a run has none."""
    total = 0.0
    for runs in (runs_a, runs_b):
        sds = [r.get("measurement_sd_a") for r in runs]
        if not sds or any(v is None for v in sds):
            return None
        total += sum(v * v for v in sds) / len(sds) ** 2
    return float(np.sqrt(total))


def decided_best(table: list[dict], comparisons: list[dict]) -> str | None:
    """The variant the tests call finer than every other one (a decided verdict against each);
    None when any comparison with it is undecided or equivalent: "best" is never a mean's guess."""
    names = [row["variant"] for row in table if row.get("mean_a") is not None]
    for name in names:
        against = [c for c in comparisons if name in (c.get("a"), c.get("b"))]
        if against and len(against) == len(names) - 1 and all(c.get("finer") == name for c in against):
            return name
    return None


def write_sweep(out: Path, summary: dict, *, plot: bool = True, name: str = "sweep") -> None:
    """``<name>.json`` and ``<name>.png`` (FSC of every run; resolution per variant with its repeats)."""
    write_json(Path(out) / f"{name}.json", summary, indent=1)
    if plot:
        from cryobox.report.plots import figure_sweep, save_figure  # matplotlib: only when a figure is drawn

        save_figure(figure_sweep(summary), Path(out) / f"{name}.png")
