"""Smaller things users hit (issue 25, item 4): each with the sentence or row it should give."""

from __future__ import annotations

import json

from tests.test_corpus import build_folder
from typer.testing import CliRunner

from cryobox.cli.main import app


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_defocus_flags_with_a_file_are_refused_not_ignored(tmp_path, monkeypatch):
    root = build_folder(tmp_path)
    monkeypatch.chdir(root)
    r = _run("advise", "good.star", "--diameter", 100, "--resolution", 10, "--defocus-max", 30000)
    assert r.exit_code == 2 and "--defocus-max" in r.stderr and "drop" in r.stderr


def test_an_fft_unfriendly_box_gets_a_note_naming_its_friendly_neighbours():
    r = _run("advise", "--example", "--boxes", "281", "--json")
    assert r.exit_code == 0, r.output
    text = " ".join(json.loads(r.stdout)["warnings"])
    assert "281 px box is not FFT-friendly" in text and "280 px and 288 px" in text


def test_inspect_of_a_file_without_rows_does_not_say_yes(tmp_path, monkeypatch):
    root = build_folder(tmp_path)
    monkeypatch.chdir(root)
    r = _run("inspect", "zero_rows.cs")
    assert r.exit_code == 0 and "none (the file has no rows" in r.stdout


def test_compare_rows_span_every_curve_not_the_first_ones(tmp_path, monkeypatch):
    root = build_folder(tmp_path)
    monkeypatch.chdir(root)
    for name, px in (("coarse.json", 4.0), ("fine.json", 1.0)):
        r = _run("fsc", "h1.mrc", "h2.mrc", "--pixel-size", px, "--json")
        assert r.exit_code == 0, r.output
        (root / name).write_text(r.stdout)
    d = json.loads(_run("compare", "coarse.json", "fine.json", "--json").stdout)
    rows = d["common_resolutions_a"]
    assert min(rows) >= 2.0 and max(rows) >= 15.0  # the fine curve's range and the coarse one's
    assert any(r["fsc_at"][f"{x:g}"] is not None for r in d["runs"] for x in rows if x < 8.0)
