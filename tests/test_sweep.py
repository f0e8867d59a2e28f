"""cryobox sweep: the repeat test, the plan, the engine interface, the whole sweep on a stand-in
engine (fast, no RELION), and a tiny real sweep on relion_refine_mpi."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cryobox.core.stats import compare_repeats, mean_sd
from cryobox.engines import EngineError, EngineMissing, HalfMaps, RefineEngine, RefineParams, RunCommand, get_engine
from cryobox.engines.relion import RelionEngine
from cryobox.errors import InputError
from cryobox.io.mrc import read_mrc, write_mrc
from cryobox.io.particles import read_particles
from cryobox.jobs.sweep import SweepSettings, plan_variants, run_sweep

HAVE_REFINE = shutil.which("relion_refine_mpi") is not None and shutil.which("mpirun") is not None
needs_refine = pytest.mark.skipif(
    not HAVE_REFINE, reason="relion_refine_mpi / mpirun not installed (apt-get install -y relion)"
)


# --------------------------------------------------------------------------- the repeat test


def test_compare_repeats_is_welch_t_test():
    a, b = [3.71, 3.80, 3.76], [4.12, 4.01, 4.20, 4.05]
    c = compare_repeats(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert c["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert c["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert c["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert c["exceeds_spread"] is True and c["verdict"] == "lower"


def test_compare_repeats_within_spread_and_undetermined():
    c = compare_repeats([3.7, 4.1], [3.8, 4.2])
    assert c["exceeds_spread"] is False and c["p"] > 0.05
    u = compare_repeats([3.7], [4.1, 4.0])
    assert u["verdict"] == "undecided" and u["exceeds_spread"] is None
    same = compare_repeats([3.7, 3.7], [3.7, 3.7])
    assert same["exceeds_spread"] is False
    apart = compare_repeats([3.7, 3.7], [3.9, 3.9])
    assert apart["exceeds_spread"] is True


def test_mean_sd():
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2.0)))
    assert mean_sd([2.0]) == (2.0, None)
    assert mean_sd([]) == (None, None)


# ------------------------------------------------------------------------------------- plan


def test_plan_variants_policies_and_premultiply():
    s = SweepSettings(
        boxes_px=(96, 64), particle_diameter_a=200.0, premultiply_from_px=96, mask_policies=("fixed", "box-relative")
    )
    variants, notes = plan_variants(s, pixel_size_a=4.0)
    labels = [v.label for v in variants]
    assert labels == ["box64", "box96", "box64_pm96", "box96_boxrel"]
    by = {v.label: v for v in variants}
    assert by["box96"].mask_diameter_a == 200.0  # fixed: one diameter in Å for every box
    assert by["box96_boxrel"].mask_diameter_a == pytest.approx(300.0)  # scales with the box (96 / 64)
    assert by["box64_pm96"].premultiply_from_px == 96
    assert any("equals the fixed one" in n for n in notes)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"boxes_px": ()}, "at least one box"),
        ({"boxes_px": (64, 64)}, "each box once"),
        ({"repeats": 0}, "at least 1"),
        ({"premultiply_from_px": 48}, "nothing is cropped"),
        ({"mask_policies": ("loose",)}, "fixed, box-relative or both"),
        ({"edge": "trim"}, "keep or drop"),
    ],
)
def test_settings_reject_bad_values(kwargs, match):
    base = {"boxes_px": (64, 96), "particle_diameter_a": 200.0}
    with pytest.raises(InputError, match=match):
        SweepSettings(**{**base, **kwargs}).check()


def test_mask_larger_than_box_is_refused():
    with pytest.raises(InputError, match="larger than the 64 px box"):
        plan_variants(SweepSettings(boxes_px=(64,), particle_diameter_a=300.0), pixel_size_a=4.0)


# ------------------------------------------------------------------------- RELION engine


def test_relion_command_converts_angstrom_offsets_and_sets_seed(tmp_path):
    eng = RelionEngine(ranks=3, threads=2)
    p = RefineParams(
        pixel_size_a=2.5,
        box_px=96,
        particle_diameter_a=200.0,
        ini_high_a=30.0,
        random_seed=7,
        healpix_order=2,
        offset_range_a=10.0,
        offset_step_a=5.0,
        auto_iter_max=4,
    )
    eng._mpi_flags = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    cmd = eng.prepare(tmp_path / "run", tmp_path / "p.star", tmp_path / "ref.mrc", p)
    s = " ".join(cmd)
    assert cmd[:1] == ["mpirun"] and "-n 3 relion_refine_mpi" in s
    assert "--offset_range 4 " in s and "--offset_step 2 " in s  # 10 Å and 5 Å at 2.5 Å/px
    assert "--random_seed 7" in s and "--auto_iter_max 4" in s and "--split_random_halves" in s and "--auto_refine" in s
    assert "--particle_diameter 200" in s and "--ini_high 30" in s and "--j 2" in s
    assert ("--allow-run-as-root" in s) == (os.geteuid() == 0)
    assert "--auto_ignore_angles" not in s and "--auto_resol_angles" not in s
    # "finer angular sampling faster": the two flags RELION 3.1's relion_refine takes for it
    fast = " ".join(
        eng.prepare(tmp_path / "run2", tmp_path / "p.star", tmp_path / "ref.mrc", replace(p, faster_sampling=True))
    )
    assert "--auto_ignore_angles --auto_resol_angles" in fast
    # local searches from RELION's default order 4 on, or from the order asked for
    assert "--healpix_order 2 --auto_local_healpix_order 4" in s
    early = replace(p, auto_local_healpix_order=2)
    assert "--auto_local_healpix_order 2" in " ".join(
        eng.prepare(tmp_path / "run3", tmp_path / "p.star", tmp_path / "r.mrc", early)
    )
    with pytest.raises(InputError, match="auto_local_healpix_order"):
        SweepSettings(boxes_px=(64,), particle_diameter_a=100.0, auto_local_healpix_order=9).check()
    if shutil.which("relion_refine"):
        helptext = subprocess.run(["relion_refine", "--help"], capture_output=True, text=True).stdout
        assert "--auto_ignore_angles" in helptext and "--auto_resol_angles" in helptext


def test_relion_engine_refuses_too_few_ranks_and_big_masks(tmp_path):
    with pytest.raises(EngineError, match="at least 3 MPI ranks"):
        RelionEngine(ranks=2)
    eng = RelionEngine()
    eng._mpi_flags = []
    p = RefineParams(pixel_size_a=2.0, box_px=64, particle_diameter_a=200.0, ini_high_a=30.0, random_seed=1)
    with pytest.raises(EngineError, match="does not fit"):
        eng.prepare(tmp_path, tmp_path / "p.star", tmp_path / "r.mrc", p)


def test_missing_relion_is_one_sentence_with_install_command(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineMissing, match="apt-get install -y relion"):
        get_engine("relion").check()
    ref = write_mrc(tmp_path / "ref.mrc", np.zeros((32, 32, 32), np.float32), pixel_size_a=4.0)
    star = tmp_path / "p.star"
    star.write_text("data_\nloop_\n_rlnImageName\n_rlnDefocusU\n")
    res = cli("sweep", star, "--boxes", "32", "--reference", ref, "--particle-diameter", "100", "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "apt-get install -y relion" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("order", ["finer first", "coarser first"])
def test_compare_variants_names_the_finer_variant(order):
    from cryobox.jobs.verdicts import compare_variants

    fine = {"variant": "box280", "box_px": 280, "interpolated_resolutions_a": [3.70, 3.72, 3.68], "runs": []}
    coarse = {"variant": "box576", "box_px": 576, "interpolated_resolutions_a": [4.10, 4.12, 4.08], "runs": []}
    rows = [fine, coarse] if order == "finer first" else [coarse, fine]
    (c,) = compare_variants(rows, pixel_size_a=1.06)
    assert c["finer"] == "box280" and c["p"] < 0.001
    assert c["verdict"] == ("finer" if order == "finer first" else "coarser")
    assert c["sentence"].startswith("box280 is finer than box576" if order == "finer first" else "box576 is coarser")
    # identical variants are never called finer or coarser: they are equivalent (within one shell)
    (same,) = compare_variants([fine, {**fine, "variant": "again"}], pixel_size_a=1.06)
    assert same["verdict"] == "equivalent" and same["finer"] is None


def test_verdict_warns_when_runs_ended_differently():
    from cryobox.jobs.sweep import summarise_sweep

    s = SweepSettings(boxes_px=(64, 80), particle_diameter_a=200.0, repeats=2, mask_policies=("fixed",))
    variants, _ = plan_variants(s, pixel_size_a=4.0)
    final, rebuilt = "relion final half maps", "cryobox reconstruction from the poses of iteration 5"

    def runs(values, sources):
        return [
            {"repeat": k + 1, "interpolated_resolution_a": v, "resolution_a": v, "half_maps_from": src}
            for k, (v, src) in enumerate(zip(values, sources))
        ]

    kw = dict(
        settings=s,
        pixel_size_a=4.0,
        mode="extract",
        n_particles_in=10,
        n_common=10,
        counts={},
        engine_info={},
        notes=[],
    )
    same = summarise_sweep(
        variants, {"box64": runs([8.0, 8.2], [rebuilt] * 2), "box80": runs([9.0, 9.1], [rebuilt] * 2)}, **kw
    )
    assert "caveat" not in same["comparisons"][0] and same["half_maps_from"] == {rebuilt: 4}
    mixed = summarise_sweep(
        variants, {"box64": runs([8.0, 8.2], [final, rebuilt]), "box80": runs([9.0, 9.1], [rebuilt] * 2)}, **kw
    )
    assert "different reconstructions" in mixed["comparisons"][0]["caveat"]
    assert "--auto-iter-max" in mixed["comparisons"][0]["sentence"]


def test_relion_collect_prefers_final_maps(tmp_path):
    for name in (
        "run_it001_half1_class001.mrc",
        "run_it001_half2_class001.mrc",
        "run_half1_class001_unfil.mrc",
        "run_half2_class001_unfil.mrc",
    ):
        write_mrc(tmp_path / name, np.zeros((8, 8, 8), np.float32), pixel_size_a=1.0)
    (tmp_path / "run_model.star").write_text("data_model_general\n_rlnCurrentResolution 7.5\n")
    got = RelionEngine().collect(tmp_path)
    assert got.converged and got.half1.name == "run_half1_class001_unfil.mrc" and got.engine_resolution_a == 7.5


def test_relion_collect_of_a_stopped_run_gives_its_last_poses(tmp_path):
    for it in (1, 2):
        for h in (1, 2):
            write_mrc(
                tmp_path / f"run_it00{it}_half{h}_class001.mrc", np.zeros((8, 8, 8), np.float32), pixel_size_a=1.0
            )
        (tmp_path / f"run_it00{it}_data.star").write_text("data_\n")
    got = RelionEngine().collect(tmp_path)
    assert (
        not got.converged and got.half1 is None and got.iteration == 2 and got.poses == tmp_path / "run_it002_data.star"
    )
    (tmp_path / "run_it002_data.star").unlink()
    with pytest.raises(EngineError, match="run_it002_data.star: missing"):
        RelionEngine().collect(tmp_path)


def test_relion_collect_without_iterations_fails(tmp_path):
    with pytest.raises(EngineError, match="no half maps"):
        RelionEngine().collect(tmp_path)


# ------------------------------------------------------------------- the sweep, stand-in engine


STANDIN = Path(__file__).with_name("standin_refine.py")


class StandInEngine(RefineEngine):
    """Runs tests/standin_refine.py as its program (a command, like RELION): half maps = the
    reference + seeded noise that grows with the mask diameter, so every run has a real FSC;
    records what it was asked. ``interrupt_at``: Ctrl-C while that run is out; ``fail``: the
    repeats (1-based seeds) whose program fails; ``sleep``: seconds each run takes."""

    name = "stand-in"

    def __init__(self, interrupt_at: int | None = None, fail=(), sleep: float = 0.0):
        self.calls: list[RefineParams] = []
        self.dirs: list[Path] = []
        self.interrupt_at = interrupt_at
        self.fail = set(fail)
        self.sleep = sleep

    def check(self):
        return {"engine": "stand-in", "version": "0"}

    def command(self, run_dir, particles_star, reference, params):
        self.calls.append(params)
        self.dirs.append(Path(run_dir))
        args = [str(STANDIN), str(run_dir), str(particles_star), str(reference), str(params.random_seed)]
        args += [str(params.particle_diameter_a), "--sleep", str(self.sleep)]
        if params.random_seed in self.fail:
            args.append("--fail")
        return RunCommand((), (sys.executable, *args), ranks=1, threads=1)

    def _maybe_interrupt(self, run_dir):
        """Ctrl-C at the first look at the ``interrupt_at``-th run, running or already ended."""
        if self.interrupt_at is not None and len(self.calls) >= self.interrupt_at:
            if Path(run_dir) == self.dirs[self.interrupt_at - 1]:
                (Path(run_dir) / "half-written.mrc").write_bytes(b"\0" * 10)
                raise KeyboardInterrupt

    def progress(self, run_dir):
        self._maybe_interrupt(run_dir)
        lines = (
            (Path(run_dir) / "progress.txt").read_text().split("\n")
            if (Path(run_dir) / "progress.txt").exists()
            else []
        )
        lines = [ln.split() for ln in lines if ln.strip()]
        return (int(lines[-1][1]), float(lines[-1][2])) if lines else None

    def collect(self, run_dir):
        self._maybe_interrupt(run_dir)
        run_dir = Path(run_dir)
        if not (run_dir / "half1.mrc").exists():
            raise EngineError(f"{run_dir}: no half maps")
        return HalfMaps(run_dir / "half1.mrc", run_dir / "half2.mrc", 3, False, None, poses=run_dir / "data.star")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Two small micrographs of the built-in particle at 8 Å/px (some particles near edges)."""
    from cryobox.jobs.simulate import SimulationSettings, load_density, simulate_micrographs

    root = tmp_path_factory.mktemp("sweepdata")
    density, _ = load_density(map_path=None, model_path=None, pixel_size_a=8.0, box_px=None)
    simulate_micrographs(
        root / "sim",
        density,
        n_micrographs=2,
        size_px=(512, 512),
        per_micrograph=60,
        settings=SimulationSettings(
            pixel_size_a=8.0, defocus_min_a=20000, defocus_max_a=35000, snr=0.3, seed=3, crowding=True
        ),
    )
    return root / "sim"


def _settings(**kw):
    base = {
        "boxes_px": (36, 48),
        "particle_diameter_a": 240.0,
        "repeats": 2,
        "premultiply_from_px": 48,
        "ini_high_a": 40.0,
        "mask_policies": ("fixed", "box-relative"),
        "offset_range_a": 16.0,
        "offset_step_a": 8.0,
    }
    return SweepSettings(**{**base, **kw})


def test_sweep_end_to_end_with_stand_in_engine(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = read_particles(tiny_dataset / "particles.star")
    ref, px = read_mrc(tiny_dataset / "true_map.mrc")
    eng = StandInEngine()
    d = run_sweep(
        table,
        _settings(edge="drop"),
        reference=ref,
        reference_pixel_size_a=px,
        out=tmp_path / "sw",
        engine=eng,
        log=lambda s: None,
    )
    # variants: box36, box48, box36_pm48 (fixed), box48_boxrel; 2 repeats each, seeds 1 and 2
    assert [v["variant"] for v in d["variants"]] == ["box36", "box48", "box36_pm48", "box48_boxrel"]
    assert len(eng.calls) == 8 and sorted({c.random_seed for c in eng.calls}) == [1, 2]
    # everything but the box and the mask is fixed
    assert {(c.offset_range_a, c.offset_step_a, c.healpix_order, c.ini_high_a) for c in eng.calls} == {
        (16.0, 8.0, 2, 40.0)
    }
    assert {c.particle_diameter_a for c in eng.calls if c.box_px == 48} == {240.0, 320.0}
    # the edge policy dropped more at 48 px: every arm refines the same (common) particles
    per_arm = d["particles_per_arm"]
    assert per_arm["box48"] < per_arm["box36"] and d["n_particles_refined"] == per_arm["box48"]
    n_refine = {len(read_particles(p).data) for p in (tmp_path / "sw" / "data").glob("*/refine.star")}
    assert n_refine == {d["n_particles_refined"]}
    # the references and masks are one map windowed to each box
    r36, _ = read_mrc(tmp_path / "sw" / "references" / "ref_box36.mrc")
    m36, _ = read_mrc(tmp_path / "sw" / "references" / "mask_box36.mrc")
    m48, _ = read_mrc(tmp_path / "sw" / "references" / "mask_box48.mrc")
    assert r36.shape == (36, 36, 36) and m48.shape == (48, 48, 48)
    np.testing.assert_array_equal(m36, m48[6:42, 6:42, 6:42])
    # resolutions: the noisier (bigger-mask) variant is worse, and the test says so
    for v in d["variants"]:
        assert len(v["interpolated_resolutions_a"]) == 2 and all(np.isfinite(v["interpolated_resolutions_a"]))
        assert v["mean_a"] == pytest.approx(np.mean(v["interpolated_resolutions_a"]))
    assert len(d["comparisons"]) == 6 and all("sentence" in c for c in d["comparisons"])
    by = {v["variant"]: v for v in d["variants"]}
    for r_fixed, r_rel in zip(
        by["box48"]["interpolated_resolutions_a"], by["box48_boxrel"]["interpolated_resolutions_a"]
    ):
        assert r_fixed < r_rel  # same seed, less noise: every repeat of the fixed mask is finer
    pair = next(c for c in d["comparisons"] if {c["a"], c["b"]} == {"box48", "box48_boxrel"})
    assert pair["finer"] in ("box48", None) and pair["verdict"] != ("coarser" if pair["a"] == "box48" else "finer")
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert saved["variants"][0]["runs"][0]["curve"]["fsc"][0] == pytest.approx(1.0)
    assert (tmp_path / "sw" / "sweep.png").stat().st_size > 10_000
    assert d["timings"]["engine_s"] > 0 and d["scheduler"]["submitted"] == 8
    assert all(r["half_maps_from"] == "stand-in final half maps" for v in d["variants"] for r in v["runs"])
    # no caveat about half maps of different kinds; a mask-check caveat counts the flagged runs exactly
    assert not any("converged and some stopped" in c.get("caveat", "") for c in d["comparisons"])
    flagged = sum(bool(r.get("mask_check_failed")) for v in d["variants"] for r in v["runs"])
    assert all(c["runs_mask_check_failed"] <= flagged for c in d["comparisons"])
    assert all(
        ("failed the mask check" in c.get("caveat", "")) == (c["runs_mask_check_failed"] > 0) for c in d["comparisons"]
    )


def test_sweep_resumes_after_interrupt(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = read_particles(tiny_dataset / "particles.star")
    ref, px = read_mrc(tiny_dataset / "true_map.mrc")
    s = _settings(premultiply_from_px=None, mask_policies=("fixed",))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            table,
            s,
            reference=ref,
            reference_pixel_size_a=px,
            out=tmp_path / "sw",
            engine=StandInEngine(interrupt_at=3),
            log=lambda s: None,
        )
    assert not (tmp_path / "sw" / "sweep.json").exists()
    done = sorted(
        p.parent.name + "/" + p.parent.parent.name for p in (tmp_path / "sw" / "runs").glob("*/*/result.json")
    )
    assert len(done) == 2
    lines = []
    eng = StandInEngine()
    d = run_sweep(table, s, reference=ref, reference_pixel_size_a=px, out=tmp_path / "sw", engine=eng, log=lines.append)
    assert len(eng.calls) == 2  # only the interrupted run and the one never started
    assert sum("done before" in ln for ln in lines) == 2
    assert not list((tmp_path / "sw" / "runs").glob("*/*/half-written.mrc"))  # the interrupted run started clean
    assert all(len(v["runs"]) == 2 for v in d["variants"])
    # a changed setting redoes the runs it touches
    eng2 = StandInEngine()
    run_sweep(
        table,
        _settings(premultiply_from_px=None, mask_policies=("fixed",), ini_high_a=30.0),
        reference=ref,
        reference_pixel_size_a=px,
        out=tmp_path / "sw",
        engine=eng2,
        log=lambda s: None,
    )
    assert len(eng2.calls) == 4


def test_sweep_restacks_when_only_stacks_are_known(tiny_dataset, tmp_path, monkeypatch):
    from cryobox.jobs.extract import ExtractOptions, run_extract

    monkeypatch.chdir(tmp_path)
    table = read_particles(tiny_dataset / "particles.star")
    run_extract(table, ExtractOptions(box_px=56), tmp_path / "ext", workers=1)
    stacks = read_particles(tmp_path / "ext" / "particles.star")
    stacks.data = stacks.data.drop(columns=["micrograph_name"])
    ref, px = read_mrc(tiny_dataset / "true_map.mrc")
    eng = StandInEngine()
    d = run_sweep(
        stacks,
        _settings(premultiply_from_px=48, mask_policies=("fixed",), repeats=1),
        reference=ref,
        reference_pixel_size_a=px,
        out=tmp_path / "sw",
        engine=eng,
        log=lambda s: None,
    )
    assert d["mode"] == "restack" and d["n_particles_refined"] == len(stacks.data)
    assert {c.box_px for c in eng.calls} == {36, 48}
    pm = read_particles(tmp_path / "sw" / "data" / "box36_pm48" / "particles.star")
    assert bool(pm.data["ctf_premultiplied"].all()) and int(pm.data["box_px"].iloc[0]) == 36


def test_sweep_refuses_small_stacks(tiny_dataset, tmp_path, monkeypatch):
    from cryobox.jobs.extract import ExtractOptions, run_extract

    monkeypatch.chdir(tmp_path)
    run_extract(read_particles(tiny_dataset / "particles.star"), ExtractOptions(box_px=40), tmp_path / "ext", workers=1)
    stacks = read_particles(tmp_path / "ext" / "particles.star")
    stacks.data = stacks.data.drop(columns=["micrograph_name"])
    ref, px = read_mrc(tiny_dataset / "true_map.mrc")
    with pytest.raises(InputError, match="stacks are 40 px"):
        run_sweep(
            stacks,
            _settings(premultiply_from_px=None),
            reference=ref,
            reference_pixel_size_a=px,
            out=tmp_path / "sw",
            engine=StandInEngine(),
            log=lambda s: None,
        )


# ------------------------------------------------------------------------ RELION, for real


@needs_refine
def test_tiny_sweep_on_relion_resumes_and_reports(tiny_dataset, tmp_path, monkeypatch, cli):
    """200-odd particles, a 36 px box and 48 px premultiplied and cropped to 36, one run each, 2 iterations: the
    whole path on relion_refine through the CLI (the README's demo runs three variants with repeats)."""
    monkeypatch.chdir(tmp_path)
    args = [
        "sweep",
        tiny_dataset / "particles.star",
        "--boxes",
        "36",
        "--reference",
        tiny_dataset / "true_map.mrc",
        "--particle-diameter",
        "240",
        "--repeats",
        "1",
        "--auto-iter-max",
        "2",
        "--ini-high",
        "40",
        "--healpix-order",
        "1",
        "--offset-range",
        "16",
        "--offset-step",
        "8",
        "--premultiply-from",
        "48",
        "--out",
        "sw",
    ]
    res = cli(*args)
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [v["variant"] for v in d["variants"]] == ["box36", "box36_pm48"]
    assert bool(read_particles(tmp_path / "sw" / "data" / "box36_pm48" / "refine.star").data["ctf_premultiplied"].all())
    for v in d["variants"]:
        assert len(v["runs"]) == 1
        for r in v["runs"]:
            # stopped by --auto-iter-max: half maps reconstructed by cryobox from the last poses, the
            # same CTF weighting for the plain and the premultiplied stacks
            assert r["iteration"] == 2 and not r["converged"] and Path(r["half1"]).exists()
            assert r["half_maps_from"] == "cryobox reconstruction from the poses of iteration 2"
            assert 16.0 <= r["interpolated_resolution_a"] < 80.0  # between Nyquist and nothing at all
    # no caveat about half maps of different kinds; a mask-check caveat counts the flagged runs exactly
    assert not any("converged and some stopped" in c.get("caveat", "") for c in d["comparisons"])
    flagged = sum(bool(r.get("mask_check_failed")) for v in d["variants"] for r in v["runs"])
    assert all(c["runs_mask_check_failed"] <= flagged for c in d["comparisons"])
    assert all(
        ("failed the mask check" in c.get("caveat", "")) == (c["runs_mask_check_failed"] > 0) for c in d["comparisons"]
    )
    assert d["timings"]["reconstruct_s"] > 0
    cmds = [json.loads(p.read_text())["command"] for p in sorted((tmp_path / "sw" / "runs").glob("*/*/result.json"))]
    assert sorted(c[c.index("--random_seed") + 1] for c in cmds) == ["1", "1"]
    assert all(("--allow-run-as-root" in c) == (os.geteuid() == 0) for c in cmds)
    assert (tmp_path / "sw" / "runs" / "box36" / "rep1" / "engine.log").read_text().startswith("# mpirun")
    assert "Welch" in res.output and "engine" in res.output
    assert "half maps: cryobox reconstruction from the poses of iteration 2 (2 runs)" in res.output
    # re-running resumes: nothing is refined again
    again = cli(*args)
    assert again.exit_code == 0 and again.output.count("done before, read back") == 2
    assert "no refinement ran this time" in again.output and "% of the engine" not in again.output
    # and the report takes the sweep
    rep = cli(
        "report",
        tiny_dataset / "particles.star",
        "--diameter",
        "220",
        "--resolution",
        "20",
        "--sweep",
        "sw",
        "--out",
        "r.html",
    )
    assert rep.exit_code == 0, rep.output
    html = (tmp_path / "r.html").read_text()
    assert "box36" in html and "Welch" in html and "Half maps: cryobox reconstruction" in html


def test_a_2d_reference_is_refused_before_any_work(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = read_particles(tiny_dataset / "particles.star")
    eng = StandInEngine()
    with pytest.raises(InputError, match="`reference` must be a cubic 3D map"):
        run_sweep(
            table,
            _settings(),
            reference=np.zeros((48, 48), np.float32),
            reference_pixel_size_a=8.0,
            out=tmp_path / "sw",
            engine=eng,
            log=lambda s: None,
        )
    assert not eng.calls and not (tmp_path / "sw" / "data").exists()


def test_settings_added_later_leave_earlier_run_keys_alone():
    """A run's key holds its refinement parameters; a setting added in a later version enters it
    only when it differs from what earlier runs had, so a resumed sweep still reads them back."""
    from cryobox.jobs.sweep import _key_params

    p = RefineParams(pixel_size_a=2.0, box_px=64, particle_diameter_a=100.0, ini_high_a=30.0, random_seed=1)
    assert "faster_sampling" not in _key_params(p) and "auto_local_healpix_order" not in _key_params(p)
    changed = _key_params(replace(p, faster_sampling=True, auto_local_healpix_order=2))
    assert changed["faster_sampling"] is True and changed["auto_local_healpix_order"] == 2
