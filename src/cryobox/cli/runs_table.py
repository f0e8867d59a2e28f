"""The tables of a sweep or a judge (runs, verdicts, alignment) and the live view of runs in progress."""

from __future__ import annotations

from rich.table import Table

from cryobox.cli.common import console, err_console, flag_words, fmt
from cryobox.report.text import half_maps_text


def progress_log(json_out: bool):
    """Progress lines: on stdout, or on stderr when stdout carries the JSON."""
    target = err_console if json_out else console
    return lambda s: target.print(s, soft_wrap=True)


def print_sweep_table(d: dict) -> None:
    what = (
        f"Box-size sweep: {d['n_particles_refined']} particles"
        if d.get("cryobox") == "sweep"
        else f"Judged: {d.get('n_runs', 0)} runs made elsewhere"
    )
    computed = "unmasked" if str(d.get("mask", "")).startswith("no mask") else "masked, phase-randomisation corrected"
    t = Table(
        title=f"{what} at {d['pixel_size_a']:g} Å/px, resolution at FSC = 0.143 ({computed})",
        title_justify="left",
    )
    for col, j in (
        ("variant", "left"),
        ("box (px)", "right"),
        ("box (Å)", "right"),
        ("mask (Å)", "right"),
        ("repeats, RELION rule (Å)", "right"),
        ("repeats, interpolated (Å)", "right"),
        ("mean ± SD (Å)", "right"),
    ):
        t.add_column(col, justify=j)
    for v in d["variants"]:
        sd = v["sd_a"]
        t.add_row(
            v["variant"] + (f" (premultiplied from {v['premultiply_from_px']} px)" if v["premultiply_from_px"] else ""),
            str(v["box_px"]),
            f"{v['box_a']:.0f}",
            "-" if v.get("mask_diameter_a") is None else f"{v['mask_diameter_a']:.0f} ({v['mask_policy']})",
            fmt(v["resolutions_a"], ".2f"),
            fmt(v["interpolated_resolutions_a"], ".2f"),
            "-" if v["mean_a"] is None else f"{v['mean_a']:.2f}" + (f" ± {sd:.2f}" if sd is not None else ""),
        )
    for f in d.get("not_converged") or []:  # first: a run that did not align makes every number below doubtful
        console.print(
            f"[bold red]NOT CONVERGED: {f['variant']}, {f['run']}: {'; '.join(f['reasons'])}.[/]", soft_wrap=True
        )
    console.print(t)
    for v in d["variants"]:  # every warning of every run, next to its run
        for r in v.get("runs") or []:
            for w in r.get("warnings") or []:
                who = r.get("run") or f"repeat {r.get('repeat')}"
                console.print(f"[yellow]! {v['variant']}, {who}: {flag_words(w)}[/]", soft_wrap=True)
    if d.get("mask"):
        console.print(f"FSC mask: {d['mask']}")
    for n in d.get("notes", []) if d.get("cryobox") == "judge" else []:
        console.print(f"note: {flag_words(n)}")
    console.print(f"test: {d['test']}")
    for c in d["comparisons"]:
        console.print(f"  {flag_words(c['sentence'])}")
    print_alignment(d.get("alignment") or {})
    for f in d.get("failed_runs") or []:
        console.print(
            f"FAILED: {f['variant']} repeat {f['repeat']} ({f.get('scheduler')} job {f.get('job_id')}): {f['error']} "
            f"(logs: {', '.join(f['logs']) or 'none'})",
            soft_wrap=True,
        )
    sched = d.get("scheduler") or {}
    if sched:
        console.print(
            f"runs: {sched.get('submitted', 0)} submitted ({sched.get('scheduler')}"
            + (f", {sched['parallel_runs']} at once" if sched.get("parallel_runs") else "")
            + f"), {sched.get('reattached', 0)} re-attached, {sched.get('read_back', 0)} read back"
        )
    if d.get("half_maps_from"):
        console.print("half maps: " + half_maps_text(d["half_maps_from"]))
    tm = d.get("timings") or {}
    if tm.get("engine_s") is not None:
        wall = tm.get("engine_wall_s") or tm["engine_s"]
        console.print(
            f"time: engine {tm['engine_s']:.0f} s"
            + (f" ({wall:.0f} s of wall time with runs side by side)" if wall < 0.95 * tm["engine_s"] else "")
            + f", cryobox overhead {tm['overhead_s']:.1f} s "
            f"(extraction {tm['extraction_s']:.1f} s, references {tm['references_s']:.1f} s, "
            f"half maps {tm.get('reconstruct_s', 0.0):.1f} s, FSC {tm['fsc_s']:.1f} s)"
            + (
                f" = {100 * tm['overhead_s'] / wall:.1f}% of the engine's time"
                if tm["engine_s"] > 0
                else "; no refinement ran this time (every run was done before)"
            ),
            soft_wrap=True,
        )


def _mean_sd(cell: dict | None, fmt_: str = ".2f") -> str:
    if not cell:
        return "-"
    text = format(cell["mean"], fmt_)
    return text + (f" ± {format(cell['sd'], fmt_)}" if cell.get("sd") is not None else "")


def print_alignment(a: dict) -> None:
    """How accurately (against the truth) and how reproducibly (between runs) each variant aligned."""
    if not a:
        return
    prec = a.get("run_to_run") or {}
    if not a.get("truth_known") and not prec:
        return
    t = Table(title="Alignment: how well each variant found the particles' poses", title_justify="left")
    for col in (
        "variant",
        "angular error, median (°)",
        "90th pct (°)",
        "shift error, median (Å)",
        "map vs truth, FSC 0.5 (Å)",
        "run-to-run angle (°)",
        "run-to-run shift (Å)",
    ):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for row in a.get("variants", []):
        p = prec.get(row["variant"]) or {}
        t.add_row(
            row["variant"],
            _mean_sd(row.get("median_angle_deg")),
            _mean_sd(row.get("p90_angle_deg")),
            _mean_sd(row.get("median_shift_a")),
            _mean_sd(row.get("map_resolution_0.5_a")),
            "-" if not p else f"{p['median_angle_deg']:.2f}",
            "-" if not p else f"{p['median_shift_a']:.2f}",
        )
    console.print(t)
    console.print(
        "angular error: the angle of the rotation between found and true orientation, per particle; mean ± SD over "
        "the repeats of each run's median. Run-to-run: the same measures between two repeats of a variant.",
        soft_wrap=True,
    )
    for c in a.get("comparisons", []):
        if c["measure"] in ("median_angle_deg", "median_shift_a"):
            console.print(f"  {c['sentence']}", soft_wrap=True)


class LiveRuns:
    """A live table of the runs (queued, running, done, failed; iteration and resolution) on a
    terminal; elsewhere (a log file, --json) the sweep prints a line per event instead."""

    def __init__(self, enabled: bool):
        self.active = bool(enabled and console.is_terminal)
        self._live = None

    def __enter__(self):
        if self.active:
            from rich.live import Live

            self._live = Live(Table(), console=console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.__exit__(*exc)
        return False

    def log(self, text: str) -> None:
        if "iteration" not in text:  # the table shows iterations; keep the events
            console.print(text, soft_wrap=True)

    def update(self, rows: list[dict]) -> None:
        t = Table(title="runs", title_justify="left")
        for col in ("run", "job", "state", "iteration", "resolution (Å)", "last error"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["run"],
                str(r.get("job_id") or "-"),
                r["state"],
                str(r.get("iteration") or "-"),
                "-" if r.get("resolution_a") is None else f"{r['resolution_a']:.2f}",
                (r.get("error") or "")[:60],
            )
        if self._live is not None:
            self._live.update(t)
