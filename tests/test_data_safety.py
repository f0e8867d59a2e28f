"""Never lose her data: cryobox replaces or removes only what its own ledger says it wrote, and
never an input, whichever path names it (the same path, a link, ``..``, a hard link).

Each refused case asserts exit status 2, one sentence, every file that was there byte-identical,
and nothing written beyond the lock and run record of an output folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import HAVE_RELION
from tests.test_corpus import BOX, PX, build_folder
from typer.testing import CliRunner

from cryobox.cli.main import app
from cryobox.errors import InputError
from cryobox.io import ledger
from cryobox.io.atomic import atomic_path
from cryobox.io.jsonio import write_json
from cryobox.io.mrc import write_mrc
from cryobox.jobs.outputs import OutputFolder

STATE = (".cryobox.lock", ".cryobox-run.json")


def digest(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def run(argv) -> object:
    return CliRunner().invoke(app, [str(a) for a in argv])


def assert_refused(root: Path, before: dict, result, *words) -> None:
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert message.count("cryobox: error:") == 1, message
    for w in words:
        assert w in message, (w, message)
    after = digest(root)
    assert {k: after.get(k) for k in before} == before, "a file that was there changed or went"
    new = [k for k in after if k not in before and not k.endswith(STATE)]
    assert not new, f"a refused run wrote {new}"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    root = build_folder(tmp_path / "data")
    write_mrc(root / "mask.mrc", np.ones((BOX, BOX, BOX), np.float32), pixel_size_a=PX)
    fsc = run(["fsc", root / "h1.mrc", root / "h2.mrc", "--json"])
    assert fsc.exit_code == 0, fsc.output
    (root / "fsc32.json").write_text(fsc.stdout)
    monkeypatch.chdir(root)
    return root


# ---------------------------------------------------------------------------------------------
# the ledger itself


def test_a_file_cryobox_wrote_is_replaced_and_any_other_is_refused(tmp_path):
    ours = tmp_path / "ours.json"
    write_json(ours, {"a": 1})
    assert ledger.written_by_cryobox(ours)
    write_json(ours, {"a": 2})  # a re-run replaces its own output
    assert ours.read_text() == '{"a": 2}'

    theirs = tmp_path / "theirs.json"
    theirs.write_text("her notes")
    with pytest.raises(InputError, match="cryobox did not write it"):
        write_json(theirs, {"a": 1})
    assert theirs.read_text() == "her notes"

    # edited after cryobox wrote it (size or time differ): no longer cryobox's to replace
    ours.write_text('{"a": 2, "edited": true}')
    assert not ledger.written_by_cryobox(ours)
    with pytest.raises(InputError, match="cryobox did not write it"):
        write_json(ours, {"a": 3})
    # replaced by her own file of the same name and size
    other = tmp_path / "same.json"
    write_json(other, {"a": 1})
    os.unlink(other)
    other.write_text('{"a": 1}')
    assert not ledger.written_by_cryobox(other)


def test_a_link_or_a_folder_in_the_way_is_refused(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(InputError, match="cryobox did not write it"):
        write_json(link, {})
    assert link.is_symlink() and target.read_text() == "keep"
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(InputError, match="folder"):
        write_json(tmp_path / "dir.json", {})


def test_leftovers_are_removed_only_when_the_ledger_names_them(tmp_path):
    hers = tmp_path / ".draft.part"
    hers.write_text("hers")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "out.mrc") as tmp:
            tmp.write_bytes(b"x")
            os.link(tmp, tmp_path / ".out.mrc.killed.mrc.part")  # as if the process had died here
            ledger.record_pending(tmp_path / ".out.mrc.killed.mrc.part")
            raise KeyboardInterrupt
    ledger.remove_leftovers(tmp_path)
    assert hers.read_text() == "hers"
    assert not (tmp_path / ".out.mrc.killed.mrc.part").exists()
    assert not (tmp_path / "out.mrc").exists()


def test_an_output_folder_removes_only_what_cryobox_wrote_there(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out, job="t", settings={"a": 1}, owns=("Particles", "particles.star")):
        write_json(out / "Particles" / "a.json", {})
        write_json(out / "particles.star", {})
    # other settings: cryobox's own outputs go before any work
    with OutputFolder(out, job="t", settings={"a": 2}, owns=("Particles", "particles.star")) as f:
        assert sorted(f.cleared) == ["Particles", "particles.star"]
        assert not (out / "Particles" / "a.json").exists() and not (out / "particles.star").exists()
    # her file inside an owned folder: refused, kept
    (out / "Particles").mkdir(exist_ok=True)
    (out / "Particles" / "mine.mrcs").write_text("data")
    with pytest.raises(InputError, match="mine.mrcs.*cryobox did not write it"):
        with OutputFolder(out, job="t", settings={"a": 3}, owns=("Particles", "particles.star")):
            pass
    assert (out / "Particles" / "mine.mrcs").read_text() == "data"


def test_protected_inputs_cannot_be_written_over_by_any_path(tmp_path):
    src = tmp_path / "in.json"
    write_json(src, {"x": 1})  # cryobox wrote it, so only the protection stops the write
    (tmp_path / "hard.json").hardlink_to(src)
    (tmp_path / "sub").mkdir()
    with ledger.protecting([src]):
        for path in (src, tmp_path / "sub" / ".." / "in.json", tmp_path / "hard.json"):
            with pytest.raises(InputError, match="is an input"):
                write_json(path, {"x": 2})
    write_json(src, {"x": 3})  # after the job, an ordinary output of cryobox's again


# ---------------------------------------------------------------------------------------------
# the cases


def test_fsc_star_on_a_half_map_is_refused(folder):
    before = digest(folder)
    assert_refused(folder, before, run(["fsc", "h1.mrc", "h2.mrc", "--star", "h1.mrc"]), "h1.mrc", "--star")
    r = run(["fsc", "h1.mrc", "h2.mrc", "--mask", "mask.mrc", "--star", "mask.mrc"])
    assert_refused(folder, before, r, "mask.mrc")
    r = run(["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "m.mrc", "--star", "m.mrc"])
    assert_refused(folder, before, r, "m.mrc", "--mask-out", "--star")


def test_ctf_mrc_on_its_particle_file_is_refused(folder):
    before = digest(folder)
    assert_refused(folder, before, run(["ctf", "--from", "good.star", "--mrc", "good.star"]), "good.star", "--mrc")


def test_extract_never_removes_her_file_in_the_output_folder(folder):
    (folder / "X" / "Particles").mkdir(parents=True)
    (folder / "X" / "Particles" / "my_important_data.mrcs").write_bytes(b"irreplaceable")
    before = digest(folder)
    r = run(["extract", "good.star", "--box", 24, "--out", "X"])
    assert_refused(folder, before, r, "my_important_data.mrcs", "did not write")


def test_restack_whose_stacks_live_in_the_output_folder_is_refused(folder):
    (folder / "O" / "Particles").mkdir(parents=True)
    shutil.copy(folder / "stack.mrcs", folder / "O" / "Particles" / "stack.mrcs")
    text = (folder / "good.star").read_text().replace("@stack.mrcs", "@O/Particles/stack.mrcs")
    (folder / "selected.star").write_text(text)
    before = digest(folder)
    assert_refused(folder, before, run(["restack", "selected.star", "--box", 24, "--out", "O"]), "stack.mrcs")


def test_judge_never_removes_the_mask_it_was_given(folder):
    (folder / "J" / "masks").mkdir(parents=True)
    shutil.copy(folder / "mask.mrc", folder / "J" / "masks" / "mymask.mrc")
    before = digest(folder)
    r = run(["judge", "a=h1.mrc:h2.mrc", "b=h2.mrc:h1.mrc", "--mask", "J/masks/mymask.mrc", "--out", "J"])
    assert_refused(folder, before, r, "mymask.mrc")


def test_simulate_angles_from_its_own_output_folder_is_refused(folder):
    (folder / "O").mkdir()
    shutil.copy(folder / "good.star", folder / "O" / "particles.star")
    before = digest(folder)
    r = run(["simulate", "--stack", "--angles", "O/particles.star", "--box", BOX, "--pixel-size", PX, "--out", "O"])
    assert_refused(folder, before, r, "particles.star")


def test_a_rerun_replaces_its_own_outputs(folder):
    assert run(["fsc", "h1.mrc", "h2.mrc", "--star", "f.star", "--plot", "f.png"]).exit_code == 0
    first = (folder / "f.star").read_bytes()
    assert run(["fsc", "h1.mrc", "h2.mrc", "--star", "f.star", "--plot", "f.png", "--seed", 3]).exit_code == 0
    assert (folder / "f.star").exists() and (folder / "f.star").read_bytes() != b"" and first


# ---------------------------------------------------------------------------------------------
# the property: every command, every output flag, pointed at every input by every kind of path

# (command line with {OUT} where the output goes, the inputs it reads that the output may name)
FILE_OUTPUTS = {
    "advise --plot": (["advise", "good.star", "--diameter", 100, "--resolution", 10, "--plot", "{OUT}"], ["good.star"]),
    "inspect --plot": (["inspect", "good.star", "--plot", "{OUT}"], ["good.star"]),
    "ctf --out": (["ctf", "--from", "good.star", "--out", "{OUT}"], ["good.star"]),
    "ctf --mrc": (["ctf", "--from", "good.star", "--mrc", "{OUT}"], ["good.star"]),
    "fsc --star": (
        ["fsc", "h1.mrc", "h2.mrc", "--mask", "mask.mrc", "--star", "{OUT}"],
        ["h1.mrc", "h2.mrc", "mask.mrc"],
    ),
    "fsc --plot": (["fsc", "h1.mrc", "h2.mrc", "--plot", "{OUT}"], ["h1.mrc", "h2.mrc"]),
    "fsc --mask-out": (["fsc", "h1.mrc", "h2.mrc", "--auto-mask", "--mask-out", "{OUT}"], ["h1.mrc", "h2.mrc"]),
    "compare --plot": (["compare", "fsc32.json", "--plot", "{OUT}"], ["fsc32.json"]),
    "filter --out": (
        ["filter", "h1.mrc", "--lowpass", 12, "--mask", "mask.mrc", "--out", "{OUT}"],
        ["h1.mrc", "mask.mrc"],
    ),
    "resample --out": (["resample", "h1.mrc", "--box", 24, "--out", "{OUT}"], ["h1.mrc"]),
    "report --out": (
        ["report", "good.star", "--diameter", 100, "--resolution", 10, "--fsc", "fsc32.json", "--out", "{OUT}"],
        ["good.star", "fsc32.json"],
    ),
}

# folder outputs: (command line with {OUT}, the input to move into it, where it goes inside)
FOLDER_OUTPUTS = {
    "extract": (["extract", "{IN}", "--box", 24, "--out", "{OUT}"], "good.star", "particles.star"),
    "restack": (["restack", "{IN}", "--box", 24, "--out", "{OUT}"], "good.star", "particles.star"),
    # the particle file names its stack by the given path, the stack lies where a half map goes
    "reconstruct": (["reconstruct", "{STAR_OF_IN}", "--out", "{OUT}"], "stack.mrcs", "half1_unfil.mrc"),
    "judge": (["judge", "a={IN}:h2.mrc", "b=h2.mrc:h1.mrc", "--out", "{OUT}"], "h1.mrc", "judge.json"),
    "judge mask": (
        ["judge", "a=h1.mrc:h2.mrc", "b=h2.mrc:h1.mrc", "--mask", "{IN}", "--out", "{OUT}"],
        "mask.mrc",
        "masks/m.mrc",
    ),
    "diagnose": (["diagnose", "h1.mrc", "h2.mrc", "--mask", "{IN}", "--out", "{OUT}"], "mask.mrc", "mask.mrc"),
    "simulate --map": (["simulate", "--stack", "--map", "{IN}", "--n", 4, "--out", "{OUT}"], "h1.mrc", "true_map.mrc"),
    "simulate --angles": (
        ["simulate", "--stack", "--angles", "{IN}", "--box", BOX, "--pixel-size", PX, "--out", "{OUT}"],
        "good.star",
        "particles.star",
    ),
}
if HAVE_RELION:
    FOLDER_OUTPUTS["sweep"] = (
        ["sweep", "good.star", "--reference", "{IN}", "--particle-diameter", 60, "--boxes", "24,32", "--out", "{OUT}"],
        "h1.mrc",
        "references/ref.mrc",
    )

HOW = ("same path", "symbolic link", "dot-dot", "hard link")


def _name(folder: Path, target: str, how: str) -> str:
    """A path to ``target`` of the given kind (made in the folder)."""
    if how == "same path":
        return target
    if how == "dot-dot":
        (folder / "sub").mkdir(exist_ok=True)
        return f"sub/../{target}"
    alias = f"alias_{how.split()[0]}{Path(target).suffix}"
    if how == "symbolic link":
        (folder / alias).symlink_to(folder / target)
    else:
        os.link(folder / target, folder / alias)
    return alias


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("case", sorted(FILE_OUTPUTS))
def test_no_output_flag_writes_over_an_input(folder, case, how):
    argv, inputs = FILE_OUTPUTS[case]
    figure = case.endswith("--plot") or case == "ctf --out"
    for target in inputs:
        name = _name(folder, target, how)
        before = digest(folder)
        r = run([name if a == "{OUT}" else a for a in argv])
        # a figure flag refuses an input's name for its suffix already; every other flag names the input
        assert_refused(folder, before, r, *(() if figure else ("input",)))
        for p in folder.glob("alias_*"):
            p.unlink()


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("case", sorted(FOLDER_OUTPUTS))
def test_no_output_folder_writes_over_an_input(folder, case, how):
    argv, source, inside = FOLDER_OUTPUTS[case]
    out = folder / "OUT"
    (out / Path(inside).parent).mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / source, out / inside)
    given = {
        "same path": f"OUT/{inside}",
        "dot-dot": f"sub/../OUT/{inside}",
        "symbolic link": None,
        "hard link": None,
    }[how]
    if how == "dot-dot":
        (folder / "sub").mkdir(exist_ok=True)
    if given is None:  # the input named through a link that lies outside the output folder
        given = f"alias{Path(inside).suffix}"
        if how == "symbolic link":
            (folder / given).symlink_to(out / inside)
        else:
            os.link(out / inside, folder / given)
    if "{STAR_OF_IN}" in argv:
        text = (folder / "good.star").read_text().replace("@stack.mrcs", f"@{given}")
        (folder / "via.star").write_text(text)
    before = digest(folder)
    argv = [a.replace("{IN}", given).replace("{STAR_OF_IN}", "via.star") if isinstance(a, str) else a for a in argv]
    r = run(["OUT" if a == "{OUT}" else a for a in argv])
    assert_refused(folder, before, r, Path(inside).name)


def test_a_run_folder_is_removed_whole_only_when_cryobox_made_that_very_folder(tmp_path):
    hers = tmp_path / "runs_box280_rep1"
    hers.mkdir()
    (hers / "notes.txt").write_text("hers")
    with pytest.raises(InputError, match="did not make this folder"):
        ledger.remove_written_folder(hers)
    assert (hers / "notes.txt").read_text() == "hers"
    ours = tmp_path / "run_ours"
    ours.mkdir()
    ledger.record_folder(ours)
    (ours / "engine.log").write_text("written by the program cryobox ran")
    ledger.remove_written_folder(ours)
    assert not ours.exists()
    # the same name made again by someone else (another inode) is not cryobox's folder
    ours.mkdir()
    with pytest.raises(InputError):
        ledger.remove_written_folder(ours)
    assert ours.is_dir()


def test_compacting_the_ledger_keeps_only_what_is_there(tmp_path):
    write_json(tmp_path / "a.json", {})
    write_json(tmp_path / "b.json", {})
    ledger.remove_written(tmp_path / "b.json")
    ledger.compact(tmp_path)
    lines = (tmp_path / ledger.LEDGER).read_text().splitlines()
    assert len(lines) == 1 and '"a.json"' in lines[0] and ledger.written_by_cryobox(tmp_path / "a.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [ledger.LEDGER, "a.json"]


def test_a_killed_runs_half_written_folder_record_is_removed_and_nothing_else(tmp_path):
    """A run killed while writing its folder record (``.cryobox-run.json``, through a temporary
    that the ledger lists as pending before it exists) leaves that temporary behind; the next run
    in the folder removes it, and no file the ledger does not list, whatever its name."""
    from cryobox.io.atomic import _new_temporary
    from cryobox.io.ledger import remove_leftovers

    stale = _new_temporary(tmp_path / ".cryobox-run.json", ".json")  # as the killed run left it
    stale.write_text("{")
    theirs = [tmp_path / "..cryobox-run.json.8ce69ad5.json.part", tmp_path / "notes.json.part"]
    for p in theirs:
        p.write_text("keep")
    remove_leftovers(tmp_path, recursive=False)
    assert not stale.exists()
    assert all(p.read_text() == "keep" for p in theirs)
