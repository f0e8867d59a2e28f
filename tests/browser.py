"""Headless Chromium for the report tests (Debian's chromium + chromium-driver, driven by selenium)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False
HAVE_BROWSER = bool(CHROMIUM and CHROMEDRIVER and HAVE_SELENIUM)
needs_browser = pytest.mark.skipif(
    not HAVE_BROWSER, reason="headless Chromium test needs chromium, chromium-driver (apt) and selenium (pip)"
)
#: where tests keep what a person should look at (screenshots)
ARTIFACTS = Path(os.environ.get("CRYOBOX_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


def chromium(*, window_size: str | None = None):
    """A headless Chromium driver (Chromium's default window unless ``window_size`` "W,H")."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tempfile.mkdtemp(prefix='cryobox-chromium-')}",
    ]
    if window_size:
        flags.append(f"--window-size={window_size}")
    for a in flags:
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
