"""How a refinement run is launched, separate from what it runs.

An engine says *what* runs (``RunCommand``: the launcher, such as ``mpirun -n 3``, and the program
with its arguments, plus the ranks and threads it needs). A launcher says *where*:

- ``LocalLauncher``: on this machine, up to ``parallel_runs`` at once, each in its own process
  group (stopped as a whole on interruption, and killed with the sweep: ``PR_SET_PDEATHSIG``).
- ``SlurmLauncher``: one batch job per run, submitted with ``sbatch``. The job script comes from a
  template in RELION's queue-template convention (``XXXcommandXXX`` and friends, see
  ``PLACEHOLDERS``); the template starts the MPI launcher itself (``mpirun XXXcommandXXX``), so
  the command handed over is the program and its arguments only. Jobs outlive the sweep that
  submitted them: the job id is recorded in the run's folder (``job.json``) and a later sweep
  re-attaches to it.

Both answer ``states(jobs)`` with "queued", "running" or "ended"; whether an ended run succeeded
is for the engine to say from the files it left (``RefineEngine.outcome``), because SLURM without
accounting forgets a job's exit status once it leaves the queue.
"""

from __future__ import annotations

import abc
import getpass
import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryobox.errors import InputError

__all__ = [
    "RunCommand",
    "Job",
    "Launcher",
    "LocalLauncher",
    "SlurmLauncher",
    "PLACEHOLDERS",
    "default_slurm_template",
    "render_template",
]


@dataclass(frozen=True)
class RunCommand:
    """One run: ``launcher`` (``mpirun -n 3 ...``, empty for a serial program) and ``program``
    (the program and its arguments), with the MPI ranks and threads per rank it needs."""

    launcher: tuple[str, ...]
    program: tuple[str, ...]
    ranks: int = 1
    threads: int = 1

    @property
    def argv(self) -> list[str]:
        """The whole command line, as run on this machine."""
        return [*self.launcher, *self.program]

    @property
    def cores(self) -> int:
        return self.ranks * self.threads


@dataclass
class Job:
    """A run handed to a launcher: its folder, command, name and (once submitted) its id."""

    name: str
    run_dir: Path
    command: RunCommand
    job_id: str | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    state: str = "waiting"  # waiting (not submitted), queued, running, ended
    extra: dict = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.run_dir / "engine.log"


class Launcher(abc.ABC):
    """Where runs execute. ``detached``: jobs outlive the process that submitted them."""

    kind: str = "launcher"
    detached: bool = False

    def check(self) -> dict:
        """Raise InputError (one sentence with the fix) when runs cannot be launched."""
        return {"scheduler": self.kind}

    def capacity(self) -> int | None:
        """How many runs may be out at once (None: all; the cluster queues them)."""
        return None

    @abc.abstractmethod
    def submit(self, job: Job) -> str:
        """Start or queue the run; returns its id."""

    @abc.abstractmethod
    def states(self, jobs: list[Job]) -> dict[str, str]:
        """job id -> queued, running or ended."""

    @abc.abstractmethod
    def cancel(self, job_ids: list[str]) -> None:
        """Stop these runs (and nothing else)."""

    def exit_status(self, job: Job) -> int | None:
        """The run's exit status when known."""
        return None

    def stop_all(self) -> None:
        """Called when the sweep is interrupted: stop the runs that would not outlive it (none for
        a detached launcher, whose jobs go on and are re-attached by the next call)."""

    def submitted_text(self, job: Job) -> str:
        """How the progress line says that ``job`` went out."""
        return f"submitted as {self.kind} job {job.job_id}"


# --------------------------------------------------------------------------------- local


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalLauncher(Launcher):
    """Up to ``parallel_runs`` runs at once on this machine, each in its own process group; they
    are stopped when the sweep is interrupted and die with it if it is killed."""

    kind = "local"
    detached = False

    def __init__(self, parallel_runs: int = 1, env: dict | None = None):
        if parallel_runs < 1:
            raise InputError(f"`parallel_runs` must be at least 1, got {parallel_runs}.")
        self.parallel_runs = int(parallel_runs)
        self.env = env
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}

    def capacity(self) -> int | None:
        return self.parallel_runs

    def submit(self, job: Job) -> str:
        job.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(job.log_path, "w")
        log.write("# " + " ".join(job.command.argv) + "\n")
        log.flush()
        env = dict(self.env if self.env is not None else os.environ)
        env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")  # waiting ranks give their core away
        try:
            proc = subprocess.Popen(
                job.command.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,  # runs in this folder: RELION's paths are relative to the project
            )
        except OSError as exc:
            log.close()
            raise InputError(f"could not start {job.command.argv[0]}: {exc}; check that it is installed.") from None
        job_id = f"pid{proc.pid}"
        self._procs[job_id] = proc
        self._logs[job_id] = log
        return job_id

    def states(self, jobs: list[Job]) -> dict[str, str]:
        out = {}
        for job in jobs:
            proc = self._procs.get(job.job_id or "")
            if proc is None:
                out[job.job_id] = "ended"  # started by an earlier sweep that is gone: it died with it
                continue
            if proc.poll() is None:
                out[job.job_id] = "running"
            else:
                out[job.job_id] = "ended"
                log = self._logs.pop(job.job_id, None)
                if log is not None:
                    log.close()
        return out

    def exit_status(self, job: Job) -> int | None:
        proc = self._procs.get(job.job_id or "")
        return None if proc is None else proc.poll()

    def cancel(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            proc = self._procs.get(job_id)
            if proc is not None and proc.poll() is None:
                stop_process_group(proc)

    def stop_all(self) -> None:
        self.cancel(list(self._procs))

    def submitted_text(self, job: Job) -> str:
        return "started"


def stop_process_group(proc: subprocess.Popen) -> None:
    """Terminate a whole process group (mpirun and its ranks): SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --------------------------------------------------------------------------------- SLURM

#: RELION's queue-template placeholders (relion_it / the GUI's "Submit to queue"), and what each
#: becomes here.
PLACEHOLDERS = {
    "XXXmpinodesXXX": "MPI ranks of the run",
    "XXXthreadsXXX": "threads per rank (RELION's --j)",
    "XXXcoresXXX": "ranks x threads",
    "XXXdedicatedXXX": "cores per node (`dedicated`; default: ranks x threads, one node)",
    "XXXnodesXXX": "nodes: cores / dedicated, rounded up",
    "XXXnameXXX": "the job's name (cryobox-<sweep>-<variant>-rep<k>)",
    "XXXerrfileXXX": "the run's folder/run.err",
    "XXXoutfileXXX": "the run's folder/run.out",
    "XXXqueueXXX": "`queue` (the partition)",
    "XXXcommandXXX": "the program and its arguments, without mpirun",
    "XXXextra1XXX": "`template_extras`[0] (and XXXextra2XXX... the next ones); empty when not given",
}

_STATE = {
    "PENDING": "queued",
    "CONFIGURING": "queued",
    "REQUEUED": "queued",
    "REQUEUE_HOLD": "queued",
    "REQUEUE_FED": "queued",
    "RESV_DEL_HOLD": "queued",
    "SUSPENDED": "queued",
    "RUNNING": "running",
    "COMPLETING": "running",
    "SIGNALING": "running",
    "STAGE_OUT": "running",
    "RESIZING": "running",
}


def default_slurm_template(mpi_flags: tuple[str, ...] = ()) -> str:
    """The built-in job script (used without `submit_template`): one node, ranks x threads cores."""
    flags = (" " + " ".join(mpi_flags)) if mpi_flags else ""
    return (
        "#!/bin/bash\n"
        "#SBATCH --job-name=XXXnameXXX\n"
        "#SBATCH --ntasks=XXXmpinodesXXX\n"
        "#SBATCH --cpus-per-task=XXXthreadsXXX\n"
        "#SBATCH --nodes=XXXnodesXXX\n"
        "#SBATCH --output=XXXoutfileXXX\n"
        "#SBATCH --error=XXXerrfileXXX\n"
        "\n"
        f"mpirun{flags} XXXcommandXXX\n"
    )


def render_template(
    template: str,
    job: Job,
    *,
    queue: str | None = None,
    dedicated: int | None = None,
    extras: tuple[str, ...] = (),
    where: str = "the submission template",
) -> str:
    """The job script for one run: every placeholder replaced; InputError when the template has
    no XXXcommandXXX (it would run nothing) or keeps a placeholder this does not know."""
    if "XXXcommandXXX" not in template:
        raise InputError(
            f"{where}: has no XXXcommandXXX, so its jobs would run nothing; add a line such as `mpirun "
            "XXXcommandXXX` (RELION's queue-template convention)."
        )
    c = job.command
    per_node = dedicated or c.cores
    values = {
        "XXXmpinodesXXX": str(c.ranks),
        "XXXthreadsXXX": str(c.threads),
        "XXXcoresXXX": str(c.cores),
        "XXXdedicatedXXX": str(per_node),
        "XXXnodesXXX": str(max(1, -(-c.cores // per_node))),
        "XXXnameXXX": job.name,
        "XXXerrfileXXX": str((job.run_dir / "run.err").resolve()),
        "XXXoutfileXXX": str((job.run_dir / "run.out").resolve()),
        "XXXqueueXXX": queue or "",
        "XXXcommandXXX": " ".join(shlex.quote(a) for a in c.program),
    }
    text = template
    for key, value in values.items():
        text = text.replace(key, value)
    text = re.sub(
        r"XXXextra(\d+)XXX", lambda m: extras[int(m.group(1)) - 1] if int(m.group(1)) <= len(extras) else "", text
    )
    left = sorted(set(re.findall(r"XXX\w+?XXX", text)))
    if left:
        raise InputError(
            f"{where}: {', '.join(left)} is not a placeholder cryobox fills (it fills {', '.join(PLACEHOLDERS)}); "
            "remove it or put the value in the template."
        )
    return text


class SlurmLauncher(Launcher):
    """Each run is one SLURM batch job (see the module docstring)."""

    kind = "slurm"
    detached = True

    def __init__(
        self,
        *,
        template: str | None = None,
        template_path: Path | None = None,
        queue: str | None = None,
        submit_extra: tuple[str, ...] = (),
        submit_command: str = "sbatch",
        dedicated: int | None = None,
        template_extras: tuple[str, ...] = (),
        mpi_flags: tuple[str, ...] = (),
    ):
        self.template_path = Path(template_path) if template_path else None
        if self.template_path is not None:
            if not self.template_path.is_file():
                raise InputError(f"{self.template_path}: no such submission template; check `submit_template`.")
            try:
                template = self.template_path.read_text()
            except UnicodeDecodeError:
                raise InputError(
                    f"{self.template_path}: not a text file; `submit_template` takes a shell script with RELION's "
                    "XXXcommandXXX-style fields (the one your RELION submits with)."
                ) from None
        self.template = template if template is not None else default_slurm_template(mpi_flags)
        self.queue = queue
        self.submit_extra = tuple(submit_extra)
        self.submit_command = submit_command
        self.dedicated = dedicated
        self.template_extras = tuple(template_extras)
        self.user = getpass.getuser()
        where = str(self.template_path) if self.template_path else "the built-in template"
        render_template(  # a template without XXXcommandXXX is refused before any work
            self.template,
            Job("check", Path("."), RunCommand((), ("true",))),
            queue=queue,
            dedicated=dedicated,
            extras=self.template_extras,
            where=where,
        )

    def _tool(self, name: str) -> str:
        path = shutil.which(name)
        if path is None:
            raise InputError(
                f"{name} was not found on PATH, so SLURM jobs cannot be submitted or followed; run on a machine of "
                "the cluster (a login node), put SLURM's commands on PATH, or use `scheduler` local."
            )
        return path

    def check(self) -> dict:
        submit = self._tool(self.submit_command.split()[0])
        self._tool("squeue")
        self._tool("scancel")
        try:
            proc = subprocess.run(
                ["squeue", "-h", "-u", self.user, "-o", "%i"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise InputError(
                f"squeue could not reach the SLURM controller ({exc}); check that slurmctld runs."
            ) from None
        if proc.returncode != 0:
            msg = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise InputError(
                f"the SLURM controller is not reachable (squeue: {msg}); check that slurmctld runs and that SLURM_CONF "
                "(or /etc/slurm/slurm.conf) points at it, or use `scheduler` local."
            )
        return {
            "scheduler": "slurm",
            "submit_command": submit,
            "template": str(self.template_path) if self.template_path else "built-in",
            "queue": self.queue,
            "submit_extra": list(self.submit_extra),
        }

    def script(self, job: Job) -> str:
        return render_template(
            self.template,
            job,
            queue=self.queue,
            dedicated=self.dedicated,
            extras=self.template_extras,
            where=str(self.template_path) if self.template_path else "the built-in template",
        )

    def submit(self, job: Job) -> str:
        job.run_dir.mkdir(parents=True, exist_ok=True)
        path = job.run_dir / "run_submit.script"
        path.write_text(self.script(job))
        path.chmod(0o755)
        cmd = [*shlex.split(self.submit_command), "--parsable"]
        if self.queue:
            cmd += ["--partition", self.queue]
        cmd += [*self.submit_extra, str(path.resolve())]
        # submitted from this folder, where the job runs (SLURM's default): the particle file's paths are relative to it
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        job_id = proc.stdout.strip().split(";")[0].strip()
        if proc.returncode != 0 or not job_id.isdigit():
            msg = " ".join((proc.stderr or proc.stdout).split())[:300] or f"exit status {proc.returncode}"
            raise InputError(f"{' '.join(cmd[:2])} refused {path}: {msg}; check the template and `submit_extra`.")
        return job_id

    def states(self, jobs: list[Job]) -> dict[str, str]:
        ids = [j.job_id for j in jobs if j.job_id]
        if not ids:
            return {}
        try:
            proc = subprocess.run(
                ["squeue", "-h", "-u", self.user, "-o", "%i %T"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.SubprocessError):
            return {i: "unknown" for i in ids}
        if proc.returncode != 0:
            return {i: "unknown" for i in ids}  # the controller did not answer: ask again later
        seen = {}
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                seen[parts[0]] = _STATE.get(parts[1], "ended")
        return {i: seen.get(i, "ended") for i in ids}

    def cancel(self, job_ids: list[str]) -> None:
        ids = [i for i in job_ids if i]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
