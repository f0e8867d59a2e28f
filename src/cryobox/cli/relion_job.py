"""`cryobox-relion`: cryobox as a RELION External job (RELION 3.1 to 5).

RELION's pipeliner runs an External job as one shell command (``RelionJob::getCommandsExternalJob``
in RELION's ``src/pipeline_jobs.cpp``)::

    FN_EXE --o External/job012/ [--in_movies F] [--in_mics F] [--in_parts F] [--in_coords F]
           [--in_3dref F] [--in_mask F] [--LABEL VALUE ...] --j THREADS OTHER_ARGS
           >> External/job012/run.out 2>> External/job012/run.err

from the project folder, with ``--pipeline_control External/job012/`` appended when the command
line contains ``relion_``. The program writes its outputs in ``--o``, lists the ones the pipeline
should offer to later jobs in ``RELION_OUTPUT_NODES.star`` (table ``output_nodes``: the node's
name and its type; RELION 3.1 reads the integer ``rlnPipeLineNodeType``, RELION 4 and 5 the
string ``rlnPipeLineNodeTypeLabel``: both are written, each version ignores the other's column),
and leaves ``RELION_JOB_EXIT_SUCCESS`` or ``RELION_JOB_EXIT_FAILURE``; the pipeliner asks a job to
stop by creating ``RELION_JOB_ABORT_NOW``, answered with ``RELION_JOB_EXIT_ABORTED``. Before it
starts (or continues) a job, the pipeliner removes the exit and abort files.

``cryobox-relion VERB`` (the verb in the External job's executable field, or ``--verb VERB`` as a
parameter) runs ``cryobox VERB`` with RELION's inputs in their places, the job folder as its
output, and each ``--LABEL VALUE`` parameter as cryobox's ``--LABEL VALUE`` (``yes``/``true`` for an
option without a value, ``no``/``false`` to leave it out). See docs/relion.md.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["VERBS", "ExternalJob", "Node", "parse_external", "cryobox_command", "main"]

EXIT_SUCCESS = "RELION_JOB_EXIT_SUCCESS"
EXIT_FAILURE = "RELION_JOB_EXIT_FAILURE"
EXIT_ABORTED = "RELION_JOB_EXIT_ABORTED"
ABORT_NOW = "RELION_JOB_ABORT_NOW"
OUTPUT_NODES = "RELION_OUTPUT_NODES.star"

#: RELION's input options of an External job, and cryobox's name for each
INPUTS = {
    "--in_movies": "in_movies",
    "--in_mics": "in_mics",
    "--in_parts": "in_parts",
    "--in_coords": "in_coords",
    "--in_3dref": "in_3dref",
    "--in_mask": "in_mask",
}

#: the verbs that make sense in a RELION project
VERBS = ("restack", "advise", "explain", "fsc", "diagnose", "judge", "report")


@dataclass(frozen=True)
class Node:
    """One output the pipeline offers to later jobs: the file (relative to the project), its
    RELION 3.1 node type (``NODE_*`` in ``pipeline_jobs.h``) and its RELION 4/5 type label."""

    name: str
    type_31: int
    label: str


# RELION 3.1 NODE_* numbers and RELION 4/5 LABEL_* strings (src/pipeline_jobs.h of each)
PARTICLES = (3, "ParticleGroupMetadata.star.relion.cryobox")
MASK = (7, "Mask3D.mrc")
POSTPROCESS = (14, "ProcessData.star.relion.postprocess")
LOGFILE = (13, "LogFile.pdf.cryobox")


@dataclass
class ExternalJob:
    """The command line RELION's pipeliner gave, parsed."""

    out: str  # as RELION gave it, with a trailing slash: node names start with it
    verb: str
    in_parts: str | None = None
    in_mics: str | None = None
    in_movies: str | None = None
    in_coords: str | None = None
    in_3dref: str | None = None
    in_mask: str | None = None
    threads: int | None = None
    params: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return Path(self.out)


class ExternalError(Exception):
    """The External job's own command line is wrong (one sentence for run.err)."""


def parse_external(argv: list[str]) -> ExternalJob:
    """Parse the command line of an External job (see the module docstring)."""
    values: dict = {}
    params: list[str] = []
    verb = None
    args = list(argv)
    if args and not args[0].startswith("-"):
        verb = args.pop(0)
    i = 0
    while i < len(args):
        a = args[i]
        takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        if a in ("--o", "--j", "--pipeline_control", "--verb") or a in INPUTS:
            if not takes_value:
                raise ExternalError(f"`{a}` needs a value (RELION gives one: check the job's fields).")
            v = args[i + 1]
            if a == "--o":
                values["out"] = v
            elif a == "--j":
                try:
                    values["threads"] = int(v)
                except ValueError:
                    raise ExternalError(f"`--j` must be a whole number of threads, got {v!r}.") from None
            elif a == "--verb":
                verb = v
            elif a in INPUTS:
                values[INPUTS[a]] = v
            i += 2  # --pipeline_control names the job folder again: nothing more to do with it
            continue
        params.append(a)
        i += 1
    if "out" not in values:
        raise ExternalError("no `--o` output folder: run cryobox-relion as a RELION External job (RELION gives --o).")
    if verb is None:
        raise ExternalError(
            f"no verb: write one after the executable in the External job's field, e.g. `cryobox-relion fsc`, or "
            f"give the parameter `verb` (one of {', '.join(VERBS)})."
        )
    if verb not in VERBS:
        raise ExternalError(f"`{verb}` is not a verb cryobox-relion runs; use one of {', '.join(VERBS)}.")
    out = values.pop("out").rstrip("/") + "/"
    return ExternalJob(out=out, verb=verb, params=_options(params), **values)


def _options(params: list[str]) -> list[str]:
    """RELION's ``--label value`` pairs as cryobox options: ``yes``/``true`` alone is an option
    without a value, ``no``/``false`` leaves the option out; labels use ``-`` or ``_``."""
    out: list[str] = []
    i = 0
    while i < len(params):
        a = params[i]
        if a.startswith("--"):
            name = "--" + a[2:].replace("_", "-")
            vals = []
            while i + 1 < len(params) and not params[i + 1].startswith("--"):
                vals.append(params[i + 1])
                i += 1
            if len(vals) == 1 and vals[0].lower() in ("yes", "true"):
                out.append(name)
            elif len(vals) == 1 and vals[0].lower() in ("no", "false"):
                pass
            else:
                out += [name, *vals]
        else:
            out.append(a)
        i += 1
    return out


def _half2(half1: str) -> str:
    """RELION's second half map next to its first: the last ``half1`` in the name becomes ``half2``."""
    head, sep, tail = half1.rpartition("half1")
    if not sep:
        raise ExternalError(
            f"{half1}: the 3D reference of a cryobox-relion fsc or diagnose job is the first half map "
            "(run_half1_class001_unfil.mrc, whose second RELION names run_half2_class001_unfil.mrc); for a map "
            "without `half1` in its name, give the second half map with the parameter `half2`."
        )
    return head + "half2" + tail


def _pop(params: list[str], name: str) -> tuple[list[str], list[str]]:
    """Take ``name`` and its values out of the options."""
    if name not in params:
        return params, []
    i = params.index(name)
    j = i + 1
    while j < len(params) and not params[j].startswith("--"):
        j += 1
    return params[:i] + params[j:], params[i + 1 : j]


def _need(job: ExternalJob, what: str, label: str) -> str:
    v = getattr(job, what)
    if not v:
        raise ExternalError(f"cryobox-relion {job.verb} needs {label}: fill that field of the External job.")
    return v


def cryobox_command(job: ExternalJob) -> tuple[list[str], list[Node], list[str]]:
    """The ``cryobox`` arguments for ``job``, the nodes it will declare when it succeeds, and the
    figures (PNG names in the job folder) to gather into its ``logfile.pdf``."""
    o = job.out
    p = list(job.params)
    nodes: list[Node] = []
    pngs: list[str] = []
    if job.verb == "restack":
        args = ["restack", _need(job, "in_parts", "input particles"), "--out", o, *p]
        if job.threads and "-j" not in p and "--jobs" not in p:
            args += ["--jobs", str(job.threads)]
        nodes.append(Node(o + "particles.star", *PARTICLES))
    elif job.verb in ("advise", "explain"):  # advise can work from numbers alone, explain needs the file
        parts = (
            [_need(job, "in_parts", "input particles")]
            if job.verb == "explain"
            else [job.in_parts] * bool(job.in_parts)
        )
        args = [job.verb, *parts, "--plot", o + "logfile.pdf", *p]
        nodes.append(Node(o + "logfile.pdf", *LOGFILE))
    elif job.verb in ("fsc", "diagnose"):
        half1 = _need(job, "in_3dref", "the first half map as its 3D reference")
        p, given = _pop(p, "--half2")
        half2 = given[0] if given else _half2(half1)
        p, _ = _pop(p, "--no-mask")  # the parameter `no_mask yes`: an unmasked FSC
        mask = ["--mask", job.in_mask] if job.in_mask else []
        auto = not job.in_mask and "--no-mask" not in job.params
        if job.verb == "fsc":
            if auto:
                mask = ["--auto-mask", "--mask-out", o + "mask.mrc"]
            args = ["fsc", half1, half2, *mask, "--star", o + "fsc.star", "--plot", o + "logfile.pdf", *p]
            if job.in_mask or auto:  # with a mask, fsc.star is what CtfRefine and Polish read (--f)
                nodes.append(Node(o + "fsc.star", *POSTPROCESS))
            nodes.append(Node(o + "logfile.pdf", *LOGFILE))
        else:
            parts = ["--particles", job.in_parts] if job.in_parts else []
            args = ["diagnose", half1, half2, "--out", o, *mask, *parts, *p]
            if not job.in_mask and not auto:
                args.append("--no-mask")
            pngs = ["directional.png", "power.png", "views.png"]
            nodes.append(Node(o + "logfile.pdf", *LOGFILE))
        if auto:
            nodes.append(Node(o + "mask.mrc", *MASK))
    elif job.verb == "judge":
        p, variants = _pop(p, "--variants")
        if not variants:
            raise ExternalError(
                "cryobox-relion judge needs the runs: give the parameter `variants` with value "
                "`box280=Refine3D/job010/,Refine3D/job011/ box576=Refine3D/job012/,Refine3D/job013/`."
            )
        extra = (["--mask", job.in_mask] if job.in_mask else []) + (
            ["--particles", job.in_parts] if job.in_parts else []
        )
        args = ["judge", *variants, "--out", o, *extra, *p]
        pngs = ["judge.png"]
        nodes.append(Node(o + "logfile.pdf", *LOGFILE))
    else:  # report
        args = ["report", _need(job, "in_parts", "input particles"), "--out", o + "report.html", *p]
    return args, nodes, pngs


def write_output_nodes(job: ExternalJob, nodes: list[Node]) -> Path:
    """``RELION_OUTPUT_NODES.star``, read by RELION 3.1 (type numbers) and 4/5 (type labels)."""
    from cryobox.io.atomic import atomic_path

    lines = [
        "",
        "# version 30001",
        "",
        "data_output_nodes",
        "",
        "loop_",
        "_rlnPipeLineNodeName #1",
        "_rlnPipeLineNodeType #2",
        "_rlnPipeLineNodeTypeLabel #3",
        "_rlnPipeLineNodeTypeLabelDepth #4",
    ]
    lines += [f"{n.name} {n.type_31} {n.label} 1" for n in nodes]
    path = job.folder / OUTPUT_NODES
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n\n")
    return path


def _mark(folder: Path, name: str) -> None:
    """An exit file (empty), written through the ledger like every output."""
    from cryobox.io.atomic import atomic_path

    with atomic_path(Path(folder) / name) as tmp:
        tmp.write_bytes(b"")


def _clear_own(job: ExternalJob) -> None:
    """A re-run starts without the last run's exit files and node list, when cryobox wrote them
    (RELION's pipeliner removes the exit files itself before it starts a job)."""
    from cryobox.io.ledger import remove_written, written_by_cryobox

    for name in (EXIT_SUCCESS, EXIT_FAILURE, EXIT_ABORTED, OUTPUT_NODES):
        p = job.folder / name
        if p.exists() and written_by_cryobox(p):
            remove_written(p)


class _AbortWatch:
    """Stops the running command (as Ctrl-C does: outputs stay atomic) when RELION asks for it."""

    def __init__(self, folder: Path, every_s: float = 0.5):
        self.path = folder / ABORT_NOW
        self.every_s = every_s
        self.asked = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import _thread

        while not self._stop.wait(self.every_s):
            if self.path.exists():
                self.asked = True
                _thread.interrupt_main()
                return

    def __enter__(self) -> _AbortWatch:
        if self.path.exists():
            self.asked = True
            raise KeyboardInterrupt
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()


def _run_cryobox(args: list[str]) -> int:
    from cryobox.cli.main import app

    try:
        app(args=args, prog_name="cryobox")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def _logfile(job: ExternalJob, pngs: list[str]) -> None:
    from cryobox.report.plots import save_pdf_of_images

    found = [job.folder / n for n in pngs if (job.folder / n).exists()]
    if found:
        save_pdf_of_images(found, job.folder / "logfile.pdf")


def run_external(argv: list[str]) -> int:
    """Run one External job; returns the exit status (the exit files say the same to RELION)."""
    import signal

    from cryobox.errors import InputError

    try:
        job = parse_external(argv)
    except ExternalError as exc:
        print(f"cryobox-relion: error: {exc}", file=sys.stderr)
        out = _out_of(argv)
        if out is not None and Path(out).is_dir():
            _try_mark(out, EXIT_FAILURE)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    t0 = time.monotonic()
    try:
        _clear_own(job)
        args, nodes, pngs = cryobox_command(job)
        print(f"cryobox-relion {job.verb}: cryobox {' '.join(args)}", flush=True)
        with _AbortWatch(job.folder) as watch:
            code = _run_cryobox(args)
        if watch.asked:
            raise KeyboardInterrupt
        if code == 0:
            if pngs:
                _logfile(job, pngs)
            nodes = [n for n in nodes if Path(n.name).exists()]
            write_output_nodes(job, nodes)
            _mark(job.folder, EXIT_SUCCESS)
            print(
                f"cryobox-relion {job.verb}: done in {time.monotonic() - t0:.1f} s; outputs for the pipeline: "
                + (", ".join(n.name for n in nodes) or "none"),
                flush=True,
            )
            return 0
        _mark(job.folder, EXIT_FAILURE)
        return code
    except KeyboardInterrupt:
        print(f"cryobox-relion {job.verb}: aborted as RELION asked; continue the job to start again", file=sys.stderr)
        _try_mark(job.out, EXIT_ABORTED)
        return 130
    except (ExternalError, InputError) as exc:
        print(f"cryobox-relion: error: {exc}", file=sys.stderr)
        _try_mark(job.out, EXIT_FAILURE)
        return 2


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _out_of(argv: list[str]) -> str | None:
    return argv[argv.index("--o") + 1] if "--o" in argv[:-1] else None


def _try_mark(out: str, name: str) -> None:
    """Tell RELION the job ended even when the ledger refuses the exit file (one RELION wrote):
    an exit file is empty, so the only thing at stake is its presence."""
    path = Path(out) / name
    try:
        _mark(Path(out), name)
    except Exception:  # noqa: BLE001 - the pipeliner must learn that the job ended
        if not path.exists():
            path.touch()


def main(argv: list[str] | None = None) -> None:
    import warnings

    import cryobox._threads  # noqa: F401  (before numpy loads, as the cryobox command)
    from cryobox.cli.main import _warning_line

    warnings.showwarning = _warning_line
    sys.exit(run_external(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
