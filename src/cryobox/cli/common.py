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
#: own terms; the CLI shows the flag that sets each. The flag is found by rule: the parameter's
#: name without its unit suffix, with dashes (`box_px` -> --box, `pixel_size_a` -> --pixel-size),
#: when a command of the app has that flag. This table holds only the exceptions to the rule; a
#: command whose flag differs gives its own with ``handle_input_errors(flags={...})``.
PARAMETER_FLAGS = {
    "edge='keep'": "--edge keep",
    "new_pixel_size_a": "--to-pixel-size",
    "mask_policies": "--mask-policy",
    "map_path": "--map",
    "model_path": "--model",
    "n_particles": "--n",
    "n_micrographs": "--micrographs",
    "halves=False": "--no-halves",
    "ctf=False": "--no-ctf",
    "auto_mask=False": "--no-mask",
    "amplitude_contrast": "--amp-contrast",
    "edge_width_shells": "--filter-edge-width",
    "n_directions": "--directions",
}

_UNIT_SUFFIXES = ("_px", "_a2", "_a", "_kv", "_mm", "_deg")


def _flag_by_rule(name: str) -> str:
    for unit in _UNIT_SUFFIXES:
        if name.endswith(unit):
            name = name[: -len(unit)]
            break
    return "--" + name.replace("_", "-")


@functools.cache
def app_flags() -> frozenset[str]:
    """Every long flag of every `cryobox` command, read from the app itself."""
    import typer.main

    from cryobox.cli.main import app  # here: main imports this module

    group = typer.main.get_command(app)
    return frozenset(
        o for c in group.commands.values() for p in c.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")
    )


def flag_words(message: str, flags: dict[str, str] | None = None) -> str:
    """A library message in the command line's words: each backticked parameter name becomes the
    flag that sets it (the command's own ``flags``, the exceptions above, else the rule); other
    backticked text stays as it is."""
    table = {**PARAMETER_FLAGS, **(flags or {})}

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name in table:
            return table[name]
        flag = _flag_by_rule(name)
        return flag if flag in app_flags() else m.group(0)

    return re.sub(r"`([^`]+)`", one, message)


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
