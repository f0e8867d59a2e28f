"""Refinement engines the sweep drives: one small interface (check, command, progress, outcome),
and the launchers that run them (this machine, SLURM)."""

from cryobox.engines.base import EngineError, EngineMissing, HalfMaps, RefineEngine, RefineParams, RunCommand
from cryobox.engines.launch import LocalLauncher, SlurmLauncher
from cryobox.engines.relion import RelionEngine

__all__ = [
    "EngineError",
    "EngineMissing",
    "HalfMaps",
    "RefineEngine",
    "RefineParams",
    "RunCommand",
    "ENGINES",
    "build",
    "get_engine",
]

ENGINES = ("relion",)


def get_engine(name: str, **options) -> RefineEngine:
    """The engine called ``name`` ("relion")."""
    if name == "relion":
        return RelionEngine(**options)
    raise EngineError(f"unknown refinement engine {name!r}; available: relion.")


def build(
    name: str,
    scheduler: str = "local",
    *,
    ranks: int = 3,
    threads: int | None = None,
    parallel_runs: int | None = 1,
    cores: int = 1,
    slurm: dict | None = None,
):
    """The engine called ``name`` and the launcher that runs it (``scheduler``: "local" or
    "slurm"), with notes on the choices made. Local: ``parallel_runs`` runs at once (None: as
    many as ``cores`` hold), the cores shared between them when ``threads`` is not given. SLURM:
    ``slurm`` holds the SlurmLauncher's options (template_path, queue, submit_extra,
    submit_command); the MPI flag OpenMPI needs as root is passed on when mpirun is here. Returns
    (engine, launcher, notes)."""

    if name not in ENGINES:
        raise EngineError(f"unknown refinement engine {name!r}; available: {', '.join(ENGINES)}.")
    notes: list[str] = []
    if scheduler == "local":
        k = parallel_runs
        if threads is None and k and k > 1:  # share the cores between the runs
            threads = max(1, (cores // k - 1) // max(1, ranks - 1))
        engine = get_engine(name, ranks=ranks, threads=threads)
        per_run = engine.ranks * engine.threads
        if k is None:
            k = max(1, cores // per_run)
        if k * per_run > cores:
            notes.append(
                f"{k} run(s) x {engine.ranks} ranks x {engine.threads} thread(s) = {k * per_run} processes on "
                f"{cores} cores: oversubscribed (RELION's master rank mostly waits; each run is slower)."
            )
        return engine, LocalLauncher(k), notes
    if scheduler != "slurm":
        raise EngineError(f"unknown scheduler {scheduler!r}; available: local, slurm.")
    engine = get_engine(name, ranks=ranks, threads=threads)
    try:  # OpenMPI refuses root without this flag; a login node may have no mpirun: then none
        flags = tuple(f for f in engine.mpi_flags() if f == "--allow-run-as-root")
    except EngineMissing:
        flags = ()
    return engine, SlurmLauncher(**(slurm or {}), mpi_flags=flags), notes
