"""A real headless Chromium (Debian's package, driven by Playwright) opening a report page.

Used by the report tests, and to make the README's picture of the report's first screen:

    python -m tests.browser REPORT.html OUT.png      # the first screen, 1280x900
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from dataclasses import dataclass, field

import pytest

#: where Debian's chromium package puts the browser; XSTILTS_CHROMIUM overrides
CHROMIUM = os.environ.get("XSTILTS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: screenshots the tests keep, for a person to look at after the run
ARTIFACTS = os.environ.get("XSTILTS_TEST_ARTIFACTS", "test-artifacts")
# the probe's flags for this machine's closed network: no background connections
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}


@dataclass
class Seen:
    """What the browser saw of a page."""
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    sections: dict[str, str] = field(default_factory=dict)  # section id -> its text
    figures: dict[str, int] = field(default_factory=dict)  # figure name -> colours in its box
    screenshot: str = ""


def require_chromium() -> None:
    """Skip where no Chromium is installed, unless XSTILTS_REQUIRE_BROWSER is set (CI sets it:
    there the browser tests must run, never skip)."""
    if os.path.exists(CHROMIUM):
        return
    why = (f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install "
           "chromium), as .ci/run does, or set XSTILTS_CHROMIUM")
    if os.environ.get("XSTILTS_REQUIRE_BROWSER"):
        pytest.fail(why)
    pytest.skip(why)


def _colours(png: bytes) -> int:
    from PIL import Image

    return len(Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 24) or [])


def open_page(path: str, *, artifact: str) -> Seen:
    """Open ``path`` in headless Chromium: console errors, each section's text, the number of
    colours in each figure's box, and a full-page screenshot kept as ``ARTIFACTS/artifact``."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    seen = Seen()
    os.makedirs(ARTIFACTS, exist_ok=True)
    seen.screenshot = os.path.join(ARTIFACTS, artifact)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", lambda m: m.type == "error" and seen.errors.append(m.text))
            page.on("pageerror", lambda e: seen.errors.append(str(e)))
            page.on("requestfailed", lambda r: seen.errors.append(f"request failed: {r.url}"))
            page.goto(f"file://{os.path.abspath(path)}", wait_until="load")
            for section in page.locator("section").all():
                seen.sections[section.get_attribute("id")] = section.inner_text()
            for fig in page.locator("figure[data-figure]").all():
                img = fig.locator("img")
                decoded = img.evaluate("i => i.complete && i.naturalWidth > 0")
                seen.figures[fig.get_attribute("data-figure")] = \
                    _colours(img.screenshot()) if decoded else 0
            page.screenshot(path=seen.screenshot, full_page=True)
        finally:
            browser.close()
    return seen


def first_screen(path: str, out: str) -> None:
    """The page's first screen (the viewport at the top) as a PNG."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"file://{os.path.abspath(path)}", wait_until="load")
            page.screenshot(path=out)
        finally:
            browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tests.browser REPORT.html OUT.png")
    first_screen(sys.argv[1], sys.argv[2])
