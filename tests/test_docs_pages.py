"""The shell examples of the docs pages, run as written (on the real files of ../shared/data/real)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _run_block(page: str, cwd: Path) -> subprocess.CompletedProcess:
    """The page's last bash block, run by bash with this Python's scripts first on the PATH
    (`cryobox`, `cryobox-relion`, as `pip install` put them beside it)."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(
        ["bash", "-e", "-c", _last_bash_block(page)], cwd=cwd, capture_output=True, text=True, env=env
    )


def _last_bash_block(page: str) -> str:
    return re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S)[-1]


def _in_a_copy_of_the_layout(tmp_path: Path) -> Path:
    """A repository root with ../shared beside it, as the docs assume."""
    if not (SHARED / "data" / "real").exists():
        if os.environ.get("CI") == "true":
            raise AssertionError("../shared/data/real is missing under CI")
        pytest.skip("../shared/data/real is not here")
    (tmp_path / "repo").mkdir()
    (tmp_path / "shared").symlink_to(SHARED)
    return tmp_path / "repo"


@pytest.mark.skipif(shutil.which("relion_pipeliner") is None, reason="RELION is not installed (relion_pipeliner)")
def test_the_relion_page_runs_as_written(tmp_path):
    repo = _in_a_copy_of_the_layout(tmp_path)
    r = _run_block("relion.md", repo)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "cryobox-relion restack: cryobox restack relion31.star --out External/job001/ --box 128 --premultiply" in out
    assert "External/job001/particles.star 3" in out
    assert out.strip().splitlines()[-1].split() == ["128", "2.806", "1"]  # what the page says it prints
    pipeline = (repo / "relion-project" / "default_pipeline.star").read_text()
    assert re.search(r"External/job001/\s+None\s+99\s+2", pipeline)  # finished
    assert re.search(r"External/job001/particles.star\s+3", pipeline)


def test_the_cryosparc_page_runs_as_written(tmp_path):
    import yaml

    repo = _in_a_copy_of_the_layout(tmp_path)
    r = _run_block("cryosparc.md", repo)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    # what the page says each command shows
    assert "2,019" in out and "2.95" in out and "180" in out
    assert "128 px keeps 89%, 180 px keeps 100%" in out
    assert "refine 180 px with window inner 0.604 and outer 0.704" in out
    csg = yaml.safe_load((repo / "P3/imports/restack128/particles.csg").read_text())
    assert sorted(csg["results"]) == ["alignments3D", "blob", "ctf", "location"]
    assert {v["num_items"] for v in csg["results"].values()} == {5}
    assert sorted(p.name for p in (repo / "P3/imports/restack128_pm").iterdir() if not p.name.startswith(".")) == [
        "Particles",
        "particles.star",
    ]
    assert "particles.cs not written" in " ".join(r.stderr.split())
    import numpy as np

    paths = np.load(repo / "P3/imports/restack128/particles.cs")["blob/path"]
    assert all(p.decode().startswith("imports/restack128/Particles/") for p in paths)  # relative to the project
