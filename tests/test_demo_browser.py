"""The demo in a real headless browser: Playwright drives Debian's chromium against `demo/app.py`
served on 127.0.0.1 (`make test` installs chromium where it can; without it this test is skipped and
says why). Screenshots land in the test's folder, and in $XLCORE_DEMO_SCREENSHOTS when it is set
(`make demo-screenshots` points it at figures/demo/ for docs/demo.md)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags a sandboxed, offline machine needs (no background calls to Google's hosts; root needs no-sandbox).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
GERMAN_PROMPT = "Ein roter Kreis über einem blauen Quadrat"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (make test installs it with apt-get as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "app.log"
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, str(REPO / "demo" / "app.py"), "--port", str(port), "--steps", "6"],
                                   stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the demo did not start; its log:\n{log.read_text()[-3000:]}")
            time.sleep(1)
    yield url
    process.terminate()
    process.wait(timeout=30)


def expected_systems() -> int:
    """English reference + every registered method (the repository ships a run of each for seed 0)."""
    from xlcore.registry import METHODS

    return 1 + len(METHODS.names())


def test_demo_in_a_browser(served_app, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = [tmp_path]
    if os.environ.get("XLCORE_DEMO_SCREENSHOTS"):
        shots.append(Path(os.environ["XLCORE_DEMO_SCREENSHOTS"]))
        shots[-1].mkdir(parents=True, exist_ok=True)

    def screenshot(page, name):
        for folder in shots:
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(served_app)
        page.wait_for_selector("#prompt textarea", timeout=60_000)
        page.fill("#prompt textarea", GERMAN_PROMPT)
        page.click("#generate-button")
        n = expected_systems()
        page.wait_for_function(f"document.querySelectorAll('#generate-gallery img').length >= {n}", timeout=180_000)
        message = page.inner_text("#generate-message")
        assert GERMAN_PROMPT in message and f"with {n} systems" in message and "Unavailable" not in message
        assert page.locator("#generate-gallery img").count() == n
        screenshot(page, "generate")

        page.get_by_role("tab", name="Compare languages").click()
        page.click("#compare-button")
        page.wait_for_function("document.querySelectorAll('#compare-gallery img').length >= 6", timeout=120_000)
        screenshot(page, "compare")

        page.get_by_role("tab", name="Results").click()
        plot = page.locator("#quality-plot canvas, #quality-plot svg").first
        plot.wait_for(timeout=60_000)
        assert plot.is_visible()
        assert "On the Pareto front:" in page.inner_text("#plot-caption")
        assert page.locator("#retrieval-table").is_visible() and page.locator("#claims-table").is_visible()
        screenshot(page, "results")

        page.get_by_role("tab", name="Generate").click()  # bad input: a message in the page, the app serves on
        page.fill("#prompt textarea", "   ")
        page.click("#generate-button")
        page.wait_for_function("document.querySelector('#generate-message').innerText.includes('empty')",
                               timeout=60_000)
        browser.close()
    assert (tmp_path / "generate.png").stat().st_size > 10_000
