import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cryobox.cli.main import app

REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
HAVE_RELION = shutil.which("relion_ctf_toolbox") is not None and shutil.which("relion_preprocess") is not None

HAVE_CHROMIUM = shutil.which("chromium") is not None and shutil.which("chromedriver") is not None


def _slurm_reachable() -> bool:
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return False
    try:
        return subprocess.run(["squeue", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


HAVE_SLURM = _slurm_reachable()


def pytest_sessionstart(session):
    # CI installs RELION and Chromium (.ci/run), so there a missing one is an error, never a silent skip.
    if os.environ.get("CI") == "true" and not HAVE_RELION:
        raise pytest.UsageError(
            "CI=true but RELION is not on PATH: the peer tests must run in CI (apt-get install -y relion)"
        )
    if os.environ.get("CI") == "true" and not HAVE_SLURM:
        raise pytest.UsageError(
            "CI=true but no SLURM controller answers squeue: the scheduler tests must run in CI (.ci/slurm-up starts a "
            "one-node SLURM and exports SLURM_CONF)"
        )
    if os.environ.get("CI") == "true" and not HAVE_CHROMIUM:
        raise pytest.UsageError(
            "CI=true but chromium/chromedriver are not on PATH: the report test must run in CI "
            "(apt-get install -y chromium chromium-driver)"
        )


needs_relion = pytest.mark.skipif(not HAVE_RELION, reason="RELION 3.1 is not installed (apt-get install -y relion)")


def real_file(name: str) -> Path:
    path = REAL_DIR / name
    if not path.is_file():
        if os.environ.get("CI") == "true":  # CI always has ../shared/data/real: a skip there would hide a failure
            pytest.fail(f"{path} is absent under CI=true; the real-file tests must run in CI")
        pytest.skip(f"{path} is absent (the shared real-data folder is not beside this checkout)")
    return path


def run_relion(args, cwd, timeout=300):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def float_dtype(request):
    return request.param
