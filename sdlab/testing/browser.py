"""Open a report in headless Chromium (selenium) to check it renders offline, and screenshot it.

Needs `selenium` and a Chromium + chromedriver pair (Debian/Ubuntu: `apt-get install chromium
chromium-driver`). Used by `tests/test_report_browser.py` and `benchmarks/report_screenshot.py`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["CHROME_FLAGS", "find_chromium", "headless_chromium", "network_requests", "screenshot"]

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def find_chromium() -> tuple[str | None, str | None]:
    """(chromium binary, chromedriver) from $CHROMIUM_BIN / $CHROMEDRIVER or the usual places."""
    binary = os.environ.get("CHROMIUM_BIN") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "",
                     shutil.which("google-chrome") or "") if p and Path(p).exists()), None)
    driver = os.environ.get("CHROMEDRIVER") or next(
        (p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "") if p and Path(p).exists()), None)
    return binary, driver


@contextmanager
def headless_chromium(width: int = 1280, height: int = 900) -> Iterator[object]:
    """A selenium Chrome driver on headless Chromium with performance (network) logging and a
    fresh profile folder, removed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = find_chromium()
    if not binary or not driver_path:
        raise FileNotFoundError("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="sdlab-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},{height}")
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        # Leave Chromium's start page (it loads chrome:// resources of its own) and forget its log,
        # so that the performance log holds only what the next page requests.
        driver.get("about:blank")
        driver.get_log("performance")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def network_requests(driver) -> list[str]:
    """URLs of every `Network.requestWillBeSent` event in the performance log so far."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def screenshot(report: str | Path, out_png: str | Path, *, width: int = 1280, max_height: int = 2400) -> Path:
    """Screenshot the top `max_height` pixels of a report (at `width`) to out_png."""
    out_png = Path(out_png)
    with headless_chromium(width, 900) as driver:
        driver.get(Path(report).resolve().as_uri())
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        h = min(height, max_height)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": h, "scale": 1}})
        out_png.parent.mkdir(parents=True, exist_ok=True)
        out_png.write_bytes(base64.b64decode(shot["data"]))
    return out_png
