"""The `cryobox` command: one typer app, one module per verb."""

from __future__ import annotations

from typing import Optional

import typer

import cryobox
import cryobox._threads  # noqa: F401  (before numpy loads: thread limits under an address-space cap)
from cryobox.cli import (
    advise,
    compare,
    ctf,
    demo,
    diagnose,
    example,
    explain,
    extract,
    filter,
    fsc,
    inspect,
    judge,
    reconstruct,
    report,
    resample,
    restack,
    simulate,
    sweep,
)

app = typer.Typer(
    name="cryobox",
    help="cryobox: choose the particle box, (re)extract and crop particles in it, and prove which box gives the "
    "better map.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cryobox {cryobox.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """cryobox: the particle box for cryo-EM."""


app.command("advise", epilog=advise.EPILOG)(advise.advise_command)
app.command("explain", epilog=explain.EPILOG)(explain.explain_command)
app.command("inspect", epilog=inspect.EPILOG)(inspect.inspect_command)
app.command("ctf", epilog=ctf.EPILOG)(ctf.ctf_command)
app.command("example", epilog=example.EPILOG)(example.example_command)
app.command("extract", epilog=extract.EPILOG)(extract.extract_command)
app.command("restack", epilog=restack.EPILOG)(restack.restack_command)
app.command("simulate", epilog=simulate.EPILOG)(simulate.simulate_command)
app.command("fsc", epilog=fsc.FSC_EPILOG)(fsc.fsc_command)
app.command("compare", epilog=compare.EPILOG)(compare.compare_command)
app.command("filter", epilog=filter.EPILOG)(filter.filter_command)
app.command("resample", epilog=resample.EPILOG)(resample.resample_command)
app.command("reconstruct", epilog=reconstruct.EPILOG)(reconstruct.reconstruct_command)
app.command("sweep", epilog=sweep.SWEEP_EPILOG)(sweep.sweep_command)
app.command("judge", epilog=judge.EPILOG)(judge.judge_command)
app.command("diagnose", epilog=diagnose.EPILOG)(diagnose.diagnose_command)
app.command("report", epilog=report.REPORT_EPILOG)(report.report_command)
app.command("demo", epilog=demo.DEMO_EPILOG)(demo.demo_command)


def _terminate(signum, frame) -> None:
    # SIGTERM (a scheduler's kill, `kill PID`) stops a command as Ctrl-C does: workers are stopped,
    # outputs stay atomic, the exit status is 130 and a re-run resumes
    raise KeyboardInterrupt


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    # a library's warning as one line for the user, never Python's source line
    import sys

    print(f"cryobox: warning: {message}", file=sys.stderr if file is None else file)


def main() -> None:
    import signal
    import warnings

    signal.signal(signal.SIGTERM, _terminate)
    warnings.showwarning = _warning_line
    app()


if __name__ == "__main__":
    main()
