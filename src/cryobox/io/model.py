"""Atomic models (PDB / mmCIF, read with gemmi) as electron scattering potentials."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryobox.core.boxsize import next_fft_friendly_size
from cryobox.core.simulate import atoms_to_map
from cryobox.errors import InputError

__all__ = ["model_potential"]


def model_potential(path: str | os.PathLike, *, pixel_size_a: float, box_px: int | None = None) -> np.ndarray:
    """The model's electron scattering potential on a cubic grid centred on the model.

    Each atom scatters with its element's electron form factor at zero angle (the sum of the
    International Tables C 4.3.2.2 Gaussian coefficients, gemmi's ``c4322``), is placed by
    trilinear splatting and blurred with its mean B-factor (at least 10 Å^2): a faithful
    low- to medium-resolution potential for simulation.
    """
    try:
        import gemmi
    except ImportError:  # pragma: no cover - gemmi is a dependency
        raise InputError("reading atomic models needs gemmi: pip install gemmi.") from None

    path = Path(path)
    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable PDB / mmCIF model ({exc}).") from None
    st.remove_hydrogens()
    xyz, weights, bfac = [], [], []
    cache: dict[str, float] = {}
    for model in st:
        for chain in model:
            for res in chain:
                for atom in res:
                    el = atom.element.name
                    if el not in cache:
                        cache[el] = float(sum(atom.element.c4322.a))
                    xyz.append((atom.pos.x, atom.pos.y, atom.pos.z))
                    weights.append(cache[el] * atom.occ)
                    bfac.append(atom.b_iso)
        break  # first model only
    if not xyz:
        raise InputError(f"{path}: the model has no atoms.")
    pts = np.asarray(xyz)
    pts -= pts.mean(axis=0)
    extent = 2.0 * np.abs(pts).max() + 20.0
    if box_px is None:
        box_px = next_fft_friendly_size(1.25 * extent / pixel_size_a)
    return atoms_to_map(
        pts, box_px, pixel_size_a, weights=np.asarray(weights), bfactor_a2=max(10.0, float(np.mean(bfac)))
    )
