"""The interface between `cryobox sweep` and a refinement program.

An engine turns (particles, reference, settings) into two half maps. It says *what* runs; where
it runs (this machine, a SLURM job) is a launcher's business (``engines.launch``). The sweep calls
``check`` (is the program there?), ``command`` (one run's ``RunCommand``: the MPI launcher apart
from the program and its arguments, and the ranks and threads it needs), ``progress`` (the
iteration and resolution a running run has reached, read from its files), and ``outcome`` (once
the run has ended: its half maps, or the last poses of a run stopped early; ``EngineError`` with
the last error line of its logs when it failed). A second engine (cryoSPARC through
cryosparc-tools, say) implements ``check``, ``command``, ``collect`` and, if it can, ``progress``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from cryobox.engines.launch import RunCommand
from cryobox.errors import InputError

__all__ = ["RefineParams", "HalfMaps", "RefineEngine", "EngineError", "EngineMissing", "RunCommand", "last_error_line"]


class EngineError(InputError):
    """The refinement program failed or is misconfigured (one sentence, exit 2)."""


class EngineMissing(EngineError):
    """The refinement program (or its MPI launcher) is not installed."""


@dataclass(frozen=True)
class RefineParams:
    """One refinement's settings, in Å wherever the physics allows (the engine converts).

    ``particle_diameter_a`` is the alignment-mask diameter (RELION's --particle_diameter);
    offsets are in Å so that every box gets the same search in Å.
    """

    pixel_size_a: float
    box_px: int
    particle_diameter_a: float
    ini_high_a: float
    random_seed: int
    healpix_order: int = 2
    #: the HEALPix order from which RELION's auto-sampling turns to local searches (RELION's
    #: default 4: 3.75° before oversampling; the Refine3D GUI's "Local searches from auto-sampling")
    auto_local_healpix_order: int = 4
    offset_range_a: float = 6.0
    offset_step_a: float = 2.0
    auto_iter_max: int | None = None
    symmetry: str = "C1"
    #: local refinement from the particles' own poses (a consensus): angular sampling (HEALPix
    #: order) from the first iteration, and the standard deviation of the angular prior (degrees)
    local_healpix_order: int | None = None
    sigma_ang_deg: float | None = None
    #: finer angular sampling sooner: the sampling follows the resolution and not the orientations'
    #: convergence (RELION's --auto_ignore_angles --auto_resol_angles, the Refine3D GUI's "Use finer
    #: angular sampling faster?")
    faster_sampling: bool = False


@dataclass
class HalfMaps:
    """What one run produced: two unfiltered half maps and where it stopped.

    A run stopped before the engine wrote final half maps gives ``half1 = half2 = None`` and
    ``poses``: a RELION data STAR of its last iteration (poses, half-set labels, images), from
    which the sweep reconstructs the halves itself, the same way for every variant.
    """

    half1: Path | None
    half2: Path | None
    iteration: int | None
    converged: bool
    engine_resolution_a: float | None = None
    poses: Path | None = None


class RefineEngine(abc.ABC):
    name: str = "engine"

    @abc.abstractmethod
    def check(self) -> dict:
        """Raise EngineMissing (with the install command) when the program is absent; else a
        description of what will run (versions, ranks, threads)."""

    @abc.abstractmethod
    def command(self, run_dir: Path, particles_star: Path, reference: Path, params: RefineParams) -> RunCommand:
        """One run writing into ``run_dir``: launcher, program and arguments, ranks, threads."""

    def prepare(self, run_dir: Path, particles_star: Path, reference: Path, params: RefineParams) -> list[str]:
        """The whole command line of one run, as it runs on this machine."""
        return self.command(run_dir, particles_star, reference, params).argv

    @abc.abstractmethod
    def collect(self, run_dir: Path) -> HalfMaps:
        """The final half maps of a run, or (stopped early) the poses of its last iteration;
        EngineError when there are neither."""

    def progress(self, run_dir: Path) -> tuple[int, float | None] | None:
        """The last iteration a running run finished and its resolution (Å), when known."""
        return None

    def last_error(self, run_dir: Path) -> str:
        """The last error line of the run's logs (engine.log, or a batch job's run.err/run.out)."""
        return last_error_line([Path(run_dir) / n for n in ("engine.log", "run.err", "run.out")])

    def outcome(self, run_dir: Path, params: RefineParams, exit_status: int | None) -> HalfMaps:
        """What an ended run produced; EngineError (with its last error line) when it failed.
        ``exit_status`` is None when the launcher cannot know it (a SLURM job that left the queue)."""
        if exit_status not in (None, 0):
            raise EngineError(
                f"{self.name} failed (exit status {exit_status}) in {run_dir}: {self.last_error(run_dir)}."
            )
        try:
            return self.collect(run_dir)
        except EngineError:
            raise EngineError(f"{run_dir}: the run ended without results: {self.last_error(run_dir)}.") from None


def last_error_line(logs: list[Path]) -> str:
    """The last lines that say ERROR (else the last two lines) of the logs that exist, shortened."""
    lines: list[str] = []
    for log in logs:
        try:
            lines += [ln.strip() for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            continue
    lines = [ln for ln in lines if not ln.startswith("# ")]  # the command line cryobox writes first
    noise = ("ORTE_ERROR_LOG", "MPI_ABORT", "orte_base_help", "errorcode", "=== Backtrace")
    errs: list[str] = []
    for i, ln in enumerate(lines):
        if ln.rstrip(":").strip().upper() == "ERROR" and i + 1 < len(lines):  # RELION: "ERROR:" then the reason
            errs.append(lines[i + 1])
        elif "ERROR" in ln.upper() and not any(n in ln for n in noise):
            errs.append(ln)
    unique = list(dict.fromkeys(errs))
    pick = unique[-2:] if unique else lines[-2:]
    return " / ".join(pick)[:400] or "no output in its logs"
