"""cryoSPARC as the sweep's engine, through cryosparc-tools.

cryoSPARC's server queues, follows and kills its own jobs, so this engine brings its own launcher
(``CryosparcLauncher``) instead of a command line for this machine or SLURM. It speaks to a
cryosparc-tools ``Project`` (``CryoSPARC(...).find_project("P3")``) through the calls below only,
each checked against cryosparc-tools' source (``cryosparc/project.py``, ``cryosparc/job.py``,
``cryosparc/spec.py``):

- ``project.create_job(workspace_uid, type, connections={...}, params={...}, title=...)`` -> a job
  with ``uid``, ``queue(lane)``, ``refresh()``, ``status``, ``kill()`` and ``dir()``;
- ``project.find_job(uid)``;
- the job states of ``JobStatus``: building, queued, launched, started, running, waiting,
  completed, killed, failed.

What a run is, in cryoSPARC's terms: an Import Particles job of the arm's particle STAR file
(``particle_meta_path``, ``particle_blob_path``, ``psize_A``: the names Scipion's cryoSPARC plugin
and other cryosparc-tools scripts use), an Import Volumes job of the reference (``volume_blob_path``;
output ``imported_volume_1``), both once per file and shared by the runs that use it, and the
refinement job (default Non-uniform Refinement, ``nonuniform_refine_new``; inputs ``particles``
and ``volume``; parameters ``refine_symmetry``, ``refine_res_init`` and ``refine_gs_resplit``, so
that every repeat draws its own half sets). cryoSPARC starts a queued job once its parents have
completed. The run's folder keeps ``cryosparc.json`` (the jobs' UIDs and the refinement's folder),
so a sweep started again re-attaches instead of submitting twice.

Tested against a stand-in project with the same calls (``tests/test_cryosparc_engine.py``); not
run against a cryoSPARC instance (none is licensed here). The job-type and parameter names are
cryoSPARC's and can change between its versions: ``CryosparcEngine(job_type=..., params=...)``
takes others.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryobox.engines.base import EngineError, HalfMaps, RefineEngine, RefineParams
from cryobox.engines.launch import Job, Launcher, RunCommand
from cryobox.io.jsonio import write_json
from cryobox.io.layouts import cryosparc_half_maps
from cryobox.io.particles import read_particles
from cryobox.io.paths import find_stack, search_roots

__all__ = ["STATES", "CryosparcEngine", "CryosparcLauncher"]

#: cryoSPARC's job states (cryosparc-tools' ``JobStatus``) -> the launcher's
STATES = {
    "building": "queued",
    "queued": "queued",
    "launched": "queued",
    "started": "running",
    "running": "running",
    "waiting": "running",
    "completed": "ended",
    "killed": "ended",
    "failed": "ended",
}
RECORD = "cryosparc.json"


class CryosparcEngine(RefineEngine):
    """Refinements as cryoSPARC jobs in one project and workspace; ``launcher()`` gives the
    launcher that queues them on ``lane``."""

    name = "cryosparc"

    def __init__(
        self,
        project,
        workspace_uid: str,
        *,
        lane: str | None = None,
        job_type: str = "nonuniform_refine_new",
        params: dict | None = None,
    ):
        self.project = project
        self.workspace_uid = workspace_uid
        self.lane = lane
        self.job_type = job_type
        self.extra_params = dict(params or {})
        self._stack_folders: dict[str, str] = {}

    def check(self) -> dict:
        uid = getattr(self.project, "uid", None)
        if not uid:
            raise EngineError("the cryoSPARC engine needs a cryosparc-tools project (CryoSPARC(...).find_project).")
        return {"engine": "cryosparc", "project": uid, "workspace": self.workspace_uid, "job_type": self.job_type}

    def launcher(self) -> CryosparcLauncher:
        return CryosparcLauncher(self.project, self.workspace_uid, lane=self.lane)

    def job_params(self, p: RefineParams) -> dict:
        """The refinement job's parameters for one run (cryoSPARC's names)."""
        return {
            "refine_symmetry": p.symmetry,
            "refine_res_init": p.ini_high_a,
            "refine_gs_resplit": True,
            **self.extra_params,
        }

    def command(self, run_dir: Path, particles_star: Path, reference: Path, params: RefineParams) -> RunCommand:
        """Not a command line: the jobs to create, as one JSON argument that ``CryosparcLauncher``
        reads (and the run's ``job.json`` keeps)."""
        star = Path(particles_star).resolve()
        spec = {
            "run_dir": str(Path(run_dir).resolve()),
            "particles": {
                "particle_meta_path": str(star),
                "particle_blob_path": self._stack_folder(star),
                "psize_A": params.pixel_size_a,
            },
            "volume": {"volume_blob_path": str(Path(reference).resolve())},
            "type": self.job_type,
            "params": self.job_params(params),
            "title": f"cryobox {Path(run_dir).parent.name} {Path(run_dir).name} (seed {params.random_seed})",
        }
        return RunCommand((), ("cryosparc", json.dumps(spec, sort_keys=True)), ranks=1, threads=1)

    def _stack_folder(self, star: Path) -> str:
        """The folder of the stacks a particle STAR names (found as every job finds them), for
        cryoSPARC's ``particle_blob_path``; read once per file, which every repeat shares."""
        if str(star) not in self._stack_folders:
            table = read_particles(star)
            roots = search_roots(table)
            paths = table.data["image_path"].astype(str).unique()
            folders = {find_stack(p, roots, where=star).resolve().parent for p in paths}
            self._stack_folders[str(star)] = str(folders.pop() if len(folders) == 1 else star.parent)
        return self._stack_folders[str(star)]

    def collect(self, run_dir: Path) -> HalfMaps:
        rec = _record(run_dir)
        folder = Path(rec["dir"])
        found = cryosparc_half_maps(folder) if folder.is_dir() else None
        if found is None:
            raise EngineError(f"cryoSPARC job {rec['job']}: no map_half_A/map_half_B in {folder}")
        poses = sorted(folder.glob("*_particles.cs"))
        return HalfMaps(found[0], found[1], None, True, poses=poses[-1] if poses else None)

    def outcome(self, run_dir: Path, params: RefineParams, exit_status: int | None) -> HalfMaps:
        rec = _record(run_dir)
        for uid in rec.get("imports", []) + [rec["job"]]:
            status = self.project.find_job(uid).refresh().status
            if status in ("failed", "killed"):
                raise EngineError(f"cryoSPARC job {_name(self.project, uid)} {status}; see its event log in cryoSPARC")
        return self.collect(run_dir)


class CryosparcLauncher(Launcher):
    """Queues each run's jobs in a cryoSPARC project and follows them there; they live on the
    server (``detached``), so an interrupted sweep leaves them running and re-attaches."""

    kind = "cryosparc"
    detached = True

    def __init__(self, project, workspace_uid: str, *, lane: str | None = None):
        self.project = project
        self.workspace_uid = workspace_uid
        self.lane = lane
        self._imports: dict[str, str] = {}  # a file imported in this sweep -> its import job

    def check(self) -> dict:
        return {"scheduler": "cryosparc", "project": getattr(self.project, "uid", None), "lane": self.lane}

    def capacity(self) -> int | None:
        return None  # cryoSPARC's scheduler queues them

    def _imported(self, kind: str, params: dict, path_key: str, title: str) -> str:
        key = f"{kind}:{params[path_key]}"
        if key not in self._imports:
            job = self.project.create_job(self.workspace_uid, kind, params=params, title=title)
            job.queue(self.lane)
            self._imports[key] = job.uid
        return self._imports[key]

    def submit(self, job: Job) -> str:
        spec = json.loads(job.command.program[1])
        parts = self._imported("import_particles", spec["particles"], "particle_meta_path", "cryobox particles")
        vol = self._imported("import_volumes", spec["volume"], "volume_blob_path", "cryobox reference")
        refine = self.project.create_job(
            self.workspace_uid,
            spec["type"],
            connections={"particles": (parts, "imported_particles"), "volume": (vol, "imported_volume_1")},
            params=spec["params"],
            title=spec["title"],
        )
        refine.queue(self.lane)
        write_json(
            Path(spec["run_dir"]) / RECORD,
            {"project": self.project.uid, "job": refine.uid, "imports": [parts, vol], "dir": str(refine.dir())},
        )
        return refine.uid

    def states(self, jobs: list[Job]) -> dict[str, str]:
        out = {}
        for j in jobs:
            status = self.project.find_job(j.job_id).refresh().status
            state = STATES.get(status, "running")
            if state == "queued":  # waiting on an import that failed never starts: it has ended
                rec = _record(j.run_dir, missing_ok=True)
                parents = (self.project.find_job(u).refresh().status for u in rec.get("imports", []))
                if any(s in ("failed", "killed") for s in parents):
                    state = "ended"
            out[j.job_id] = state
        return out

    def cancel(self, job_ids: list[str]) -> None:
        for uid in job_ids:
            self.project.find_job(uid).kill()

    def stop_all(self) -> None:
        """The jobs live on the server: nothing to stop here (``cancel`` kills them)."""

    def submitted_text(self, job: Job) -> str:
        return f"queued in cryoSPARC as {_name(self.project, job.job_id)}"


def _name(project, uid: str) -> str:
    return f"{project.uid}-{uid}"


def _record(run_dir: Path, *, missing_ok: bool = False) -> dict:
    path = Path(run_dir) / RECORD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        if missing_ok:
            return {}
        raise EngineError(f"{run_dir}: no {RECORD}; the run was never queued in cryoSPARC") from None
