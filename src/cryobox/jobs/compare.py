"""`cryobox compare`: FSC curves of several runs on one Å axis, from whatever wrote them.

Readers: cryobox `fsc --json` output and `fsc --star`; RELION postprocess.star (corrected FSC),
relion_image_handler --fsc output, run_model.star / run_it*_model.star (gold-standard FSC of
class 1); cryoSPARC FSC text exports (a header line of column names, the first column the shell
index ``wave_number`` in Fourier pixels; box and pixel size must be given for these).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryobox.core.fsc import resolution_interpolated, resolution_relion_rule
from cryobox.errors import InputError
from cryobox.io.star import read_star_blocks

__all__ = ["FscCurve", "load_curve", "compare_curves", "COMMON_RESOLUTIONS_A"]

COMMON_RESOLUTIONS_A = (10.0, 8.0, 6.0, 5.0, 4.5, 4.0, 3.7, 3.5, 3.2, 3.0, 2.8, 2.5)


@dataclass
class FscCurve:
    label: str
    source: str
    kind: str  # what the curve is: corrected, gold-standard, unmasked...
    shells: np.ndarray
    fsc: np.ndarray
    box_px: int
    pixel_size_a: float

    @property
    def frequency_inv_a(self) -> np.ndarray:
        return self.shells / (self.box_px * self.pixel_size_a)

    def summary(self) -> dict:
        n, p = self.box_px, self.pixel_size_a
        # curves indexed by shell from 0: RELION's rule needs the array from shell 0
        full = np.full(int(self.shells.max()) + 1, np.nan)
        full[self.shells.astype(int)] = self.fsc
        full = pd.Series(full).interpolate(limit_direction="both").to_numpy()
        out = {"label": self.label, "source": self.source, "curve": self.kind, "box_px": n, "pixel_size_a": p, "box_a": n * p}
        for t in (0.143, 0.5):
            rel, shell = resolution_relion_rule(full, t, size=n, pixel_size_a=p)
            out[f"resolution_{t:g}_a"] = rel
            out[f"resolution_{t:g}_interpolated_a"] = resolution_interpolated(full, t, size=n, pixel_size_a=p)
        k = self.frequency_inv_a
        out["fsc_at"] = {
            f"{d:g}": (float(np.interp(1.0 / d, k, self.fsc)) if 1.0 / d <= k.max() else None) for d in COMMON_RESOLUTIONS_A
        }
        return out


def _split_label(spec: str) -> tuple[str | None, Path]:
    if "=" in spec and not Path(spec).exists():
        label, path = spec.split("=", 1)
        return label, Path(path)
    return None, Path(spec)


def _default_label(path: Path) -> str:
    if path.stem in ("postprocess", "run_model", "fsc") or path.stem.startswith("run_"):
        return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    return path.stem


def _from_star(path: Path, label: str) -> FscCurve:
    blocks = read_star_blocks(path)
    if "fsc" in blocks:
        fsc = blocks["fsc"]
        for col, kind in (
            ("rlnFourierShellCorrelationCorrected", "corrected (masked, phase-randomised)"),
            ("rlnFourierShellCorrelationUnmaskedMaps", "unmasked"),
            ("rlnFourierShellCorrelation", "unmasked"),
        ):
            if col in fsc:
                break
        else:
            raise InputError(f"{path}: data_fsc has no FSC column (rlnFourierShellCorrelationCorrected / ...UnmaskedMaps).")
        shells = fsc["rlnSpectralIndex"].to_numpy(dtype=np.float64)
        res = fsc["rlnAngstromResolution"].to_numpy(dtype=np.float64)
        box_a = float(res[shells == 1][0]) if (shells == 1).any() else float(res[1] * shells[1])
        s_max = int(shells.max())
        box = 2 * s_max
        return FscCurve(label, str(path), kind, shells, fsc[col].to_numpy(dtype=np.float64), box, box_a / box)
    model = [k for k in blocks if k.startswith("model_class_")]
    if model and "model_general" in blocks:
        cls = blocks[sorted(model)[0]]
        gen = blocks["model_general"]
        if "rlnGoldStandardFsc" not in cls:
            raise InputError(f"{path}: {sorted(model)[0]} has no rlnGoldStandardFsc; use a 3D auto-refine model file.")
        box = int(gen["rlnOriginalImageSize"].iloc[0])
        px = float(gen["rlnPixelSize"].iloc[0])
        shells = cls["rlnSpectralIndex"].to_numpy(dtype=np.float64) if "rlnSpectralIndex" in cls else np.arange(len(cls), dtype=float)
        return FscCurve(label, str(path), "gold-standard (refinement)", shells, cls["rlnGoldStandardFsc"].to_numpy(dtype=np.float64), box, px)
    raise InputError(f"{path}: neither a postprocess/FSC STAR file (data_fsc) nor a model STAR file (data_model_class_1).")


def _from_json(path: Path, label: str) -> FscCurve:
    try:
        d = json.loads(path.read_text())
        c = d["curves"]
        kind, f = ("corrected (masked, phase-randomised)", c["fsc_corrected"]) if c.get("fsc_corrected") else ("unmasked", c["fsc_unmasked"])
        return FscCurve(label, str(path), kind, np.asarray(c["shell"], float), np.asarray(f, float), int(d["box_px"]), float(d["pixel_size_a"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a `cryobox fsc --json` result ({type(exc).__name__}: {exc}).") from None


_CRYOSPARC_ORDER = ("fsc_noisesub", "fsc_tightmask", "corrected", "fsc_loosemask", "fsc", "fsc_nomask")


def _from_text(path: Path, label: str, *, box_px: int | None, pixel_size_a: float | None) -> FscCurve:
    if box_px is None or pixel_size_a is None:
        raise InputError(f"{path}: a cryoSPARC FSC text table holds shells, not Å; give --box and --pixel-size of that refinement.")
    try:
        text = path.read_text().splitlines()
        header = text[0].lstrip("#").replace(",", " ").split()
        rows = [line.replace(",", " ").split() for line in text[1:] if line.strip() and not line.startswith("#")]
        table = pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=header[: len(rows[0])])
    except (ValueError, IndexError) as exc:
        raise InputError(f"{path}: not a table with a header of column names ({exc}).") from None
    col = next((c for c in _CRYOSPARC_ORDER if c in table), table.columns[1])
    return FscCurve(label, str(path), col, table.iloc[:, 0].to_numpy(), table[col].to_numpy(), int(box_px), float(pixel_size_a))


def load_curve(spec: str, *, box_px: int | None = None, pixel_size_a: float | None = None) -> FscCurve:
    """An FSC curve from ``PATH`` or ``LABEL=PATH`` (format from the content)."""
    label, path = _split_label(spec)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path.")
    label = label or _default_label(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_json(path, label)
    if suffix == ".star":
        return _from_star(path, label)
    return _from_text(path, label, box_px=box_px, pixel_size_a=pixel_size_a)


def compare_curves(curves: list[FscCurve]) -> dict:
    return {"runs": [c.summary() for c in curves], "common_resolutions_a": list(COMMON_RESOLUTIONS_A)}
