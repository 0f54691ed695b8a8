"""Headless Debian Chromium through Selenium and Debian's chromedriver (no downloads at run time).

``scripts/install-browser.sh`` installs all three. :func:`require_browser` skips a test when they
are missing, or fails it under ``O1EMB_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1280,900")


def _first(paths: tuple[str, ...], env: str) -> str | None:
    given = os.environ.get(env)
    if given:
        return given if Path(given).is_file() else None
    return next((p for p in paths if Path(p).is_file()), None)


def require_browser() -> tuple[str, str]:
    """``(chromium, chromedriver)`` paths; skip (or fail under O1EMB_REQUIRE_BROWSER=1) when absent."""
    chromium = _first(CHROMIUM_CANDIDATES, "O1EMB_CHROMIUM")
    driver = _first(DRIVER_CANDIDATES, "O1EMB_CHROMEDRIVER")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = f"browser test needs {', '.join(missing)}: run scripts/install-browser.sh"
        if os.environ.get("O1EMB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver                                  # type: ignore[return-value]


class Chrome:
    """A context manager around a headless Chromium WebDriver with a fresh, empty profile."""

    def __init__(self, chromium: str, driver: str) -> None:
        self.chromium, self.driver_path = chromium, driver
        self.profile = tempfile.mkdtemp(prefix="o1emb-chromium-")
        self.driver: Any = None

    def __enter__(self) -> Any:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = self.chromium
        for arg in (*ARGS, f"--user-data-dir={self.profile}"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=self.driver_path))
        self.driver.set_page_load_timeout(60)
        return self.driver

    def __exit__(self, *exc: object) -> None:
        if self.driver is not None:
            self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


def artifacts_dir() -> Path:
    """Where screenshots go: ``$O1EMB_ARTIFACTS`` or ``artifacts/`` in the checkout (git-ignored)."""
    root = Path(os.environ.get("O1EMB_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
    path = root / "serving"
    path.mkdir(parents=True, exist_ok=True)
    return path
