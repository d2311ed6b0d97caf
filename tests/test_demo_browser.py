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


def expected_systems() -> tuple[int, list[str]]:
    """(how many systems draw, the registered methods that cannot): the English reference, the methods that
    train nothing and every method the repository ships a seed-0 run of draw; a method added since the toy grid
    was last computed has no run yet and must be listed as not trained, with the command that trains it."""
    from xlcore.methods._base import UntrainableMethod
    from xlcore.registry import METHODS

    shipped = REPO / "demo" / "weights" / "toy"
    untrained = [name for name in METHODS.names()
                 if not issubclass(METHODS.get(name), UntrainableMethod) and not (shipped / name).is_dir()]
    return 1 + len(METHODS.names()) - len(untrained), untrained


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.locator(dropdown).get_by_role("option", name=option, exact=True).click()


def only_systems(page, keep: set[str]) -> None:
    """Tick exactly the systems in `keep` (labels are matched exactly: `translate` is not `translate_oracle`)."""
    for label in page.locator("#systems label").all():
        name = label.inner_text().strip()
        if label.locator("input").is_checked() != (name in keep):
            label.click()


def generated(page, n: int) -> None:
    page.click("#generate-button")
    page.wait_for_function("document.querySelector('#generate-message').innerText.startsWith('Drew')", timeout=180_000)
    page.wait_for_function(f"document.querySelectorAll('#generate-gallery img').length >= {n}", timeout=60_000)


def table_rows(page, selector: str) -> list[list[str]]:
    """The cells of a Gradio Dataframe as shown (its virtual rows; the hidden sizing table is skipped)."""
    return [[cell.inner_text().strip() for cell in row.locator("[role=gridcell]").all()]
            for row in page.locator(f"{selector} [role=row].virtual-row").all()]


def test_demo_in_a_browser(served_app, tmp_path):
    from playwright.sync_api import sync_playwright

    from xlcore.analysis import quality_points
    from xlcore.results import ResultsStore

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

        # Every system draws; images arrive as each finishes; the gallery comes first, captions in full
        page.fill("#prompt textarea", GERMAN_PROMPT)
        page.wait_for_function("document.querySelector('#prompt-reading').innerText.includes('A red circle above a blue square')")
        n, untrained = expected_systems()
        page.click("#generate-button")
        page.wait_for_function("/\\d+ of \\d+ drawn/.test(document.querySelector('#generate-message').innerText)",
                               timeout=120_000)  # a progress line while the later systems still draw
        page.wait_for_function("document.querySelector('#generate-message').innerText.startsWith('Drew')", timeout=180_000)
        message = page.inner_text("#generate-message")
        assert GERMAN_PROMPT in message and f"with {n} systems" in message
        if untrained:  # named, each with why and how to train it, and nothing else is unavailable
            unavailable = message.split("Unavailable here:")[1]
            assert all(f"{name}: not trained" in unavailable for name in untrained), unavailable
            assert unavailable.count("not trained") == len(untrained)
        else:
            assert "Unavailable" not in message
        assert page.locator("#generate-gallery img").count() == n
        captions = page.locator("#generate-gallery .caption-label").all_inner_texts()
        assert any("PEA-Diffusion: one small adapter per language" in c and "trainable" in c and "min" in c for c in captions)
        assert page.locator("#generate-gallery").bounding_box()["y"] < page.locator("#generate-message").bounding_box()["y"]
        assert page.locator("#download a").first.get_attribute("href").endswith(".zip")
        screenshot(page, "generate")

        # The method picker, and user text shown as typed: no markup is rendered
        only_systems(page, {"untrained", "translate_oracle"})
        page.fill("#prompt textarea", "<img src=x> **bold** a photo")
        generated(page, 1)
        assert page.locator("#generate-gallery img").count() == 1  # untrained draws; the oracle refuses
        assert page.locator("#generate-message img, #generate-message strong:has-text('bold')").count() == 0
        assert "<img src=x> **bold** a photo" in page.inner_text("#generate-message")
        assert "translate_oracle: unavailable" in page.inner_text("#generate-message")
        assert "words the world does not use here" in page.inner_text("#prompt-reading")

        # Words from another language, and examples with their English meaning for the chosen language
        page.fill("#prompt textarea", "Красный круг")
        page.wait_for_function("document.querySelector('#prompt-reading').innerText.includes('non-Latin')")
        page.fill("#prompt textarea", GERMAN_PROMPT)
        pick(page, "#language", "French (fr)")
        page.wait_for_function("document.querySelector('#prompt textarea').value.startsWith('Un cercle rouge')")
        page.locator("#examples input").click()
        options = page.locator("#examples").get_by_role("option").all_inner_texts()
        assert options and all(" — " in option for option in options[:8]) and not any("Ein " in o for o in options)
        page.keyboard.press("Escape")

        # The Compare tab has its own settings
        page.get_by_role("tab", name="Compare languages").click()
        page.locator("#compare-seed input").fill("3")
        page.click("#compare-button")
        page.wait_for_function("document.querySelectorAll('#compare-gallery img').length >= 6", timeout=120_000)
        assert "seed 3" in page.inner_text("#compare-message")
        screenshot(page, "compare")

        # Results: every change redraws the plot and its rows from the results table
        frame = ResultsStore(REPO / "papermill_runs" / "toy" / "results.csv").read()
        page.get_by_role("tab", name="Results").click()
        page.wait_for_selector("#quality-plot img", timeout=60_000)
        for label, metric, cost_label, cost in (("world FID (scorer features)", "fid_scorer256", None, "trainable_parameters"),
                                                (None, "fid_scorer256", "measured training time (s, the study's machine)",
                                                 "train_seconds"),
                                                ("consistency with English image", "consistency_clip_cos", None,
                                                 "train_seconds")):
            if label:
                pick(page, "#metric", label)
            if cost_label:
                pick(page, "#cost", cost_label)
            expected = quality_points(frame, metric).set_index("method")
            want = {name: f"{value:.4f}".rstrip("0").rstrip(".") for name, value in expected["mean"].round(4).items()}
            page.wait_for_function(f"document.querySelector('#plot-rows').innerText.includes({want['pea']!r})",
                                   timeout=30_000)
            rows = {row[0]: row for row in table_rows(page, "#plot-rows")}
            assert {name: row[1] for name, row in rows.items()} == want, metric
            assert float(rows["pea"][4]) == pytest.approx(expected.at["pea", cost], abs=0.05)  # the selected cost
        assert "log scale" in page.inner_text("#plot-caption")
        assert page.locator("#retrieval-table").is_visible() and page.locator("#claims-table").is_visible()
        screenshot(page, "results")

        # Settings in the URL fill the Generate tab
        page.goto(served_app + "?prompt=Un+cercle+rouge&lang=fr&seed=5&steps=7")
        page.wait_for_function("(document.querySelector('#prompt textarea') || {}).value === 'Un cercle rouge'", timeout=60_000)
        assert page.input_value("#language input") == "French (fr)"
        page.locator("#settings-accordion").get_by_text("Settings", exact=True).click()
        assert page.input_value("#seed input") == "5"

        # Bad input: a message in the page, the app serves on
        page.fill("#prompt textarea", "   ")
        page.click("#generate-button")
        page.wait_for_function("document.querySelector('#generate-message').innerText.includes('empty')",
                               timeout=60_000)
        browser.close()
    assert (tmp_path / "generate.png").stat().st_size > 10_000
