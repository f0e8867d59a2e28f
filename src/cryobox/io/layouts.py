"""Where each refinement program writes a run's half maps, and a run named on the command line
(``half1.mrc:half2.mrc``, a cryoSPARC job folder or export, a RELION Refine3D folder) -> its half
maps. One registry, ``HALF_MAP_LAYOUTS``, for every reader of runs."""

from __future__ import annotations

import re
from pathlib import Path

from cryobox.errors import InputError

__all__ = ["RunMaps", "HALF_MAP_LAYOUTS", "cryosparc_half_maps", "relion_half_maps", "find_half_maps"]

_CS_HALF_A = re.compile(r"(?:^|_)(\d{3})_volume_map_half_A\.mrc$")


class RunMaps:
    """One run's half maps and where they came from (a sentence for the tables)."""

    def __init__(self, spec: str, half1: Path, half2: Path, source: str):
        self.spec, self.half1, self.half2, self.source = spec, Path(half1), Path(half2), source


def cryosparc_half_maps(folder: Path) -> tuple[Path, Path] | None:
    """The last iteration's ``J50_NNN_volume_map_half_A.mrc`` / ``_half_B.mrc`` at any depth
    below a cryoSPARC job folder or export (Homogeneous and Non-uniform Refinement's
    "map_half_A/B" outputs)."""
    found = sorted(p for p in folder.rglob("*map_half_A.mrc") if p.is_file())
    if not found:
        return None

    def iteration(p: Path) -> int:
        m = _CS_HALF_A.search(p.name)
        return int(m.group(1)) if m else -1

    best = max(found, key=lambda p: (iteration(p), p.stat().st_mtime))
    partner = best.with_name(best.name.replace("map_half_A", "map_half_B"))
    if not partner.is_file():
        raise InputError(f"{best}: its partner {partner.name} is missing; give the half maps as half_A.mrc:half_B.mrc.")
    return best, partner


def relion_half_maps(folder: Path) -> tuple[Path, Path] | None:
    """A RELION Refine3D folder's final ``run_half1_class001_unfil.mrc`` / ``_half2_`` (written
    when the refinement converged)."""
    found = sorted(folder.glob("*_half1_class001_unfil.mrc"))
    if not found:
        return None
    h1 = found[-1]
    h2 = h1.with_name(h1.name.replace("_half1_", "_half2_"))
    if not h2.is_file():
        raise InputError(f"{h1}: its partner {h2.name} is missing; give the half maps as half1.mrc:half2.mrc.")
    return h1, h2


# each program and how to find a finished run's half maps in its folder; a new program's layout
# goes here, and judge (and anything else that reads runs) finds it
HALF_MAP_LAYOUTS = (("cryoSPARC", cryosparc_half_maps), ("RELION", relion_half_maps))


def find_half_maps(spec: str) -> RunMaps:
    """A run named as ``half1.mrc:half2.mrc``, a cryoSPARC job folder (or export) or a RELION
    Refine3D folder -> its half maps; one sentence when none are found."""
    text = str(spec)
    if ":" in text and not Path(text).exists():
        a, b = text.split(":", 1)
        for p in (a, b):
            if not Path(p).is_file():
                raise InputError(f"{p}: no such half map (from the run {text!r}); check the path.")
        return RunMaps(text, Path(a), Path(b), "half maps given")
    folder = Path(text)
    if folder.is_file():
        raise InputError(
            f"{folder}: a single file; give a run as half1.mrc:half2.mrc, a cryoSPARC job folder or a RELION "
            "Refine3D folder."
        )
    if not folder.is_dir():
        raise InputError(
            f"{folder}: no such folder or half-map pair; give half1.mrc:half2.mrc, a cryoSPARC job folder (J50) "
            "or a RELION Refine3D folder."
        )
    for program, find in HALF_MAP_LAYOUTS:
        pair = find(folder)
        if pair:
            return RunMaps(text, pair[0], pair[1], f"{program} {folder.name}: {pair[0].name}")
    unfinished = sorted(folder.glob("run_it*_data.star"))
    hint = (
        (
            f" It looks like an unfinished RELION refinement: `cryobox reconstruct {unfinished[-1]} --out halves/` "
            "makes half maps "
            "from its last poses; then give halves/half1_unfil.mrc:halves/half2_unfil.mrc."
        )
        if unfinished
        else ""
    )
    raise InputError(
        f"{folder}: no half maps found (looked for cryoSPARC's *map_half_A.mrc / *map_half_B.mrc and RELION's "
        f"run_half1_class001_unfil.mrc / run_half2_class001_unfil.mrc).{hint}"
    )
