"""cryobox as a RELION External job (cli/relion_job.py), driven as RELION's pipeliner drives it.

The command lines are built as ``RelionJob::getCommandsExternalJob`` (RELION 3.1.3,
src/pipeline_jobs.cpp) builds them; where relion_pipeliner is installed (CI installs RELION) the
real pipeliner adds and runs the jobs, reads the node file into default_pipeline.star, and RELION's
own tools read the outputs back."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cryobox.cli.relion_job import (
    ABORT_NOW,
    EXIT_ABORTED,
    EXIT_FAILURE,
    EXIT_SUCCESS,
    OUTPUT_NODES,
    ExternalError,
    _AbortWatch,
    cryobox_command,
    parse_external,
    run_external,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
PIPELINER = shutil.which("relion_pipeliner")
needs_relion = pytest.mark.skipif(PIPELINER is None, reason="RELION is not installed (relion_pipeliner)")
EMPTY_PIPELINE = "\n# version 30001\n\ndata_pipeline_general\n\n_rlnPipeLineJobCounter                       1\n\n"


def relion_31_command(fn_exe: str, out: str, inputs: dict, params: list[tuple[str, str]], threads=1, other="") -> str:
    """The command line RELION 3.1's pipeliner runs for an External job (its order and spacing)."""
    cmd = fn_exe + " --o " + out
    for option, flag in (("in_mov", "--in_movies"), ("in_mic", "--in_mics"), ("in_part", "--in_parts")):
        if inputs.get(option):
            cmd += f" {flag} {inputs[option]}"
    for option, flag in (("in_coords", "--in_coords"), ("in_3dref", "--in_3dref"), ("in_mask", "--in_mask")):
        if inputs.get(option):
            cmd += f" {flag} {inputs[option]}"
    for label, value in params:
        cmd += f" --{label} {value}"
    cmd += f" --j {threads} {other}"
    if "relion_" in cmd:
        cmd += " --pipeline_control " + out
    return cmd


def _half_maps(root: Path, n: int = 40) -> str:
    import scipy.ndimage as ndi

    from cryobox.io.mrc import write_mrc

    rng = np.random.default_rng(3)
    x = np.indices((n, n, n), dtype=np.float32) - n // 2
    r = np.sqrt((x**2).sum(0))
    s = np.exp(-((r / (n / 6)) ** 2)) + 2 * ndi.gaussian_filter(rng.standard_normal((n, n, n)), 1.2) * (r < n / 3)
    (root / "Refine3D" / "job010").mkdir(parents=True, exist_ok=True)
    for h in (1, 2):
        noise = 0.5 * s.std() * rng.standard_normal(s.shape)
        write_mrc(
            root / f"Refine3D/job010/run_half{h}_class001_unfil.mrc", (s + noise).astype(np.float32), pixel_size_a=2.0
        )
    return "Refine3D/job010/run_half1_class001_unfil.mrc"


def _exe(verb: str, *, module: bool = False) -> str:
    script = shutil.which("cryobox-relion")
    if module or script is None:  # `relion_` in the line: RELION appends --pipeline_control
        return f"{sys.executable} -m cryobox.cli.relion_job {verb}"
    return f"{script} {verb}"


def _pipeliner(project: Path, job_type_options: str) -> str:
    """Add an External job as `relion_pipeliner --addJob` does and run it; returns its folder."""
    r = subprocess.run(
        [PIPELINER, "--addJob", "External", "--addJobOptions", job_type_options],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    counter = int((project / "default_pipeline.star").read_text().split("_rlnPipeLineJobCounter")[1].split()[0])
    job = f"External/job{counter - 1:03d}/"
    r = subprocess.run(
        [PIPELINER, "--RunJobs", job, "--sec_wait_after", "0"], cwd=project, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return job


def _status(project: Path, job: str) -> int:
    """The job's status in default_pipeline.star (RELION 3.1: 2 finished, 3 failed, 4 aborted)."""
    for line in (project / "default_pipeline.star").read_text().splitlines():
        f = line.split()
        if len(f) == 4 and f[0] == job:
            return int(f[3])
    raise AssertionError(f"{job} not in the pipeline")


def _nodes(project: Path) -> dict[str, int]:
    text = (project / "default_pipeline.star").read_text().split("data_pipeline_nodes")[1].split("data_")[0]
    return {f[0]: int(f[1]) for f in (line.split() for line in text.splitlines()) if len(f) == 2 and "/" in f[0]}


# ------------------------------------------------------------------ the command line, as RELION writes it


def test_relions_command_line_is_read_as_relion_writes_it():
    line = relion_31_command(
        "cryobox-relion restack",
        "External/job012/",
        {"in_part": "Extract/job007/particles.star", "in_mask": "MaskCreate/job020/mask.mrc"},
        [("box", "256"), ("premultiply", "Yes"), ("bg_radius", "100")],
        threads=4,
    )
    assert line.endswith("--j 4 ")  # RELION's empty "other arguments" leave a trailing space
    job = parse_external(shlex.split(line)[1:])
    assert job.verb == "restack" and job.out == "External/job012/" and job.threads == 4
    assert job.in_parts == "Extract/job007/particles.star" and job.in_mask == "MaskCreate/job020/mask.mrc"
    assert job.params == ["--box", "256", "--premultiply", "--bg-radius", "100"]
    args, nodes, _ = cryobox_command(job)
    assert args == ["restack", "Extract/job007/particles.star", "--out", "External/job012/", "--box", "256"] + [
        "--premultiply",
        "--bg-radius",
        "100",
        "--jobs",
        "4",
    ]
    assert [(n.name, n.type_31) for n in nodes] == [("External/job012/particles.star", 3)]


def test_the_verb_as_a_parameter_pipeline_control_and_no_values():
    line = relion_31_command(
        "/opt/relion_tools/cryobox-relion",  # a path with relion_ in it: RELION appends --pipeline_control
        "External/job003",
        {"in_3dref": "Refine3D/job010/run_half1_class001_unfil.mrc"},
        [("verb", "fsc"), ("randomise_at", "8"), ("force_mask", "no")],
    )
    assert "--pipeline_control External/job003" in line
    job = parse_external(shlex.split(line)[1:])
    assert job.verb == "fsc" and job.out == "External/job003/"
    args, nodes, _ = cryobox_command(job)
    assert args[:3] == [
        "fsc",
        "Refine3D/job010/run_half1_class001_unfil.mrc",
        "Refine3D/job010/run_half2_class001_unfil.mrc",
    ]
    assert "--auto-mask" in args and "--randomise-at" in args and "--force-mask" not in args
    assert {n.name: n.type_31 for n in nodes} == {
        "External/job003/fsc.star": 14,
        "External/job003/logfile.pdf": 13,
        "External/job003/mask.mrc": 7,
    }
    # without a mask the FSC STAR is no PostProcess node (CtfRefine and Polish need its mask)
    unmasked = parse_external(shlex.split(line.replace("--verb fsc", "--verb fsc --no_mask yes"))[1:])
    args, nodes, _ = cryobox_command(unmasked)
    assert "--auto-mask" not in args and {n.name for n in nodes} == {"External/job003/logfile.pdf"}


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--in_parts", "p.star", "--j", "1"], "no `--o`"),
        (["--o", "External/job001/", "--j", "1"], "no verb"),
        (["sharpen", "--o", "External/job001/"], "not a verb"),
        (["fsc", "--o", "External/job001/", "--in_3dref"], "needs a value"),
    ],
)
def test_a_wrong_command_line_is_one_sentence(argv, words):
    with pytest.raises(ExternalError, match=words):
        parse_external(argv)


def test_a_job_without_its_input_fails_with_the_field_to_fill(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "External/job001").mkdir(parents=True)
    assert run_external(["explain", "--o", "External/job001/", "--j", "1"]) == 2
    assert "needs input particles: fill that field" in capsys.readouterr().err
    assert (tmp_path / "External/job001" / EXIT_FAILURE).exists()
    assert not (tmp_path / "External/job001" / EXIT_SUCCESS).exists()


def test_the_abort_watch_stops_a_running_command(tmp_path):
    """RELION's Abort creates RELION_JOB_ABORT_NOW while the job runs: the watch interrupts it."""
    threading.Timer(0.3, lambda: (tmp_path / ABORT_NOW).touch()).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with _AbortWatch(tmp_path, every_s=0.05) as watch:
            while time.monotonic() - t0 < 10:
                time.sleep(0.01)
    assert watch.asked and time.monotonic() - t0 < 5


# ------------------------------------------------------------------ the real pipeliner


@pytest.fixture
def project(tmp_path):
    (tmp_path / "default_pipeline.star").write_text(EMPTY_PIPELINE)
    return tmp_path


@needs_relion
def test_fsc_as_an_external_job_of_relions_pipeliner(project):
    half1 = _half_maps(project)
    job = _pipeliner(project, f"fn_exe == {_exe('fsc')};in_3dref == {half1}")
    assert _status(project, job) == 2  # finished, as RELION's pipeliner read RELION_JOB_EXIT_SUCCESS
    assert (project / job / EXIT_SUCCESS).exists()
    nodes = _nodes(project)
    assert nodes[job + "fsc.star"] == 14 and nodes[job + "logfile.pdf"] == 13 and nodes[job + "mask.mrc"] == 7
    out = (project / job / "run.out").read_text()
    assert "cryobox-relion fsc: cryobox fsc" in out and "resolution" in out  # the log where RELION shows it
    assert (project / job / "logfile.pdf").read_bytes().startswith(b"%PDF")
    # RELION's own tools read the node file and the FSC STAR back
    r = subprocess.run(
        [
            "relion_star_printtable",
            job + OUTPUT_NODES,
            "data_output_nodes",
            "rlnPipeLineNodeName",
            "rlnPipeLineNodeType",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and job + "fsc.star 14" in r.stdout
    # what CtfRefine and Polish read from a PostProcess node (ReferenceMap::read, RELION 3.1): the
    # half maps and the mask in data_general, the spectral index and the corrected FSC in data_fsc
    r = subprocess.run(
        [
            "relion_star_printtable",
            job + "fsc.star",
            "data_fsc",
            "rlnSpectralIndex",
            "rlnFourierShellCorrelationCorrected",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    rows = np.array(r.stdout.split(), dtype=float).reshape(-1, 2)
    assert r.returncode == 0 and len(rows) == 21 and rows[0, 1] > 0.99  # 40 px box: shells 0-20
    general = (project / job / "fsc.star").read_text().split("data_fsc")[0]
    assert "_rlnUnfilteredMapHalf2 Refine3D/job010/run_half2_class001_unfil.mrc" in general
    assert f"_rlnMaskName {job}mask.mrc" in general


@needs_relion
def test_restack_premultiply_and_crop_of_real_relion_files_through_the_pipeliner(project):
    if not (REAL / "relion31.star").exists():
        pytest.skip("../shared/data/real is not here")
    for name in ("relion31.star", "relion31.mrcs"):
        shutil.copy(REAL / name, project / name)
    opts = f"fn_exe == {_exe('restack', module=True)};in_part == relion31.star;"
    opts += "param1_label == box;param1_value == 128;param2_label == premultiply;param2_value == Yes"
    job = _pipeliner(project, opts)
    assert _status(project, job) == 2, (project / job / "run.err").read_text()
    assert _nodes(project)[job + "particles.star"] == 3
    r = subprocess.run(
        [
            "relion_star_printtable",
            job + "particles.star",
            "data_optics",
            "rlnImageSize",
            "rlnCtfDataAreCtfPremultiplied",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.split() == ["128", "1"]
    r = subprocess.run(
        ["relion_image_handler", "--i", job + "particles.star", "--stats"], cwd=project, capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.count("128 x 128") >= 5


@needs_relion
def test_a_failed_job_is_failed_in_the_pipeline_with_its_sentence_in_run_err(project):
    _half_maps(project)
    shutil.copy(project / "Refine3D/job010/run_half1_class001_unfil.mrc", project / "map.mrc")
    job = _pipeliner(project, f"fn_exe == {_exe('fsc')};in_3dref == map.mrc")
    assert _status(project, job) == 3
    err = (project / job / "run.err").read_text().strip()
    assert err.count("\n") == 0 and "map.mrc" in err and "`half2`" in err and "Traceback" not in err
    assert not (project / job / OUTPUT_NODES).exists()


def test_an_aborted_job_continued_by_relion_ends_as_one_never_stopped(tmp_path, monkeypatch):
    """Aborted (RELION_JOB_ABORT_NOW), then continued as RELION continues a job (the exit and abort
    files removed, the same command again): the outputs and node file of an uninterrupted run."""
    if not (REAL / "relion31.star").exists():
        pytest.skip("../shared/data/real is not here")
    for name in ("relion31.star", "relion31.mrcs"):
        shutil.copy(REAL / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(relion_31_command("restack", "External/job001/", {"in_part": "relion31.star"}, [("box", "64")]))
    folder = tmp_path / "External/job001"
    folder.mkdir(parents=True)
    (folder / ABORT_NOW).touch()
    assert run_external(argv) == 130
    assert (folder / EXIT_ABORTED).exists() and not (folder / OUTPUT_NODES).exists()
    for name in (ABORT_NOW, EXIT_ABORTED):  # what RELION removes before it continues a job
        (folder / name).unlink()
    assert run_external(argv) == 0
    assert (folder / EXIT_SUCCESS).exists() and (folder / "particles.star").exists()
    assert "External/job001/particles.star 3 " in (folder / OUTPUT_NODES).read_text()
    # run again over its own finished outputs (by hand, without the pipeliner's clean-up): its
    # own exit file and node list are replaced, nothing else is touched
    (folder / "note.txt").write_text("RELION's note")
    assert run_external(argv) == 0
    assert (folder / "note.txt").read_text() == "RELION's note" and (folder / EXIT_SUCCESS).exists()


def test_judge_report_and_advise_command_lines():
    judge = parse_external(
        shlex.split(
            relion_31_command(
                "cryobox-relion judge",
                "External/job020/",
                {"in_part": "Extract/job007/particles.star", "in_mask": "MaskCreate/job020/mask.mrc"},
                [("variants", "box280=Refine3D/job010/,Refine3D/job011/ box576=Refine3D/job012/,Refine3D/job013/")]
                + [("diameter", "220")],
            )
        )[1:]
    )
    args, nodes, pngs = cryobox_command(judge)
    assert args == [
        "judge",
        "box280=Refine3D/job010/,Refine3D/job011/",
        "box576=Refine3D/job012/,Refine3D/job013/",
        "--out",
        "External/job020/",
        "--mask",
        "MaskCreate/job020/mask.mrc",
        "--particles",
        "Extract/job007/particles.star",
        "--diameter",
        "220",
    ]
    assert pngs == ["judge.png"] and [n.name for n in nodes] == ["External/job020/logfile.pdf"]
    with pytest.raises(ExternalError, match="parameter `variants`"):
        cryobox_command(parse_external(["judge", "--o", "External/job021/", "--j", "1"]))
    report = parse_external(["report", "--o", "External/job022", "--in_parts", "p.star", "--diameter", "220"])
    args, nodes, _ = cryobox_command(report)
    assert args == ["report", "p.star", "--out", "External/job022/report.html", "--diameter", "220"] and nodes == []
    advise = parse_external(["advise", "--o", "External/job023/", "--diameter", "220", "--resolution", "3.7"])
    args, nodes, _ = cryobox_command(advise)  # without particles: advise from the numbers given
    assert args[:3] == ["advise", "--plot", "External/job023/logfile.pdf"]


def test_diagnose_gathers_its_figures_into_relions_logfile_pdf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    half1 = _half_maps(tmp_path, n=32)
    (tmp_path / "External/job004").mkdir(parents=True)
    argv = shlex.split(relion_31_command("diagnose", "External/job004/", {"in_3dref": half1}, [("directions", "50")]))
    assert run_external(argv) == 0
    folder = tmp_path / "External/job004"
    pdf = (folder / "logfile.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 2
    nodes = (folder / OUTPUT_NODES).read_text()
    assert "External/job004/logfile.pdf 13 LogFile.pdf.cryobox 1" in nodes
    assert "External/job004/mask.mrc 7 Mask3D.mrc 1" in nodes
