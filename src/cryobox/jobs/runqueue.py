"""The sweep's runs, handed to a launcher and followed to the end.

Each run has a folder. What the folder holds says where the run stands, so that a sweep started
again picks up where the last one stopped:

- ``result.json`` (written last, naming the run's settings key): the run is done;
- ``job.json``: the run was handed to a launcher; it names the key, the launcher, the job id and,
  once the run ended badly, ``"failed": <the last error line>``.

Starting again: a done run is read back; a SLURM job that is still queued or running is
re-attached (never submitted twice); one that ended is collected; a failed run stays failed
unless ``retry_failed``; a local run whose sweep died died with it and starts clean; any folder
with another key is cleared first.

While runs are out, every ``poll_s`` seconds: submit while the launcher has room, ask the states,
start the next runs in the room that ended ones left, then collect the ended runs (the ``finish``
callback: half maps, FSC, poses, result.json) while the new ones work, and report. Interrupted
(Ctrl-C, SIGTERM): local runs are stopped; SLURM jobs are left running and the message says how to
re-attach or cancel.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cryobox.engines.base import EngineError, HalfMaps, RefineEngine, RefineParams
from cryobox.engines.launch import Job, Launcher, RunCommand
from cryobox.io import ledger
from cryobox.io.jsonio import write_json
from cryobox.jobs.records import read_record

__all__ = ["RunSpec", "RunQueueResult", "run_queue", "sweep_jobs", "cancel_jobs"]

JOB_RECORD = "job.json"
RESULT = "result.json"


@dataclass
class RunSpec:
    """One refinement of the sweep: which variant and repeat, its settings and inputs, its folder."""

    variant: str
    repeat: int
    seed: int
    params: RefineParams
    run_dir: Path
    key: str
    particles_star: Path
    reference: Path
    name: str
    description: str = ""
    command: list[str] | None = None  # the whole command line, once handed to the launcher
    job_name: str = ""  # the scheduler's name for it (XXXnameXXX); default cryobox-<name>

    @property
    def label(self) -> str:
        return f"{self.variant} repeat {self.repeat}"


@dataclass
class RunQueueResult:
    results: dict[str, dict] = field(default_factory=dict)  # spec name -> result.json
    failed: list[dict] = field(default_factory=list)
    engine_seconds: float = 0.0
    submitted: int = 0
    reattached: int = 0
    reused: int = 0
    wall_seconds: float = 0.0
    waiting_seconds: float = 0.0
    #: wall time while at least one run was out, less the time spent collecting finished runs
    #: while no other run was out (collecting beside running runs costs no wall time)
    engine_wall_seconds: float = 0.0


def _record(spec: RunSpec) -> dict | None:
    path = spec.run_dir / JOB_RECORD
    return read_record(path, path, expect={"key": spec.key})


def run_queue(
    specs: list[RunSpec],
    *,
    engine: RefineEngine,
    launcher: Launcher,
    finish: Callable[[RunSpec, HalfMaps, float], dict],
    log: Callable[[str], None] = print,
    status: Callable[[list[dict]], None] | None = None,
    retry_failed: bool = False,
    poll_s: float | None = None,
    iter_max: int | None = None,
) -> RunQueueResult:
    """Run every spec (see the module docstring); returns results, failures and timings.
    ``poll_s``: seconds between looks (default 0.5 on this machine, 5 for a cluster's queue)."""
    t_start = time.perf_counter()
    queue = _Queue(specs, engine, launcher, finish, log, iter_max)
    for spec in specs:
        queue.place(spec, retry_failed=retry_failed)
    try:
        queue.follow(poll_s if poll_s is not None else 5.0 if launcher.detached else 0.5, status)
    except KeyboardInterrupt:
        queue.interrupted()
        raise
    out = queue.out
    out.engine_wall_seconds = max(0.0, out.engine_wall_seconds - queue.finishing)
    out.wall_seconds = time.perf_counter() - t_start
    return out


class _Queue:
    """The runs of one ``run_queue`` call: waiting, out (``active``) or settled (in ``out``), and
    the status rows shown while they run."""

    def __init__(self, specs, engine, launcher, finish, log, iter_max):
        self.specs, self.engine, self.launcher, self.finish, self.log = specs, engine, launcher, finish, log
        self.iter_max = iter_max
        self.out = RunQueueResult()
        self.index = {s.name: k + 1 for k, s in enumerate(specs)}
        self.waiting: list[RunSpec] = []
        self.active: dict[str, tuple[RunSpec, Job]] = {}
        self.rows: dict[str, dict] = {}
        self.last_iteration: dict[str, int] = {}
        self.finishing = 0.0  # seconds spent collecting runs while no other run was out

    def prefix(self, spec: RunSpec) -> str:
        return f"[{self.index[spec.name]}/{len(self.specs)}] {spec.label}"

    def row(self, spec: RunSpec, **kw) -> None:
        r = self.rows.setdefault(
            spec.name, {"run": spec.label, "job_id": None, "state": "waiting", "iteration": None, "resolution_a": None}
        )
        r.update(kw)

    def place(self, spec: RunSpec, *, retry_failed: bool) -> None:
        """Where a run stands before anything starts: done, failed, still out on the scheduler, or waiting."""
        out, launcher = self.out, self.launcher
        done = read_record(spec.run_dir / RESULT, spec.run_dir / RESULT, expect={"key": spec.key})
        if done is not None:
            out.results[spec.name] = done
            out.reused += 1
            self.row(spec, state="done before", resolution_a=done.get("interpolated_resolution_a"))
            self.log(f"{self.prefix(spec)}: done before, read back")
            return
        rec = _record(spec)
        if rec is not None and rec.get("failed") and not retry_failed:
            out.failed.append(_failure(spec, rec))
            self.row(spec, state="failed", job_id=rec.get("job_id"), error=rec["failed"])
            self.log(f"{self.prefix(spec)}: failed before ({rec['failed']}); not run again without `retry_failed`")
            return
        if rec is not None and not rec.get("failed") and rec.get("scheduler") == launcher.kind and launcher.detached:
            job = Job(spec.name, spec.run_dir, _stored_command(rec), job_id=rec.get("job_id"))
            spec.command = job.command.argv
            job.submitted_at = rec.get("submitted_at")
            self.active[spec.name] = (spec, job)
            out.reattached += 1
            self.row(spec, state="queued", job_id=job.job_id)
            self.log(f"{self.prefix(spec)}: re-attached to {launcher.kind} job {job.job_id}")
            return
        self.waiting.append(spec)

    def fill(self) -> None:
        """Start (or submit) waiting runs while the launcher has room."""
        room = self.launcher.capacity()
        while self.waiting and (room is None or len(self.active) < room):
            self.submit(self.waiting.pop(0))

    def submit(self, spec: RunSpec) -> None:
        launcher = self.launcher
        ledger.remove_written_folder(spec.run_dir)  # a folder cryobox made for an earlier try, nothing else
        spec.run_dir.mkdir(parents=True)
        ledger.record_folder(spec.run_dir)
        cmd = self.engine.command(spec.run_dir, spec.particles_star, spec.reference, spec.params)
        job = Job(spec.job_name or "cryobox-" + spec.name.replace("/", "-"), spec.run_dir, cmd)
        spec.command = cmd.argv
        job.job_id = launcher.submit(job)
        job.submitted_at = time.time()
        write_json(
            spec.run_dir / JOB_RECORD,
            {
                "key": spec.key,
                "scheduler": launcher.kind,
                "job_id": job.job_id,
                "name": spec.name,
                "submitted_at": job.submitted_at,
                "launcher": list(cmd.launcher),
                "program": list(cmd.program),
                "ranks": cmd.ranks,
                "threads": cmd.threads,
            },
        )
        self.out.submitted += 1
        self.active[spec.name] = (spec, job)
        self.row(spec, state="queued", job_id=job.job_id)
        self.log(f"{self.prefix(spec)} (seed {spec.seed}): {spec.description}; {launcher.submitted_text(job)}")

    def follow(self, poll_s: float, status) -> None:
        """Look every ``poll_s`` seconds until no run waits or is out."""
        out = self.out
        while self.waiting or self.active:
            tick = time.monotonic()
            busy = bool(self.active)
            self.fill()
            ended = self.look()
            # the next runs start before the ended ones are collected: their half maps and FSCs are
            # computed while the engine works, and cost no wall time while a run is out
            if ended:
                self.fill()
            for spec, job in ended:
                self.collect(spec, job)
            if status is not None:
                status([self.rows[s.name] for s in self.specs if s.name in self.rows])
            busy = busy or bool(self.active)
            if self.waiting or self.active:
                left = poll_s - (time.monotonic() - tick)
                if left > 0:
                    out.waiting_seconds += left
                    time.sleep(left)
            if busy:
                out.engine_wall_seconds += time.monotonic() - tick

    def look(self) -> list[tuple[RunSpec, Job]]:
        """Ask the launcher where the runs that are out stand; log progress; return those that ended."""
        ended = []
        states = self.launcher.states([j for _, j in self.active.values()])
        for name, (spec, job) in list(self.active.items()):
            state = states.get(job.job_id, "unknown")
            if state == "running":
                if job.started_at is None:
                    job.started_at = time.time()
                    self.row(spec, state="running")
                    if self.launcher.kind != "local":
                        self.log(f"{self.prefix(spec)}: running (job {job.job_id})")
                prog = self.engine.progress(spec.run_dir)
                if prog is not None and prog[0] > self.last_iteration.get(name, 0):
                    self.last_iteration[name] = prog[0]
                    self.row(spec, iteration=prog[0], resolution_a=prog[1])
                    elapsed = time.time() - job.started_at
                    progress_line(self.log, self.prefix(spec), self.iter_max)(prog[0], prog[1], elapsed)
            elif state == "queued":
                self.row(spec, state="queued")
            elif state == "ended":
                del self.active[name]
                job.ended_at = time.time()
                ended.append((spec, job))
        return ended

    def collect(self, spec: RunSpec, job: Job) -> None:
        """An ended run: its outcome through ``finish``, or its failure recorded in its folder."""
        seconds = job.ended_at - (job.started_at or job.submitted_at or job.ended_at)
        t_finish = time.monotonic()
        try:
            halves = self.engine.outcome(spec.run_dir, spec.params, self.launcher.exit_status(job))
            result = self.finish(spec, halves, seconds)
        except EngineError as exc:
            if not self.active:  # collecting while other runs are out costs no wall time
                self.finishing += time.monotonic() - t_finish
            msg = str(exc)
            rec = _record(spec) or {"key": spec.key, "scheduler": self.launcher.kind, "job_id": job.job_id}
            rec["failed"] = msg
            write_json(spec.run_dir / JOB_RECORD, rec)
            self.out.failed.append(_failure(spec, rec))
            self.row(spec, state="failed", error=msg)
            self.log(f"{self.prefix(spec)}: FAILED: {msg}")
            return
        if not self.active:
            self.finishing += time.monotonic() - t_finish
        self.out.results[spec.name] = result
        self.out.engine_seconds += seconds
        self.row(spec, state="done", resolution_a=result.get("interpolated_resolution_a"))

    def interrupted(self) -> None:
        """Ctrl-C or SIGTERM: local runs are stopped; a scheduler's jobs go on, and the log says how
        to re-attach or cancel them."""
        jobs = [j for _, j in self.active.values()]
        launcher = self.launcher
        if launcher.detached and jobs:
            ids = ", ".join(j.job_id for j in jobs if j.job_id)
            self.log(
                f"stopped waiting; {len(jobs)} {launcher.kind} job(s) go on ({ids}). Run the same command again to "
                "re-attach and collect them, or add --cancel to cancel this sweep's jobs."
            )
        else:
            launcher.stop_all()


def progress_line(log, prefix: str, iter_max: int | None):
    """A callback that logs one line per finished engine iteration: resolution, elapsed time and,
    when the run stops at a known iteration, the time left at the pace so far."""

    def report(iteration: int, resolution_a: float | None, elapsed_s: float) -> None:
        res = f"{resolution_a:.2f} Å" if resolution_a else "resolution not yet known"
        eta = ""
        if iter_max:
            left = max(0, iter_max - iteration) * elapsed_s / max(iteration, 1)
            eta = f", about {left:.0f} s left (stops at iteration {iter_max})"
        log(f"    {prefix}: iteration {iteration}, {res}, {elapsed_s:.0f} s{eta}")

    return report


def _failure(spec: RunSpec, rec: dict) -> dict:
    return {
        "variant": spec.variant,
        "repeat": spec.repeat,
        "job_id": rec.get("job_id"),
        "scheduler": rec.get("scheduler"),
        "error": rec.get("failed"),
        "logs": [str(p) for p in (spec.run_dir / n for n in ("engine.log", "run.out", "run.err")) if p.exists()],
    }


def _stored_command(rec: dict):

    return RunCommand(
        tuple(rec.get("launcher", ())),
        tuple(rec.get("program", ())),
        ranks=int(rec.get("ranks", 1)),
        threads=int(rec.get("threads", 1)),
    )


def sweep_jobs(out: Path) -> list[dict]:
    """Every job record under a sweep's runs/ whose run has no result yet."""
    found = []
    for rec_path in sorted(Path(out).glob(f"runs/*/*/{JOB_RECORD}")):
        if (rec_path.parent / RESULT).exists():
            continue
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict):
            continue
        rec["run_dir"] = str(rec_path.parent)
        found.append(rec)
    return found


def cancel_jobs(out: Path, launcher: Launcher) -> list[dict]:
    """Cancel this sweep's jobs (the ids recorded in its run folders, nothing else) and forget
    them, so that the next sweep submits those runs again. Returns what was cancelled."""
    recs = [r for r in sweep_jobs(out) if r.get("scheduler") == launcher.kind and not r.get("failed")]
    launcher.cancel([str(r["job_id"]) for r in recs if r.get("job_id")])
    for r in recs:
        ledger.remove_written(Path(r["run_dir"]) / JOB_RECORD)
    return recs
