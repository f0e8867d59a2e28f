"""Her question from her own files: the cryoSPARC user's path through restack, advise --boxes,
compare with per-run boxes, judge and report, on real files and on the layouts the programs write."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from conftest import real_file
from cryobox.core.boxsize import advise_box, cryosparc_window_diameters_a, edge_clipped
from cryobox.io.fsc_files import load_curve, parse_run_spec, resolution_text
from cryobox.io.mrc import write_mrc
from cryobox.io.particles import read_particles
from cryobox.io.star import write_star_blocks

CLI = [sys.executable, "-m", "cryobox"]


def run(*args, cwd, env=None, check=True):
    proc = subprocess.run(CLI + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# ------------------------------------------------------------------------------------ real files


def _sparse_stacks_for(table, root: Path, box: int) -> None:
    """Stacks where the particle file says they are, as big as it needs (sparse: zeros cost no disk),
    each image k holding the constant k + 1 in a centred square so crops can be checked."""
    d = table.data
    for path, idx in d.groupby(d["image_path"].astype(str), observed=True)["image_index"].max().items():
        f = root / path
        f.parent.mkdir(parents=True, exist_ok=True)
        with mrcfile.new_mmap(f, shape=(int(idx) + 1, box, box), mrc_mode=2, overwrite=True) as m:
            c = box // 2
            for k in range(int(idx) + 1):
                m.data[k, c - 8 : c + 8, c - 8 : c + 8] = k + 1
            m.voxel_size = 2.95


def test_restack_a_real_cryosparc_file(tmp_path):
    src = real_file("cryosparc_P12_J24_001_particles.cs")
    table = read_particles(src)
    assert table.data["image_path"].dtype.name == "category"  # what made restack crash before
    _sparse_stacks_for(table, tmp_path, 180)
    shutil.copy(src, tmp_path / "J24_particles.cs")
    r = run("restack", "J24_particles.cs", "--box", 64, "--out", "Restack", "--json", cwd=tmp_path)
    info = json.loads(r.stdout)
    assert info["n_particles"] == len(table) == 2019 and info["box_px"] == 64
    out = read_particles(tmp_path / "Restack" / "particles.cs")
    assert len(out) == 2019 and set(out.data["box_px"]) == {64}
    # particle i is image image_index[i] of its stack: the crop keeps its constant in the centre
    for i in (0, 1000, 2018):
        row = out.data.iloc[i]
        with mrcfile.open(
            tmp_path / str(row["image_path"]), permissive=True
        ) as m:  # relative to where it ran, as RELION expects
            assert m.data[int(row["image_index"]), 32, 32] == table.data["image_index"].iloc[i] + 1
    # the input is untouched
    assert (tmp_path / "J24_particles.cs").read_bytes() == src.read_bytes()


def test_relion30_star_takes_its_box_from_the_stack(tmp_path):
    star = real_file("relion31.star")
    stack = real_file("relion31.mrcs")
    t = read_particles(star)
    # the same particles as RELION 3.0 writes them: one block, no optics table, no rlnImageSize
    d = t.data
    block = pd.DataFrame(
        {
            "rlnImageName": [f"{int(i) + 1:06d}@{stack}" for i in d["image_index"]],
            "rlnDefocusU": d["defocus_u_a"],
            "rlnDefocusV": d["defocus_v_a"],
            "rlnDefocusAngle": d["defocus_angle_deg"],
            "rlnVoltage": d["voltage_kv"],
            "rlnSphericalAberration": d["cs_mm"],
            "rlnAmplitudeContrast": d["amplitude_contrast"],
            "rlnDetectorPixelSize": 14.0,
            "rlnMagnification": 14.0 * 1e4 / float(d["pixel_size_a"].iloc[0]),
        }
    )
    write_star_blocks(tmp_path / "old.star", {"images": block})
    assert read_particles(tmp_path / "old.star").source_format == "relion3.0"
    info = json.loads(run("inspect", "old.star", "--json", cwd=tmp_path).stdout)
    assert info["box_px"] == 256
    r = run("restack", "old.star", "--box", 128, "--out", "R", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["box_px"] == 128 and json.loads(r.stdout)["n_particles"] == 5
    # without the stack: one sentence that says what to add
    (tmp_path / "gone").mkdir()
    write_star_blocks(
        tmp_path / "gone" / "old.star",
        {"images": block.assign(rlnImageName=[f"{i:06d}@nowhere.mrcs" for i in range(1, 6)])},
    )
    bad = run("restack", "gone/old.star", "--box", 128, "--out", "R2", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "rlnImageSize" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------- advise


def test_user_boxes_are_rows_with_every_column():
    rng = np.random.default_rng(0)
    n = 5000
    x, y = rng.uniform(0, 5760, n), rng.uniform(0, 4092, n)
    df = rng.uniform(18000, 30000, n)
    adv = advise_box(
        diameter_a=220,
        resolution_a=3.7,
        pixel_size_a=1.06,
        defocus_u_a=df + 50,
        defocus_v_a=df - 50,
        voltage_kv=300,
        cs_mm=2.7,
        coord_x_px=x,
        coord_y_px=y,
        micrograph_width_px=5760,
        micrograph_height_px=4092,
        user_boxes_px=(280, 576, 281),
    )
    by = {c.box_px: c for c in adv.candidates}
    assert {280, 576, 281} <= set(by) and [c.box_px for c in adv.candidates] == sorted(by)
    assert by[280].user_box and by[576].user_box and by[281].user_box
    assert not any(c.user_box for c in adv.candidates if c.box_px not in (280, 281, 576))
    for b in (280, 281, 576):  # odd boxes too: edge loss counted exactly as extraction cuts
        direct = edge_clipped(x, y, micrograph_width_px=5760, micrograph_height_px=4092, box_px=b).mean()
        assert by[b].edge_loss_fraction == pytest.approx(direct)
    # cryoSPARC's default window (0.85 / 0.99 of the box) in Å, worked by hand: 280 px x 1.06 Å = 296.8 Å
    assert by[280].cryosparc_window_inner_a == pytest.approx(0.85 * 296.8)
    assert by[576].cryosparc_window_outer_a == pytest.approx(0.99 * 576 * 1.06)
    assert cryosparc_window_diameters_a(576, 1.06) == pytest.approx((518.976, 604.4544))
    # fractions that keep the 280 px window (the smallest user box) in Å at 576 px
    assert adv.window_reference_box_px == 280
    assert by[576].cryosparc_inner_fraction_same_a == pytest.approx(0.85 * 280 / 576)
    assert by[576].cryosparc_inner_fraction_same_a * 576 * 1.06 == pytest.approx(by[280].cryosparc_window_inner_a)


def test_advise_boxes_cli_marks_hers_and_the_files_box(tmp_path):
    run("example", "--out", "ex", cwd=tmp_path)
    d = json.loads(
        run(
            "advise",
            "ex/example_particles.cs",
            "--diameter",
            220,
            "--resolution",
            3.7,
            "--boxes",
            "280,576",
            "--json",
            cwd=tmp_path,
        ).stdout
    )
    hers = {c["box_px"] for c in d["candidates"] if c["user_box"]}
    assert {280, 576} <= hers and d["file_box_px"] in hers
    assert all(c["edge_loss_fraction"] is not None for c in d["candidates"])
    text = run(
        "advise", "ex/example_particles.cs", "--diameter", 220, "--resolution", 3.7, "--boxes", "280", cwd=tmp_path
    ).stdout
    assert "yours" in text and "cryoSPARC's real-space window" in text
    bad = run(
        "advise",
        "ex/example_particles.cs",
        "--diameter",
        220,
        "--resolution",
        3.7,
        "--boxes",
        "28o",
        cwd=tmp_path,
        check=False,
    )
    assert bad.returncode == 2 and "--boxes" in bad.stderr


# --------------------------------------------------------------------------------- FSC readers


def _cryosparc_fsc_txt(path: Path, box: int, pixel_size_a: float, resolution_a: float) -> None:
    s = np.arange(box // 2 + 1)
    f = 1.0 / (1.0 + np.exp((s / (box * pixel_size_a) - 1.0 / resolution_a) * 80))
    lines = ["wave_number,fsc_nomask,fsc_loosemask,fsc_tightmask,fsc_noisesub"]
    lines += [f"{a},{0.9 * b:.6f},{b:.6f},{b:.6f},{b:.6f}" for a, b in zip(s, f)]
    path.write_text("\n".join(lines) + "\n")


def test_per_run_box_and_the_shell_check(tmp_path):
    _cryosparc_fsc_txt(tmp_path / "J80_fsc.txt", 576, 1.06, 4.1)
    _cryosparc_fsc_txt(tmp_path / "J50_fsc.txt", 280, 1.06, 3.6)
    spec = parse_run_spec("cs280=J50_fsc.txt@280:1.06")
    assert (spec.label, spec.path.name, spec.box_px, spec.pixel_size_a) == ("cs280", "J50_fsc.txt", 280, 1.06)
    assert parse_run_spec("J50_fsc.txt@280") == parse_run_spec("J50_fsc.txt@280").__class__(
        None, Path("J50_fsc.txt"), 280, None
    )
    assert parse_run_spec("run_model.star").box_px is None
    # the command: one --box for both files is refused for the file it contradicts
    bad = run(
        "compare",
        "cs576=J80_fsc.txt",
        "cs280=J50_fsc.txt",
        "--box",
        576,
        "--pixel-size",
        1.06,
        cwd=tmp_path,
        check=False,
    )
    assert bad.returncode == 2 and "J50_fsc.txt" in bad.stderr and "280" in bad.stderr and "Traceback" not in bad.stderr
    d = json.loads(
        run("compare", "cs576=J80_fsc.txt@576:1.06", "cs280=J50_fsc.txt@280:1.06", "--json", cwd=tmp_path).stdout
    )
    got = {r["label"]: r["resolution_0.143_interpolated_a"] for r in d["runs"]}
    assert {r["label"]: r["box_px"] for r in d["runs"]} == {"cs576": 576, "cs280": 280}
    # the logistic curve crosses 0.143 where (k - 1/d) * 80 = ln(1/0.143 - 1)
    for label, d_true in (("cs280", 3.6), ("cs576", 4.1)):
        k = 1 / d_true + np.log(1 / 0.143 - 1) / 80
        assert got[label] == pytest.approx(1 / k, abs=0.02)
    # a global --box still serves text files that agree with it
    ok = json.loads(run("compare", "J80_fsc.txt", "--box", 576, "--pixel-size", 1.06, "--json", cwd=tmp_path).stdout)
    assert ok["runs"][0]["box_px"] == 576


def test_a_curve_that_never_crosses_is_limited_by_nyquist(tmp_path):
    s = np.arange(101)
    (tmp_path / "flat.txt").write_text("wave_number,fsc_noisesub\n" + "\n".join(f"{a},{0.9:.3f}" for a in s) + "\n")
    c = load_curve(f"{tmp_path / 'flat.txt'}@200:1.5")
    sm = c.summary()
    assert sm["limited_0.143"] and resolution_text(sm) == "limited by Nyquist (≤ 3.00 Å)"
    r = subprocess.run(CLI + ["compare", f"{tmp_path / 'flat.txt'}@200:1.5"], capture_output=True, text=True)
    assert "limited by Nyquist" in r.stdout


def test_postprocess_star_and_cryosparc_text_in_report(tmp_path):
    from cryobox.jobs.report import build_report

    # a postprocess.star as relion_postprocess writes it (written here by cryobox fsc --star)
    rng = np.random.default_rng(1)
    from cryobox.core.simulate import default_particle_map

    vol = default_particle_map(48, 5.0)
    for h in (1, 2):
        write_mrc(
            tmp_path / f"h{h}.mrc",
            vol + 0.5 * vol.std() * rng.standard_normal(vol.shape).astype(np.float32),
            pixel_size_a=5.0,
        )
    run("fsc", "h1.mrc", "h2.mrc", "--star", "postprocess.star", cwd=tmp_path)
    _cryosparc_fsc_txt(tmp_path / "J50_fsc.txt", 280, 1.06, 3.6)
    run("example", "--out", "ex", cwd=tmp_path)
    info = build_report(
        tmp_path / "ex" / "example_particles.cs",
        out=tmp_path / "r.html",
        diameter_a=220,
        resolution_a=3.7,
        fsc=[str(tmp_path / "postprocess.star"), f"cs280={tmp_path / 'J50_fsc.txt'}@280:1.06"],
    )
    html = (tmp_path / "r.html").read_text()
    assert 'id="fsc"' in html and "cs280" in html and "fsc_noisesub" in html and info["figures"] >= 6


# ---------------------------------------------------------------------------- smaller things


def test_outputs_honour_the_umask(tmp_path):
    script = (
        "import os, sys; os.umask(int(sys.argv[1], 8)); "
        "from cryobox.io.mrc import write_mrc; import numpy as np; "
        "write_mrc(sys.argv[2], np.zeros((4, 4, 4), np.float32), pixel_size_a=1.0)"
    )
    for umask, mode in (("022", 0o644), ("002", 0o664), ("077", 0o600)):
        f = tmp_path / f"m{umask}.mrc"
        subprocess.run([sys.executable, "-c", script, umask, str(f)], check=True)
        assert stat.S_IMODE(f.stat().st_mode) == mode
    # a whole command's outputs, the way a lab-mate sees them
    env = dict(os.environ)
    r = subprocess.run(
        ["bash", "-c", "umask 022 && exec " + " ".join(CLI) + " example --out ex"], cwd=tmp_path, env=env
    )
    assert r.returncode == 0
    for f in (tmp_path / "ex").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_simulated_micrographs_look_real_and_stacks_have_half_sets(tmp_path):
    from cryobox.core.extract import window_particles

    run(
        "simulate",
        "--out",
        "sim",
        "--micrographs",
        1,
        "--size",
        "600x600",
        "--per-micrograph",
        8,
        "--pixel-size",
        5.0,
        "--snr",
        100,
        "--defocus-min",
        10000,
        "--defocus-max",
        12000,
        cwd=tmp_path,
    )
    mic = mrcfile.open(tmp_path / "sim" / "Micrographs" / "mic0000.mrc").data.astype(np.float64)
    t = read_particles(tmp_path / "sim" / "particles.star")
    boxes = window_particles(
        mic.astype(np.float32), t.data["coord_x_px"].to_numpy(float), t.data["coord_y_px"].to_numpy(float), 24
    )
    # particles dark on a light background: the centre of each box is below the micrograph's mean
    assert np.mean(boxes[:, 10:14, 10:14]) < mic.mean() - 0.1 * mic.std()
    # the README's simulate -> extract --invert gives white particles
    run(
        "extract",
        "sim/micrographs.star",
        "--coords-suffix",
        "_pick.star",
        "--box",
        48,
        "--invert",
        "--out",
        "ext",
        cwd=tmp_path,
    )
    ext = read_particles(tmp_path / "ext" / "particles.star")
    st = mrcfile.open(tmp_path / str(ext.data["image_path"].iloc[0])).data
    assert st[:, 20:28, 20:28].mean() > st.mean()
    # a simulated stack carries half sets, so reconstruct takes it as it is (both formats)
    run("simulate", "--out", "st", "--stack", "--n", 40, "--box", 32, "--pixel-size", 8.0, cwd=tmp_path)
    s = read_particles(tmp_path / "st" / "particles.star").data
    assert sorted(s["rlnRandomSubset"].unique()) == [1, 2]
    assert sorted(read_particles(tmp_path / "st" / "particles.cs").data["alignments3D/split"].unique()) == [0, 1]
    run("reconstruct", "st/particles.cs", "--out", "rec", cwd=tmp_path)
    assert (tmp_path / "rec" / "half1_unfil.mrc").is_file()


def test_bg_diameter_uses_the_micrographs_pixel_size(tmp_path):
    from cryobox.io.particles import ParticleTable
    from cryobox.jobs.extract import background_radius_px

    write_mrc(tmp_path / "mic.mrc", np.zeros((64, 64), np.float32), pixel_size_a=1.06)
    d = pd.DataFrame(
        {
            "micrograph_name": ["mic.mrc"],
            "coord_x_px": [32.0],
            "coord_y_px": [32.0],
            "pixel_size_a": [2.12],
            "micrograph_pixel_size_a": [0.53],
            "rlnMicrographPixelSize": [1.06],
        }
    )
    table = ParticleTable(d, path=tmp_path / "p.star")
    # 200 Å over 1.06 Å/px micrograph pixels (not the movie's 0.53): radius 94.3 px in a 256 px box
    assert background_radius_px(table, 200.0, box_px=256, final_box_px=256, from_star=False) == pytest.approx(
        100 / 1.06
    )
    # rescaled 256 -> 128: radius in final pixels
    assert background_radius_px(table, 200.0, box_px=256, final_box_px=128, from_star=False) == pytest.approx(50 / 1.06)
    # without rlnMicrographPixelSize the micrograph's MRC header is used
    t2 = ParticleTable(d.drop(columns=["rlnMicrographPixelSize"]), path=tmp_path / "p.star")
    assert background_radius_px(t2, 200.0, box_px=256, final_box_px=256, from_star=False) == pytest.approx(100 / 1.06)


def test_fourier_rescale_stack_returns_the_pixel_size():
    from cryobox.core.extract import fourier_rescale_stack

    out, px = fourier_rescale_stack(np.zeros((2, 60, 60), np.float32), 45, pixel_size_a=1.06)
    assert out.shape == (2, 45, 45) and px == pytest.approx(1.06 * 60 / 45)


def test_sweep_progress_line_per_iteration(tmp_path):
    from cryobox.jobs.runqueue import progress_line as _progress_line

    lines = []
    report = _progress_line(lines.append, "[1/2] box280 repeat 1", 4)
    report(1, 12.5, 30.0)
    report(2, None, 60.0)
    assert lines[0] == "    [1/2] box280 repeat 1: iteration 1, 12.50 Å, 30 s, about 90 s left (stops at iteration 4)"
    assert "resolution not yet known" in lines[1] and "about 60 s left" in lines[1]


def test_advise_and_report_show_the_same_edge_losses(tmp_path):
    """One reading of the file (advise_files): the micrograph sizes come from the micrographs'
    headers for advise and report alike (a RELION STAR file does not record them)."""
    import re

    from cryobox.jobs.report import build_report

    run(
        "simulate",
        "--out",
        "sim",
        "--micrographs",
        1,
        "--size",
        "700x500",
        "--per-micrograph",
        12,
        "--pixel-size",
        5.0,
        cwd=tmp_path,
    )
    d = json.loads(
        run(
            "advise", "sim/particles.star", "--diameter", 220, "--resolution", 14, "--boxes", 96, "--json", cwd=tmp_path
        ).stdout
    )
    edges = {c["box_px"]: c["edge_loss_fraction"] for c in d["candidates"]}
    assert all(v is not None for v in edges.values()) and edges[96] > 0
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        build_report(Path("sim/particles.star"), out=Path("r.html"), diameter_a=220, resolution_a=14, boxes_px=(96,))
    finally:
        os.chdir(cwd)
    html = (tmp_path / "r.html").read_text()
    rows = re.findall(r'<tr class="[^"]*" data-box="(\d+)">((?:<td>[^<]*</td>)+)</tr>', html)
    got = {int(b): re.findall(r"<td>([^<]*)</td>", cells)[5] for b, cells in rows}
    assert set(got) == set(edges)
    for b, v in edges.items():
        assert got[b] == f"{100 * v:.1f}%"


def test_figures_have_no_overlapping_ticks_and_a_legend_entry_per_line_style():
    from matplotlib.figure import Figure

    from cryobox.report import plots

    rng = np.random.default_rng(3)
    df = rng.uniform(18000, 30000, 3000)
    adv = advise_box(
        diameter_a=220,
        resolution_a=3.7,
        pixel_size_a=1.06,
        defocus_u_a=df,
        defocus_v_a=df,
        voltage_kv=300,
        cs_mm=2.7,
        user_boxes_px=(280, 281, 282, 576),
    )
    fig = Figure(figsize=(10, 5.5))
    ax = fig.add_subplot(111)
    plots.plot_advice(ax, adv)
    ticks = ax.get_xticks()
    span = ticks.max() - ticks.min()
    assert np.all(np.diff(ticks) >= 0.018 * span - 1e-9)  # 280, 281, 282 do not print on top of each other
    styles = {(ln.get_linestyle(), ln.get_color()) for ln in ax.get_lines()}
    labelled = {(h.get_linestyle(), h.get_color()) for h in ax.get_legend().legend_handles}
    assert styles <= labelled
    # the top resolution axis of an FSC plot: labels at least 5% of the axis apart
    fig2 = Figure()
    ax2 = fig2.add_subplot(111)
    ax2.plot([0, 0.47], [1, 0])
    plots._fsc_axes_common(ax2, 0.47)
    top = [a for a in fig2.axes if a is not ax2][0]
    assert np.all(np.diff(np.sort(top.get_xticks())) >= 0.05 * 0.47 - 1e-9)


def test_report_cost_baseline_is_the_tables(tmp_path):
    from cryobox.io.particles import write_cs
    from cryobox.jobs.example import example_particles
    from cryobox.jobs.report import build_report

    cs = write_cs(tmp_path / "p.cs", example_particles(n_particles=2000, n_micrographs=20))
    info = build_report(cs, out=tmp_path / "r.html", diameter_a=220, resolution_a=3.7, boxes_px=(280,))
    html = (tmp_path / "r.html").read_text()
    base = info["data"]["cost_base_px"]
    assert f"cost per image (vs {base} px)" in html and f"cost per image vs {base} px (as in the table)" in html
