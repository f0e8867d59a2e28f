"""FSC curves from whatever wrote them: one set of readers for `compare`, `report --fsc` and `judge`.

Formats (told apart by content, not only by name):

- cryobox ``fsc --json`` output (box and pixel size inside);
- STAR files with ``data_fsc``: cryobox ``fsc --star`` and RELION ``postprocess.star`` (the
  corrected FSC when present; box from the highest ``rlnSpectralIndex``, pixel size from
  ``rlnAngstromResolution``);
- ``relion_image_handler --fsc`` output (a ``data_fsc`` block with ``rlnFourierShellCorrelation``);
- RELION ``run_model.star`` / ``run_it*_model.star`` (``rlnGoldStandardFsc`` of class 1; box and
  pixel size from ``data_model_general``);
- cryoSPARC FSC text exports: a header line of column names, the first column the shell index
  (``wave_number``, Fourier pixels), then the curves (``fsc_noisesub`` = "corrected", the tight,
  loose and no-mask curves). They hold shells, not Å: give the refinement's box and pixel size.

A run is named ``PATH``, ``LABEL=PATH`` or either followed by ``@BOX:PIXELSIZE`` (``@280:1.06``,
``@280`` or ``@:1.06``) for files that do not carry them, e.g. ``cs280=J50_fsc.txt@280:1.06``. A
box that contradicts the number of shells in the file is refused, never used silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryobox.core.fsc import FscResult, first_shell_below, resolution_interpolated, resolution_relion_rule
from cryobox.errors import InputError
from cryobox.io.star import read_star_blocks

__all__ = [
    "FscCurve",
    "RunSpec",
    "parse_run_spec",
    "load_curve",
    "resolution_text",
    "postprocess_star_blocks",
    "COMMON_RESOLUTIONS_A",
]

COMMON_RESOLUTIONS_A = (
    30.0, 20.0, 15.0, 12.0, 10.0, 8.0, 6.0, 5.0, 4.5, 4.0, 3.7, 3.5, 3.2, 3.0, 2.8, 2.5, 2.2, 2.0, 1.8, 1.5
)  # fmt: skip
_CRYOSPARC_ORDER = ("fsc_noisesub", "fsc_tightmask", "corrected", "fsc_loosemask", "fsc", "fsc_nomask")
_BOX_SUFFIX = re.compile(r"@(\d*)(?::([0-9]*\.?[0-9]+))?$")


@dataclass(frozen=True)
class RunSpec:
    """A run as the user named it: a label, a path, and the box (px) / pixel size (Å/px) given with it."""

    label: str | None
    path: Path
    box_px: int | None = None
    pixel_size_a: float | None = None


def parse_run_spec(spec: str) -> RunSpec:
    """``[LABEL=]PATH[@BOX[:PIXELSIZE]]`` -> RunSpec (a path that exists as written wins)."""
    text = str(spec)
    box = psize = None
    m = _BOX_SUFFIX.search(text)
    if m and not Path(text).exists() and (m.group(1) or m.group(2)):
        box = int(m.group(1)) if m.group(1) else None
        psize = float(m.group(2)) if m.group(2) else None
        text = text[: m.start()]
    if "@" in text and not Path(text).exists() and not m:
        raise InputError(
            f"{spec}: after @ give the box in px and, for cryoSPARC tables, the pixel size: PATH@280 or PATH@280:1.06."
        )
    label = None
    if "=" in text and not Path(text).exists():
        label, text = text.split("=", 1)
    if box is not None and box < 2:
        raise InputError(f"{spec}: the box after @ must be at least 2 px.")
    if psize is not None and not psize > 0:
        raise InputError(f"{spec}: the pixel size after @BOX: must be a positive number of Å/px.")
    return RunSpec(label or None, Path(text), box, psize)


@dataclass
class FscCurve:
    """One FSC curve on shells of one Fourier pixel, with the box (px) and pixel size (Å/px) it belongs to."""

    label: str
    source: str
    kind: str  # what the curve is: corrected, gold-standard, unmasked...
    shells: np.ndarray
    fsc: np.ndarray
    box_px: int
    pixel_size_a: float

    @property
    def frequency_inv_a(self) -> np.ndarray:
        """Spatial frequency of each shell (1/Å)."""
        return self.shells / (self.box_px * self.pixel_size_a)

    def summary(self) -> dict:
        """Resolutions at 0.143 and 0.5 (RELION's rule and interpolated) and the FSC at common
        resolutions. A curve that never falls below a threshold is limited by Nyquist (or by the
        last shell it has): ``limited_0.143`` is then True and the value is a bound (≤), not a
        measurement."""
        import pandas as pd

        n, p = self.box_px, self.pixel_size_a
        # curves indexed by shell from 0: RELION's rule needs the array from shell 0
        full = np.full(int(self.shells.max()) + 1, np.nan)
        full[self.shells.astype(int)] = self.fsc
        full = pd.Series(full).interpolate(limit_direction="both").to_numpy()
        out = {
            "label": self.label,
            "source": self.source,
            "curve": self.kind,
            "box_px": n,
            "pixel_size_a": p,
            "box_a": n * p,
            "nyquist_a": 2.0 * p,
            "last_shell_a": n * p / max(int(self.shells.max()), 1),
        }
        for t in (0.143, 0.5):
            rel, _ = resolution_relion_rule(full, t, box_px=n, pixel_size_a=p)
            out[f"resolution_{t:g}_a"] = rel
            out[f"resolution_{t:g}_interpolated_a"] = resolution_interpolated(full, t, box_px=n, pixel_size_a=p)
            out[f"limited_{t:g}"] = first_shell_below(full, t, start=1) is None
        k = self.frequency_inv_a
        out["fsc_at"] = {
            f"{d:g}": (float(np.interp(1.0 / d, k, self.fsc)) if 1.0 / d <= k.max() else None)
            for d in COMMON_RESOLUTIONS_A
        }
        return out


def resolution_text(summary: dict, threshold: float = 0.143, *, interpolated: bool = True) -> str:
    """ "3.62 Å", or "limited by Nyquist (≤ 2.12 Å)" when the curve never falls below the threshold."""
    if summary.get(f"limited_{threshold:g}"):
        bound = summary["last_shell_a"]
        what = "Nyquist" if abs(bound - summary["nyquist_a"]) < 1e-6 * bound else "the last shell in the file"
        return f"limited by {what} (≤ {bound:.2f} Å)"
    key = f"resolution_{threshold:g}_interpolated_a" if interpolated else f"resolution_{threshold:g}_a"
    return f"{summary[key]:.2f} Å"


def _default_label(path: Path) -> str:
    if path.stem in ("postprocess", "run_model", "fsc") or path.stem.startswith("run_"):
        return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    return path.stem


def _check_box(path: Path, max_shell: int, box_px: int, *, given: bool) -> None:
    """The highest shell of a full curve is N//2 (RELION, cryobox) or N//2 - 1 (some exports);
    anything else means the box does not belong to the file."""
    if box_px // 2 - 1 <= max_shell <= box_px // 2:
        return
    fits = f"{2 * max_shell}-{2 * max_shell + 3}"
    where = "given" if given else "in the file"
    raise InputError(
        f"{path}: the curve has shells 0-{max_shell}, which fits a box of {fits} px, not the {box_px} px {where}; "
        f"give the box of that refinement (e.g. {path}@{2 * max_shell}:PIXELSIZE)."
    )


def _text(x) -> str:
    try:
        return f"{float(x):g}"
    except (TypeError, ValueError):
        return repr(x)


def _floats(values: list) -> np.ndarray:
    """Each value as a float, NaN where it is not a number (null, text)."""
    out = np.full(len(values), np.nan)
    for i, x in enumerate(values):
        try:
            out[i] = float(x)
        except (TypeError, ValueError):
            pass
    return out


def _check_curve(path: Path, shells, values, *, box_px=None, pixel_size_a=None) -> tuple[np.ndarray, np.ndarray]:
    """Shells and FSC values as float arrays, or one sentence for a curve no program writes: unequal
    lengths, shells that are not whole numbers from 0 upwards, missing (null, NaN) values, fewer
    than 3 shells, a box under 2 px or a pixel size that is not a positive number."""
    shells, values = list(shells), list(values)
    s, v = _floats(shells), _floats(values)
    if len(s) != len(v):
        raise InputError(f"{path}: {len(s)} shells but {len(v)} FSC values; the file is damaged: write it again.")
    if len(s) < 3:
        raise InputError(f"{path}: {len(s)} shell(s); an FSC curve has at least 3: give the whole curve.")
    bad = ~np.isfinite(s) | (s < 0) | (s % 1 != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{path}: shell {_text(shells[i])} (row {i + 1}) is not a whole number of 0 or more; the file is damaged."
        )
    if (np.diff(s) <= 0).any():
        i = int(np.flatnonzero(np.diff(s) <= 0)[0]) + 1
        raise InputError(f"{path}: shell {int(s[i])} (row {i + 1}) does not follow {int(s[i - 1])}; shells increase.")
    missing = ~np.isfinite(v)
    if missing.all():
        raise InputError(f"{path}: no FSC values (all {len(v)} are null or not numbers); the file holds no curve.")
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"{path}: no FSC value at shell {int(s[i])} (row {i + 1}); the curve has a hole: write it again."
        )
    if box_px is not None and not (np.isfinite(box_px) and box_px >= 2):
        raise InputError(f"{path}: a box of {box_px} px; a curve belongs to a box of at least 2 px.")
    if pixel_size_a is not None and not (np.isfinite(pixel_size_a) and pixel_size_a > 0):
        raise InputError(
            f"{path}: a pixel size of {pixel_size_a} Å/px (from its resolutions); give it as @BOX:PIXELSIZE or fix "
            "rlnAngstromResolution."
        )
    return s, v


def _from_star(path: Path, label: str, spec: RunSpec) -> FscCurve:

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
            raise InputError(
                f"{path}: data_fsc has no FSC column (rlnFourierShellCorrelationCorrected / ...UnmaskedMaps)."
            )
        if "rlnSpectralIndex" not in fsc or len(fsc) < 3:
            raise InputError(
                f"{path}: data_fsc has no rlnSpectralIndex column (or under 3 shells); the file is damaged."
            )
        shells, values = _check_curve(path, fsc["rlnSpectralIndex"], fsc[col])
        s_max = int(shells.max())
        box = spec.box_px or 2 * s_max
        _check_box(path, s_max, box, given=spec.box_px is not None)
        psize = spec.pixel_size_a
        if psize is None:
            if "rlnAngstromResolution" not in fsc:
                raise InputError(
                    f"{path}: no rlnAngstromResolution to take the pixel size from; give it as {path}@{box}:PIXELSIZE."
                )
            res = _floats(list(fsc["rlnAngstromResolution"]))
            box_a = float(res[shells == 1][0]) if (shells == 1).any() else float(res[1] * shells[1])
            psize = box_a / box
        _check_curve(path, shells, values, box_px=box, pixel_size_a=psize)
        return FscCurve(label, str(path), kind, shells, values, box, psize)
    model = [k for k in blocks if k.startswith("model_class_")]
    if model and "model_general" in blocks:
        cls = blocks[sorted(model)[0]]
        gen = blocks["model_general"]
        if "rlnGoldStandardFsc" not in cls:
            raise InputError(f"{path}: {sorted(model)[0]} has no rlnGoldStandardFsc; use a 3D auto-refine model file.")
        try:
            box = int(gen["rlnOriginalImageSize"].iloc[0])
            pixel_a = float(gen["rlnPixelSize"].iloc[0])
        except (KeyError, ValueError, TypeError):
            raise InputError(
                f"{path}: data_model_general needs rlnOriginalImageSize (a whole number of px) and rlnPixelSize (Å); "
                "one is missing or not a number: give the run_model.star RELION wrote."
            ) from None
        if spec.box_px is not None and spec.box_px != box:
            raise InputError(
                f"{path}: the model file says {box} px (rlnOriginalImageSize), not the {spec.box_px} px given; drop "
                f"@{spec.box_px}."
            )
        shells, values = _check_curve(
            path,
            cls["rlnSpectralIndex"] if "rlnSpectralIndex" in cls else np.arange(len(cls), dtype=float),
            cls["rlnGoldStandardFsc"],
            box_px=box,
            pixel_size_a=spec.pixel_size_a or pixel_a,
        )
        return FscCurve(
            label, str(path), "gold-standard (refinement)", shells, values, box, spec.pixel_size_a or pixel_a
        )
    raise InputError(
        f"{path}: neither a postprocess/FSC STAR file (data_fsc) nor a model STAR file (data_model_class_1)."
    )


def _from_json(path: Path, label: str, spec: RunSpec) -> FscCurve:
    try:
        d = json.loads(path.read_text())
        c = d["curves"]
        kind, f = (
            ("corrected (masked, phase-randomised)", c["fsc_corrected"])
            if c.get("fsc_corrected")
            else ("unmasked", c["fsc_unmasked"])
        )
        shells, values = _check_curve(
            path, c["shell"], f, box_px=float(d["box_px"]), pixel_size_a=float(d["pixel_size_a"])
        )
        curve = FscCurve(label, str(path), kind, shells, values, int(d["box_px"]), float(d["pixel_size_a"]))
    except InputError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a `cryobox fsc --json` result ({type(exc).__name__}: {exc}).") from None
    for given, have, what in (
        (spec.box_px, curve.box_px, "box"),
        (spec.pixel_size_a, curve.pixel_size_a, "pixel size"),
    ):
        if given is not None and abs(given - have) > 1e-6 * have:
            raise InputError(f"{path}: the file says {what} {have:g}, not the {given:g} given; drop the @ part.")
    return curve


def _from_text(path: Path, label: str, spec: RunSpec) -> FscCurve:
    try:
        text = path.read_text().splitlines()
        header = text[0].lstrip("#").replace(",", " ").split()
        rows = [line.replace(",", " ").split() for line in text[1:] if line.strip() and not line.startswith("#")]
        table = np.asarray(rows, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] < 2 or len(header) < table.shape[1] or len(table) < 3:
            raise ValueError("expected a header of column names and at least 3 rows of 2 or more numbers")
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: a binary file, not an FSC curve; give `cryobox fsc --json` output, a RELION postprocess or "
            "model STAR, or a cryoSPARC FSC text table (for half maps, write H1.mrc:H2.mrc)."
        ) from None
    except (ValueError, IndexError) as exc:
        raise InputError(f"{path}: not an FSC table with a header of column names ({exc}).") from None
    columns = {name: table[:, j] for j, name in enumerate(header[: table.shape[1]])}
    col = next((c for c in _CRYOSPARC_ORDER if c in columns), header[1])
    shells, _ = _check_curve(path, table[:, 0], columns[col])
    if spec.box_px is None or spec.pixel_size_a is None:
        guess = 2 * int(shells.max())
        raise InputError(
            f"{path}: a cryoSPARC FSC table holds shells, not Å; give the refinement's box and pixel size, "
            f"e.g. {path}@{guess}:1.06 (its {int(shells.max())} shells fit a box of about {guess} px)."
        )
    _check_box(path, int(shells.max()), spec.box_px, given=True)
    return FscCurve(label, str(path), col, shells, columns[col], int(spec.box_px), float(spec.pixel_size_a))


def load_curve(spec: str | RunSpec, *, box_px: int | None = None, pixel_size_a: float | None = None) -> FscCurve:
    """An FSC curve from ``[LABEL=]PATH[@BOX[:PIXELSIZE]]`` (format from the content).

    ``box_px`` (px) and ``pixel_size_a`` (Å/px) are defaults for files that lack them, used only
    where the spec gives none; a box that contradicts the file's shells is refused.
    """
    rs = spec if isinstance(spec, RunSpec) else parse_run_spec(spec)
    path = rs.path
    if path.is_dir():
        raise InputError(f"{path}: a folder, not an FSC file; give its postprocess.star, run_model.star or FSC .txt.")
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path.")
    label = rs.label or _default_label(path)
    with open(path, "rb") as fh:
        head = fh.read(2048)
    if path.suffix.lower() == ".json" or head.lstrip().startswith(b"{"):
        return _from_json(path, label, rs)
    if path.suffix.lower() == ".star" or b"data_" in head:
        return _from_star(path, label, rs)
    # the defaults are for shell-indexed text tables only: STAR and JSON files carry their own
    rs = RunSpec(
        rs.label,
        rs.path,
        rs.box_px if rs.box_px is not None else box_px,
        rs.pixel_size_a if rs.pixel_size_a is not None else pixel_size_a,
    )
    return _from_text(path, label, rs)


def postprocess_star_blocks(result: FscResult, *, half1: str, half2: str, mask: str | None) -> dict:
    """``data_general`` and ``data_fsc`` of an FSC analysis with relion_postprocess's labels (the
    file CtfRefine, Polish and ``load_curve`` read)."""
    import pandas as pd  # here, so `cryobox fsc` starts without pandas

    r = result
    shells = r.shells
    with np.errstate(divide="ignore"):
        res_a = np.where(shells > 0, r.box_px * r.pixel_size_a / np.maximum(shells, 1), 999.0)
    general = {
        "rlnFinalResolution": float(r.resolution(0.143)["resolution_a"]),
        "rlnBfactorUsedForSharpening": 0.0,
        "rlnUnfilteredMapHalf1": half1,
        "rlnUnfilteredMapHalf2": half2,
    }
    fsc = {"rlnSpectralIndex": shells.astype(np.int64), "rlnResolution": 1.0 / res_a, "rlnAngstromResolution": res_a}
    if r.fsc_corrected is not None and r.fsc_masked is not None:
        general["rlnMaskName"] = mask or ""
        general["rlnRandomiseFrom"] = float(r.box_px * r.pixel_size_a / r.randomise_at_shell)
        fsc["rlnFourierShellCorrelationCorrected"] = r.fsc_corrected
        fsc["rlnFourierShellCorrelationUnmaskedMaps"] = r.fsc_unmasked
        fsc["rlnFourierShellCorrelationMaskedMaps"] = r.fsc_masked
        fsc["rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps"] = r.fsc_random_masked
    else:
        fsc["rlnFourierShellCorrelationUnmaskedMaps"] = r.fsc_unmasked
    return {"general": general, "fsc": pd.DataFrame(fsc)}
