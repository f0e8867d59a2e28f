"""Shared CLI plumbing: consoles, error handling (exit 2, one sentence), JSON output."""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Callable

import typer
from rich.console import Console

from cryobox.errors import InputError
from cryobox.io.jsonio import jsonable
from cryobox.report.text import fmt  # noqa: F401  (re-exported for the CLI modules)

# Wide enough for the candidate table when piped to a file or a log (rich would use 80 columns).
_WIDTH = None if sys.stdout.isatty() else 140
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)


def fail(message: str) -> None:
    """Print one clear sentence to stderr and exit with status 2."""
    err_console.print(f"[bold red]cryobox: error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=2)


#: Below the CLI, messages name parameters in backticks (`box_px`), so Python callers read their
#: own terms; the CLI shows the flag that sets each. A command whose flag differs from this table
#: gives its own with ``handle_input_errors(flags={...})``.
PARAMETER_FLAGS = {
    "keep_going": "--keep-going",
    "coords_dir": "--coords-dir",
    "coords_suffix": "--coords-suffix",
    "premultiply_box_px": "--premultiply-box",
    "premultiply_micrograph": "--premultiply-micrograph",
    "premultiply_from_px": "--premultiply-from",
    "premultiply": "--premultiply",
    "box_px": "--box",
    "boxes_px": "--boxes",
    "rescale_px": "--rescale",
    "edge": "--edge",
    "edge='keep'": "--edge keep",
    "bg_radius_px": "--bg-radius",
    "phase_flip": "--phase-flip",
    "recenter": "--recenter",
    "optics_group": "--optics-group",
    "voltage_kv": "--voltage",
    "cs_mm": "--cs",
    "pixel_size_a": "--pixel-size",
    "new_pixel_size_a": "--to-pixel-size",
    "defocus_min_a": "--defocus-min",
    "defocus_max_a": "--defocus-max",
    "mask": "--mask",
    "reference": "--reference",
    "auto_mask": "--auto-mask",
    "mask_threshold": "--mask-threshold",
    "mask_policies": "--mask-policy",
    "lowpass_a": "--lowpass",
    "highpass_a": "--highpass",
    "map_path": "--map",
    "model_path": "--model",
    "n_particles": "--n",
    "n_micrographs": "--micrographs",
    "per_micrograph": "--per-micrograph",
    "percentile": "--percentile",
    "repeats": "--repeats",
    "particle_diameter_a": "--particle-diameter",
    "ini_high_a": "--ini-high",
    "auto_iter_max": "--auto-iter-max",
    "resample": "--resample",
    "force_mask": "--force-mask",
    "halves=False": "--no-halves",
    "ctf=False": "--no-ctf",
    "bfactor_a2": "--bfactor",
    "randomise_at_a": "--randomise-at",
    "mask_out": "--mask-out",
    "out": "--out",
    "invert": "--invert",
    "diameter_a": "--diameter",
    "resolution_a": "--resolution",
    "amplitude_contrast": "--amp-contrast",
    "defocus_u_a": "--defocus-u",
    "defocus_v_a": "--defocus-v",
    "threshold": "--threshold",
    "healpix_order": "--healpix-order",
    "local_healpix_order": "--local-healpix-order",
    "mask_lowpass_a": "--mask-lowpass",
    "mask_extend_a": "--mask-extend",
    "mask_soft_edge_a": "--mask-soft-edge",
    "edge_width_shells": "--filter-edge-width",
    "submit_template": "--submit-template",
    "size_px": "--size",
    "particles": "--particles",
    "unmasked_across_boxes": "--unmasked-across-boxes",
    "auto_mask=False": "--no-mask",
    "n_directions": "--directions",
}


def flag_words(message: str, flags: dict[str, str] | None = None) -> str:
    """A library message in the command line's words: each backticked parameter name the table
    knows becomes its flag (other backticked text stays as it is)."""
    table = {**PARAMETER_FLAGS, **(flags or {})}
    return re.sub(r"`([^`]+)`", lambda m: table.get(m.group(1), m.group(0)), message)


def handle_input_errors(fn: Callable | None = None, *, flags: dict[str, str] | None = None) -> Callable:
    """Turn ``InputError`` (bad input) into one sentence on stderr (in flags, see ``flag_words``)
    and exit status 2."""
    if fn is None:
        return functools.partial(handle_input_errors, flags=flags)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            fail(flag_words(str(exc), flags))
        except MemoryError:
            fail("not enough memory for this job on this machine; use smaller boxes or maps, or a bigger machine.")
        except OSError as exc:  # an output that is a folder, read-only, or a full disk (ulimit -f, quota)
            if exc.filename is None:
                raise
            fail(
                f"{exc.filename}: cannot be written or read ({exc.strerror}); check the path, its permissions and "
                "the free disk space."
            )
        except KeyboardInterrupt:
            err_console.print("cryobox: interrupted; outputs are written atomically, re-run to start again.")
            raise typer.Exit(code=130) from None

    return wrapper


def print_json(obj) -> None:
    """JSON on stdout (non-finite floats become null, numpy scalars plain numbers)."""
    sys.stdout.write(json.dumps(jsonable(obj), indent=2) + "\n")


def parse_size(text: str | None, *, flag: str) -> tuple[int, int] | None:
    """'5760x4092' -> (5760, 4092) (width x height, px)."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().replace("*", "x").split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        fail(f"{flag} takes WIDTHxHEIGHT in pixels, like 5760x4092; got {text!r}.")
    return w, h


PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def check_plot_path(path, *, flag: str = "--plot") -> None:
    """Before any work: a figure file whose extension matplotlib writes (PNG, PDF, SVG)."""
    if path is not None and Path(path).suffix.lower() not in PLOT_SUFFIXES:
        fail(f"{flag} {path}: give a .png, .pdf or .svg file name.")


def check_output_flags(outputs: dict[str, Path | None], inputs=(), *, figures=("--plot",)) -> None:
    """Before any work: every output flag's file checked against every input (same path, a link,
    ``..`` or a hard link), against the others, and against files cryobox did not write
    (``jobs.outputs.check_outputs``); figure flags also for their extension."""
    from cryobox.jobs.outputs import check_outputs

    for flag in figures:
        check_plot_path(outputs.get(flag), flag=flag)
    check_outputs(list(outputs.values()), list(inputs), names=list(outputs))


def parse_boxes(text: str | None, *, flag: str) -> tuple[int, ...]:
    """``280,576`` -> (280, 576); one sentence and exit 2 for anything else."""
    if not text:
        return ()
    try:
        boxes = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        fail(f"{flag} takes box sizes in px separated by commas, like 280,576; got {text!r}.")
    if not boxes or any(b < 2 for b in boxes):
        fail(f"{flag}: every box must be at least 2 px, got {text!r}.")
    return boxes
