"""The interface between `cryobox sweep` and a refinement program.

An engine turns (particles, reference, settings) into two half maps. The sweep only calls
``check`` (is the program there?), ``prepare`` (the command for one run), ``run`` (start it,
keep its log, stop it cleanly on interrupt) and ``collect`` (the half maps it wrote, or the last
poses of a run stopped early). A second engine (cryoSPARC through cryosparc-tools, say)
implements the same four methods.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from cryobox.errors import InputError

__all__ = ["RefineParams", "HalfMaps", "RefineEngine", "EngineError", "EngineMissing"]


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
    offset_range_a: float = 6.0
    offset_step_a: float = 2.0
    auto_iter_max: int | None = None
    symmetry: str = "C1"


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
    def prepare(self, run_dir: Path, particles_star: Path, reference: Path, params: RefineParams) -> list[str]:
        """The command line for one run writing into ``run_dir``."""

    #: True when ``run`` takes ``progress=callback(iteration, resolution_a, elapsed_s)``, called
    #: once per finished iteration (the sweep then prints a line per iteration).
    reports_progress: bool = False

    @abc.abstractmethod
    def run(self, command: list[str], run_dir: Path, log_path: Path) -> float:
        """Run to completion (log kept at ``log_path``); returns seconds. Raises EngineError on
        failure; on KeyboardInterrupt stops the program before re-raising."""

    @abc.abstractmethod
    def collect(self, run_dir: Path) -> HalfMaps:
        """The final half maps of a run, or (stopped early) the poses of its last iteration;
        EngineError when there are neither."""
