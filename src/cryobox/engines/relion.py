"""RELION 3.1 as a refinement engine: ``relion_refine_mpi --auto_refine --split_random_halves``
started with ``mpirun``.

Ranks: one master plus one (or more) workers per half set, so at least 3; threads per rank
(``--j``) share the remaining cores. With OpenMPI we add ``--oversubscribe`` when there are more
ranks than cores (the master mostly waits) and ``--allow-run-as-root`` only when running as
root. RELION 3.1 takes offsets in pixels: the Å settings are converted with the particles'
pixel size, so every box searches the same distances in Å.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from cryobox.engines.base import EngineError, EngineMissing, HalfMaps, RefineEngine, RefineParams
from cryobox.engines.launch import RunCommand
from cryobox.parallel import default_workers

__all__ = ["RelionEngine", "INSTALL_HINT"]

INSTALL_HINT = "install RELION and OpenMPI (Debian/Ubuntu: sudo apt-get install -y relion) or put them on PATH"


class RelionEngine(RefineEngine):
    """RELION 3.1's ``relion_refine_mpi --auto_refine --split_random_halves`` behind ``RefineEngine``.

    ``ranks``: MPI ranks (a master and at least one per half set); ``threads``: threads per rank
    (``--j``; default: the cores shared by the worker ranks); ``pool``: RELION's ``--pool``;
    ``extra_args``: more arguments for every run. ``--allow-run-as-root`` is passed to mpirun only
    as root and ``--oversubscribe`` only with more ranks than cores.
    """

    name = "relion"

    def __init__(
        self,
        *,
        ranks: int = 3,
        threads: int | None = None,
        refine: str = "relion_refine_mpi",
        mpirun: str = "mpirun",
        pool: int = 10,
        extra_args: tuple[str, ...] = (),
    ):
        if ranks < 3:
            raise EngineError(
                "relion_refine_mpi --split_random_halves needs at least 3 MPI ranks (a master and one per half "
                f"set); got {ranks}."
            )
        self.ranks = int(ranks)
        self.threads = int(threads) if threads else max(1, (default_workers() - 1) // (self.ranks - 1))
        self.refine = refine
        self.mpirun = mpirun
        self.pool = int(pool)
        self.extra_args = tuple(extra_args)
        self._mpi_flags: list[str] | None = None
        self._checked: dict | None = None

    # ------------------------------------------------------------------------------ check
    def _which(self, program: str) -> str:
        path = shutil.which(program)
        if path is None:
            raise EngineMissing(f"{program} was not found on PATH: {INSTALL_HINT}.")
        return path

    def mpi_flags(self) -> list[str]:
        if self._mpi_flags is None:
            self._which(self.mpirun)
            try:
                text = subprocess.run([self.mpirun, "--version"], capture_output=True, text=True, timeout=60).stdout
            except (OSError, subprocess.SubprocessError):
                text = ""
            flags = []
            if "open mpi" in text.lower() or "open-mpi" in text.lower():
                if hasattr(os, "geteuid") and os.geteuid() == 0:
                    flags.append("--allow-run-as-root")
                if self.ranks > default_workers():
                    flags.append("--oversubscribe")
            self._mpi_flags = flags
        return self._mpi_flags

    def check(self) -> dict:
        if self._checked is not None:
            return self._checked
        refine = self._which(self.refine)
        mpirun = self._which(self.mpirun)
        version = ""
        try:
            out = subprocess.run(
                [self.refine.replace("_mpi", ""), "--version"], capture_output=True, text=True, timeout=60
            )
            m = re.search(r"RELION version:\s*(\S+)", out.stdout + out.stderr)
            version = m.group(1) if m else ""
        except (OSError, subprocess.SubprocessError):
            pass
        self._checked = {
            "engine": "relion",
            "program": refine,
            "mpirun": mpirun,
            "version": version,
            "ranks": self.ranks,
            "threads_per_rank": self.threads,
            "mpi_flags": self.mpi_flags(),
        }
        return self._checked

    # ---------------------------------------------------------------------------- prepare
    def command(self, run_dir: Path, particles_star: Path, reference: Path, params: RefineParams) -> RunCommand:
        p = params
        box_a = p.box_px * p.pixel_size_a
        if not 0 < p.particle_diameter_a <= box_a:
            raise EngineError(
                f"the mask diameter {p.particle_diameter_a:g} Å does not fit the {p.box_px} px box ({box_a:g} Å); "
                "lower `particle_diameter_a`."
            )
        offset_range_px = p.offset_range_a / p.pixel_size_a
        offset_step_px = p.offset_step_a / p.pixel_size_a
        launcher = (self.mpirun, *self.mpi_flags(), "-n", str(self.ranks))
        local = p.local_healpix_order is not None
        cmd = [
            self.refine,
            "--i",
            str(Path(particles_star).resolve()),
            "--ref",
            str(Path(reference).resolve()),
            "--firstiter_cc",  # the reference is not on RELION's absolute grey scale
            "--ini_high",
            f"{p.ini_high_a:g}",
            "--o",
            str(Path(run_dir).resolve() / "run"),
            "--auto_refine",
            "--split_random_halves",
            "--particle_diameter",
            f"{p.particle_diameter_a:g}",
            "--ctf",
            "--flatten_solvent",
            "--zero_mask",
            "--healpix_order",
            str(p.local_healpix_order if local else p.healpix_order),
            "--auto_local_healpix_order",
            str(p.local_healpix_order if local else p.auto_local_healpix_order),
            "--offset_range",
            f"{offset_range_px:.4g}",
            "--offset_step",
            f"{offset_step_px:.4g}",
            "--sym",
            p.symmetry,
            "--low_resol_join_halves",
            "40",
            "--norm",
            "--scale",
            "--j",
            str(self.threads),
            "--pool",
            str(self.pool),
            "--pad",
            "2",
            "--dont_combine_weights_via_disc",
            "--random_seed",
            str(p.random_seed),
        ]
        if local:  # local searches around the particles' own poses from the first iteration
            cmd += ["--sigma_ang", f"{p.sigma_ang_deg:g}"]
        if p.auto_iter_max:
            cmd += ["--auto_iter_max", str(p.auto_iter_max)]
        if p.faster_sampling:
            cmd += ["--auto_ignore_angles", "--auto_resol_angles"]
        return RunCommand(launcher, (*cmd, *self.extra_args), ranks=self.ranks, threads=self.threads)

    def progress(self, run_dir: Path) -> tuple[int, float | None] | None:
        """The last iteration RELION finished in ``run_dir`` and its resolution (Å)."""
        return _progress(run_dir)

    def outcome(self, run_dir: Path, params: RefineParams, exit_status: int | None) -> HalfMaps:
        """Final half maps, or the poses of the last iteration of a run stopped at
        ``auto_iter_max``; EngineError with RELION's last error line otherwise."""
        return _outcome(self, run_dir, params, exit_status)

    # ---------------------------------------------------------------------------- collect
    def collect(self, run_dir: Path) -> HalfMaps:
        run_dir = Path(run_dir)
        final = [run_dir / f"run_half{h}_class001_unfil.mrc" for h in (1, 2)]
        if all(f.exists() for f in final):
            data = run_dir / "run_data.star"
            return HalfMaps(
                final[0],
                final[1],
                _last_iteration(run_dir),
                True,
                _model_resolution(run_dir / "run_model.star"),
                poses=data if data.exists() else None,
            )
        it = _last_iteration(run_dir)
        if it is None or it < 1:
            raise EngineError(f"{run_dir}: RELION wrote no half maps after iteration 0; see its log.")
        # A run stopped by --auto_iter_max writes no final (unfiltered) half maps, and its
        # per-iteration maps are solvent-flattened by the spherical mask, which correlates the
        # halves at every frequency. The sweep reconstructs each half set from the last
        # iteration's poses instead (cryobox's own reconstruction: relion_reconstruct 3.1.3
        # ignores rlnCtfDataAreCtfPremultiplied, so it cannot treat plain and premultiplied
        # stacks alike).
        data = run_dir / f"run_it{it:03d}_data.star"
        if not data.exists():
            raise EngineError(f"{data}: missing; RELION's run stopped before writing its poses.")
        return HalfMaps(
            None, None, it, False, _model_resolution(run_dir / f"run_it{it:03d}_half1_model.star"), poses=data
        )


def _progress(run_dir: Path):
    it = _last_iteration(Path(run_dir))
    if it is None:
        return None
    return it, _model_resolution(Path(run_dir) / f"run_it{it:03d}_half1_model.star")


def _outcome(engine: RelionEngine, run_dir: Path, params: RefineParams, exit_status: int | None) -> HalfMaps:
    run_dir = Path(run_dir)
    if exit_status not in (None, 0):
        raise EngineError(
            f"{engine.refine} failed (exit status {exit_status}) in {run_dir}: {engine.last_error(run_dir)}."
        )
    final = all((run_dir / f"run_half{h}_class001_unfil.mrc").exists() for h in (1, 2))
    it = _last_iteration(run_dir)
    if not final and not (params.auto_iter_max and it is not None and it >= params.auto_iter_max):
        # a batch job whose exit status is gone: finished means final half maps, or the last iteration asked for
        raise EngineError(
            f"{run_dir}: RELION ended at iteration {it if it is not None else 0} without its final half maps: "
            f"{engine.last_error(run_dir)}."
        )
    return engine.collect(run_dir)


def _last_iteration(run_dir: Path) -> int | None:
    its = []
    for f in run_dir.glob("run_it*_half1_class001.mrc"):
        m = re.match(r"run_it(\d+)_half1_class001\.mrc$", f.name)
        if m and (run_dir / f.name.replace("half1", "half2")).exists():
            its.append(int(m.group(1)))
    return max(its) if its else None


def _model_resolution(model_star: Path) -> float | None:
    """rlnCurrentResolution (Å) from a RELION model STAR file, if readable."""
    try:
        text = model_star.read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"_rlnCurrentResolution\s+([0-9.eE+-]+)", text)
    return float(m.group(1)) if m else None
