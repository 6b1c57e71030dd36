"""Headless Chromium for UI tests: Debian's browser driven by Playwright, and where screenshots go.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (apt's ``chromium``;
``$GANTUNE_CHROMIUM`` names another binary) with a fresh profile and the flags that run headless on
these machines (no sandbox, no GPU, no background network). Screenshots go to
``$GANTUNE_TEST_REPORT_DIR/screenshots/`` (default ``test-report/screenshots/`` at the repository root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GANTUNE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-quic", "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
WAIT_MS = 45_000  # the longest any one element may take to appear: pages of a busy 2-core machine


def require_chromium() -> str:
    """The browser binary; a skip where there is none, but a failure under CI, which must install it."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set GANTUNE_CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def screenshot_dir() -> Path:
    """Where screenshots go (created if missing); each test overwrites its own files."""
    root = Path(os.environ.get("GANTUNE_TEST_REPORT_DIR") or REPO_ROOT / "test-report")
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """A Playwright browser context on a fresh profile, closed with its browser and profile on exit."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    binary = require_chromium()
    profile = tempfile.mkdtemp(prefix="gantune-chromium-")
    playwright = sync_playwright().start()
    context = None
    try:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=binary, headless=True, args=CHROMIUM_FLAGS, viewport=VIEWPORT,
        )
        context.set_default_timeout(WAIT_MS)
        yield context
    finally:
        try:
            if context is not None:
                context.close()
        finally:
            playwright.stop()  # ends the driver and, with it, any browser process still running
            shutil.rmtree(profile, ignore_errors=True)
