"""Refinement engines the sweep drives: one small interface (check, command, progress, outcome),
and the launchers that run them (this machine, SLURM)."""

from cryobox.engines.base import EngineError, EngineMissing, HalfMaps, RefineEngine, RefineParams, RunCommand

__all__ = ["EngineError", "EngineMissing", "HalfMaps", "RefineEngine", "RefineParams", "RunCommand", "get_engine"]


def get_engine(name: str, **options) -> RefineEngine:
    """The engine called ``name`` ("relion")."""
    if name == "relion":
        from cryobox.engines.relion import RelionEngine

        return RelionEngine(**options)
    raise EngineError(f"unknown refinement engine {name!r}; available: relion.")
