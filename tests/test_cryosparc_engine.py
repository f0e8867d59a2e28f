"""The cryoSPARC engine against a stand-in project with cryosparc-tools' calls (create_job,
find_job; a job's queue, refresh, status, kill and dir): no cryoSPARC instance is licensed here.

The stand-in behaves as cryoSPARC's scheduler does as far as the engine relies on it: a queued job
starts once its parents have completed, import jobs complete at once, a refinement runs for one
look and then writes ``J<n>_003_volume_map_half_A/B.mrc`` (the imported reference plus seeded
noise) and ``J<n>_003_particles.cs`` into its folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cryobox.engines import EngineError
from cryobox.engines.cryosparc import STATES, CryosparcEngine, CryosparcLauncher
from cryobox.engines.launch import Job, RunCommand
from cryobox.io.mrc import read_mrc, write_mrc
from cryobox.io.particles import read_particles, write_cs
from cryobox.jobs.simulate import SimulationSettings, load_density, simulate_stack
from cryobox.jobs.sweep import SweepSettings, run_sweep


class StandInJob:
    def __init__(self, project, uid, type, connections, params, title):
        self.project, self.uid, self.type = project, uid, type
        self.connections, self.params, self.title = dict(connections), dict(params), title
        self.status = "building"
        self.looks = 0

    def dir(self):
        return self.project.root / self.uid

    def queue(self, lane=None):
        self.lane = lane
        self.status = "queued"

    def kill(self):
        self.status = "killed"

    def refresh(self):
        if self.project.hold and not self.type.startswith("import_"):
            return self  # the server has no free GPU: the refinements wait
        parents = [self.project.jobs[uid] for uid, _ in self.connections.values()]
        if self.status == "queued" and all(p.status == "completed" for p in parents):
            if self.type in self.project.failing:
                self.status = "failed"
            elif self.type.startswith("import_"):
                self.status = "completed"
            else:
                self.status = "running"
        elif self.status == "running":
            self._finish()
            self.status = "completed"
        return self

    def _finish(self):
        vol_job = self.project.jobs[self.connections["volume"][0]]
        ref, px = read_mrc(Path(vol_job.params["volume_blob_path"]))
        rng = np.random.default_rng(len(self.project.jobs) + int(self.uid[1:]))
        self.dir().mkdir(parents=True)
        for half in ("A", "B"):
            noisy = ref + 0.05 * rng.standard_normal(ref.shape).astype(np.float32)
            write_mrc(self.dir() / f"{self.uid}_003_volume_map_half_{half}.mrc", noisy, pixel_size_a=px)
        parts_job = self.project.jobs[self.connections["particles"][0]]
        table = read_particles(Path(parts_job.params["particle_meta_path"]))
        for col in ("angle_rot_deg", "angle_tilt_deg", "angle_psi_deg", "shift_x_a", "shift_y_a"):
            table.data[col] = rng.normal(0.0, 1.0, len(table.data))
        write_cs(self.dir() / f"{self.uid}_003_particles.cs", table)


class StandInProject:
    """cryosparc-tools' Project, as far as the engine uses it."""

    def __init__(self, root: Path, failing=()):
        self.uid = "P3"
        self.root = root
        self.jobs: dict[str, StandInJob] = {}
        self.failing = set(failing)
        self.workspaces: set[str] = set()
        self.hold = False

    def create_job(self, workspace_uid, type, connections={}, params={}, title=None):
        self.workspaces.add(workspace_uid)
        for uid, output in connections.values():
            assert uid in self.jobs and output in ("imported_particles", "imported_volume_1"), (uid, output)
        job = StandInJob(self, f"J{len(self.jobs) + 1}", type, connections, params, title)
        self.jobs[job.uid] = job
        return job

    def find_job(self, job_uid):
        return self.jobs[job_uid]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("csdata")
    density, _ = load_density(map_path=None, model_path=None, pixel_size_a=8.0, box_px=48)
    settings = SimulationSettings(pixel_size_a=8.0, defocus_min_a=20000, defocus_max_a=30000, snr=0.5, seed=2)
    simulate_stack(root / "sim", density, n_particles=40, settings=settings)
    return root / "sim"


def _sweep(stack: Path, out: Path, engine: CryosparcEngine, **kw) -> dict:
    """Two boxes, two repeats of each, on the stand-in server."""
    ref, px = read_mrc(stack / "true_map.mrc")
    settings = SweepSettings(boxes_px=(32, 40), particle_diameter_a=200.0, repeats=2, ini_high_a=30.0)
    return run_sweep(
        read_particles(stack / "particles.star"),
        settings,
        reference=ref,
        reference_pixel_size_a=px,
        out=out,
        engine=engine,
        launcher=engine.launcher(),
        poll_s=0.01,
        plot=False,
        **kw,
    )


def test_a_sweep_runs_as_cryosparc_jobs(stack, tmp_path, monkeypatch):
    """Every run becomes an Import Particles job per arm, one Import Volumes job per reference
    (shared by the repeats) and a Non-uniform Refinement connected to both; the half maps come
    from the refinement's folder, its particles .cs gives the poses, and a second sweep reads every
    run back instead of queueing again."""
    monkeypatch.chdir(tmp_path)
    project = StandInProject(tmp_path / "P3")
    engine = CryosparcEngine(project, "W1", lane="gpu")
    _, px = read_mrc(stack / "true_map.mrc")
    lines = []
    d = _sweep(stack, tmp_path / "sw", engine, log=lines.append)
    by_type: dict[str, list[StandInJob]] = {}
    for job in project.jobs.values():
        by_type.setdefault(job.type, []).append(job)
    assert len(by_type["import_particles"]) == 2 and len(by_type["import_volumes"]) == 2  # one per box
    refines = by_type["nonuniform_refine_new"]
    assert len(refines) == 4 and all(j.status == "completed" and j.lane == "gpu" for j in refines)
    assert project.workspaces == {"W1"}
    for j in refines:
        assert j.params == {"refine_symmetry": "C1", "refine_res_init": 30.0, "refine_gs_resplit": True}
        particles = project.jobs[j.connections["particles"][0]].params
        assert particles["psize_A"] == pytest.approx(px) and Path(particles["particle_blob_path"]).is_dir()
        box = read_particles(Path(particles["particle_meta_path"])).data["box_px"].iloc[0]
        volume = project.jobs[j.connections["volume"][0]].params["volume_blob_path"]
        assert read_mrc(Path(volume))[0].shape == (box,) * 3  # the reference windowed to the run's box
    for v in d["variants"]:
        assert len(v["runs"]) == 2 and all(np.isfinite(v["interpolated_resolutions_a"]))
        assert all(r["half_maps_from"] == "cryosparc final half maps" for r in v["runs"])
    rec = json.loads(next((tmp_path / "sw" / "runs").glob("box32/rep1/cryosparc.json")).read_text())
    assert rec["project"] == "P3" and rec["job"] in project.jobs and len(rec["imports"]) == 2
    assert (tmp_path / "sw" / "runs" / "box32" / "rep1" / "poses.npy").exists()  # from the job's particles .cs
    assert any("queued in cryoSPARC as P3-J" in ln for ln in lines)
    n_jobs = len(project.jobs)
    again = _sweep(stack, tmp_path / "sw", engine, log=lambda s: None)
    assert len(project.jobs) == n_jobs and again["scheduler"]["read_back"] == 4


def test_an_interrupted_wait_re_attaches_to_its_cryosparc_jobs(stack, tmp_path, monkeypatch):
    """Ctrl-C while the jobs wait on the server leaves them there (a detached launcher) and says
    how to come back; the same sweep again re-attaches to every job instead of queueing it twice."""
    monkeypatch.chdir(tmp_path)
    project = StandInProject(tmp_path / "P3")
    project.hold = True
    engine = CryosparcEngine(project, "W1")

    def sweep(**kw):
        return _sweep(stack, tmp_path / "sw", engine, **kw)

    def interrupt_once_queued(rows):
        if sum(r["job_id"] is not None for r in rows) == 4:
            raise KeyboardInterrupt

    lines = []
    with pytest.raises(KeyboardInterrupt):
        sweep(status=interrupt_once_queued, log=lines.append)
    assert any("stopped waiting; 4 cryosparc job(s) go on" in ln for ln in lines)
    refines = [j for j in project.jobs.values() if j.type == "nonuniform_refine_new"]
    assert len(refines) == 4 and all(j.status == "queued" for j in refines)
    n_jobs = len(project.jobs)
    project.hold = False
    lines = []
    d = sweep(log=lines.append)
    assert len(project.jobs) == n_jobs and all(j.status == "completed" for j in refines)
    assert d["scheduler"]["reattached"] == 4 and d["scheduler"]["submitted"] == 0
    assert sum("re-attached to cryosparc job" in ln for ln in lines) == 4


def test_states_cancel_and_a_failed_import(tmp_path):
    """cryoSPARC's nine job states map to queued, running and ended; cancel kills the jobs named
    and nothing else; a refinement whose import failed has ended (it would wait forever), and its
    outcome is one sentence naming the failed job."""
    assert set(STATES.values()) == {"queued", "running", "ended"} and len(STATES) == 9
    project = StandInProject(tmp_path / "P3", failing={"import_particles"})
    engine = CryosparcEngine(project, "W1")
    launcher = engine.launcher()
    assert isinstance(launcher, CryosparcLauncher) and launcher.detached and launcher.capacity() is None
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    star, vol = tmp_path / "p.star", tmp_path / "ref.mrc"
    spec = {
        "run_dir": str(run_dir),
        "particles": {"particle_meta_path": str(star), "particle_blob_path": str(tmp_path), "psize_A": 2.0},
        "volume": {"volume_blob_path": str(vol)},
        "type": "homo_refine_new",
        "params": {},
        "title": "t",
    }
    job = Job("r", run_dir, RunCommand((), ("cryosparc", json.dumps(spec)), ranks=1, threads=1))
    job.job_id = launcher.submit(job)
    assert launcher.submitted_text(job) == f"queued in cryoSPARC as P3-{job.job_id}"
    for _ in range(3):  # the particle import fails: the refinement has ended
        states = launcher.states([job])
    assert states == {job.job_id: "ended"}
    with pytest.raises(EngineError, match="cryoSPARC job P3-J1 failed"):
        engine.outcome(run_dir, None, None)
    other = project.create_job("W1", "homo_refine_new")
    other.queue()
    launcher.cancel([job.job_id])
    assert project.jobs[job.job_id].status == "killed" and other.status == "queued"
