"""The demo's callbacks under bad input: a clear message in the page, never a traceback, and the app
keeps serving. (The browser test, tests/test_demo_browser.py, drives the real page.)"""

import json

import numpy as np
import pandas as pd
import pytest

from demo.app import compare, create_demo, examples, filtered_table, generate, quality_plot
from xlcore.errors import PromptError
from xlcore.methods._base import build_method
from xlcore.prompts import check_prompt
from xlcore.serving import Catalogue

STEPS = 2  # drawing speed is not under test


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """A catalogue with no trained run but one corrupt checkpoint (PEA for German) and one checkpoint
    that names a method nobody registered (MuLan's folder)."""
    root = tmp_path_factory.mktemp("runs")
    cat = Catalogue(root, "toy", 0, shipped=(), steps=STEPS)
    pea = root / "toy" / "pea" / "de" / "0" / "train" / "method"
    build_method("pea", cat.backbone, language="de").save(pea)
    weights = pea / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated mid-tensor
    mulan = root / "toy" / "mulan" / "all" / "0" / "train" / "method"
    mulan.mkdir(parents=True)
    (mulan / "method.json").write_text(json.dumps({"method": "no-such-method", "config": {}}))
    (mulan / "trainable.safetensors").write_bytes(b"")
    return Catalogue(root, "toy", 0, shipped=(), steps=STEPS)


def test_prompt_checks():
    with pytest.raises(PromptError, match="empty"):
        check_prompt("   \n\t ")
    with pytest.raises(PromptError, match="empty"):
        check_prompt("\x00\x07")
    with pytest.raises(PromptError, match="text"):
        check_prompt(None)
    cleaned = check_prompt("ein\x00 roter\u200b  Kreis\x1b")
    assert cleaned.text == "ein roter Kreis" and "control" in cleaned.notes[0]
    long = check_prompt("rot " * 200)
    assert long.truncated and len(long.text) <= 300
    mixed = check_prompt("Ein roter 圆 über einem blauen 四角")
    assert mixed.text == "Ein roter 圆 über einem blauen 四角" and not mixed.notes


@pytest.mark.parametrize("prompt, language, expected", [
    ("", "de", "empty"),
    ("   ", "de", "empty"),
    ("Ein roter Kreis", "xx", "unknown language 'xx'; supported languages: en, de, fr, cs, zh, ja"),
])
def test_bad_input_gives_a_message(catalogue, prompt, language, expected):
    items, message = generate(catalogue, prompt, language, 0, STEPS, 4.0)
    assert items == [] and expected in message and "Traceback" not in message


def test_missing_and_corrupt_runs_are_explained_and_the_rest_draw(catalogue):
    prompt = catalogue.world.generation_prompts()[0].captions["de"]
    items, message = generate(catalogue, prompt, "de", 0, STEPS, 4.0)
    drawn = [caption.split(" · ")[0] for _, caption in items]
    assert drawn == ["english-backbone", "untrained", "translate_oracle"]  # the systems that need no run
    assert all(isinstance(image, np.ndarray) and image.shape[-1] == 3 and image.dtype == np.uint8 for image, _ in items)
    assert "**trikd**: not trained (seed 0); train it with `python -m xlcore sweep --preset toy --methods trikd" in message
    assert "**pea**: its checkpoint cannot be loaded" in message and "trainable.safetensors" in message
    assert "**mulan**: its checkpoint cannot be loaded" in message and "no-such-method" in message
    again, _ = generate(catalogue, prompt, "de", 1, STEPS, 4.0)  # still serving, same systems
    assert len(again) == 3


def test_overlong_prompt_is_truncated_with_a_visible_note(catalogue):
    items, message = generate(catalogue, "ein roter Kreis " * 40, "de", 0, STEPS, 4.0)
    assert items and "note: truncated to" in message


def test_english_reference_needs_an_english_version(catalogue):
    culture = examples(catalogue, "ja")[-1]
    _, message = generate(catalogue, culture, "ja", 0, STEPS, 4.0)
    assert "**english-backbone**: no English version of this prompt is known" in message


def test_examples_and_compare(catalogue):
    assert len(examples(catalogue, "de")) == 12 and examples(catalogue, "xx") == []
    english = catalogue.world.generation_prompts()[0].captions["en"]
    items, message = compare(catalogue, "untrained", english, 0, STEPS, 4.0)
    assert [caption.split(":")[0] for _, caption in items] == ["en", "de", "fr", "cs", "zh", "ja"]
    items, message = compare(catalogue, "iap", english, 0, STEPS, 4.0)
    assert items == [] and "adapts the English model to one other language" in message and "not trained" in message
    items, message = compare(catalogue, "untrained", "a prompt from nowhere", 0, STEPS, 4.0)
    assert items == [] and "not one of the world's parallel prompts" in message


def test_results_views(tmp_path):
    from xlcore.results import ResultsStore

    frame = ResultsStore("papermill_runs/toy/results.csv").read()
    data, caption = quality_plot(frame, "consistency_clip_cos", "trainable_parameters", "all")
    assert set(data.columns) == {"method", "cost", "quality", "front"} and len(data) >= 3
    assert "Pareto front" in set(data["front"]) and "On the Pareto front:" in caption
    front = data[data["front"] == "Pareto front"].sort_values("cost")
    assert front["quality"].is_monotonic_increasing  # along the front, more cost buys more quality
    empty, caption = quality_plot(None, "consistency_clip_cos", "trainable_parameters", "all")
    assert empty.empty and "make study" in caption
    table = pd.DataFrame({"de": ["1"], "zh": ["2"]}, index=pd.Index(["iap"], name="method"))
    assert list(filtered_table(table, ["iap"], ["de"]).columns) == ["method", "de"]
    assert filtered_table(table, ["pea"], []).empty


def test_app_builds_without_results_or_runs(tmp_path):
    demo = create_demo(tmp_path, shipped=())
    text = json.dumps(demo.config)
    assert "No results table" in text and "No trained method is here yet" in text
