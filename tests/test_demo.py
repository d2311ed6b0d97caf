"""The demo's callbacks under bad input: a clear message in the page, never a traceback, and the app
keeps serving. (The browser test, tests/test_demo_browser.py, drives the real page.)"""

import json

import numpy as np
import pandas as pd
import pytest

from demo.app import (compare, create_demo, example_choices, examples, filtered_table, generate, generate_each, literal,
                      prompt_for, reading_note, results_view, settings_from_url)
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


def test_systems_that_need_an_exact_english_refuse_what_the_world_cannot_read(catalogue):
    """The English reference and the translation oracle draw only an exact translation: a culture concept
    (English has no word for it) or a sentence from outside the world is refused with the reason, never
    drawn from untranslated text; case and spacing do not matter."""
    culture = examples(catalogue, "ja")[-1]
    items, message = generate(catalogue, culture, "ja", 0, STEPS, 4.0, names=["english-backbone", "translate_oracle"])
    assert items == [] and "**english-backbone**: unavailable: the world has no exact English" in message
    assert "**translate_oracle**: unavailable" in message
    items, message = generate(catalogue, "a photo of a cat", "de", 0, STEPS, 4.0, names=["translate_oracle"])
    assert items == [] and "words the world does not use here:" in message and "photo" in message and "cat" in message
    prompt = catalogue.world.generation_prompts()[0].captions["de"]
    sloppy = "  " + prompt.lower().replace(" ", "   ") + " "
    items, message = generate(catalogue, sloppy, "de", 0, STEPS, 4.0, names=["english-backbone", "translate_oracle"])
    english = catalogue.world.generation_prompts()[0].captions["en"]
    assert len(items) == 2 and f"drew the English: {english}" in items[0][1]


def test_examples_and_compare(catalogue):
    assert len(examples(catalogue, "de")) == 12 and examples(catalogue, "xx") == []
    english = catalogue.world.generation_prompts()[0].captions["en"]
    items, message = compare(catalogue, "untrained", english, 0, STEPS, 4.0)
    assert [caption.split(":")[0] for _, caption in items] == ["en", "de", "fr", "cs", "zh", "ja"]
    items, message = compare(catalogue, "iap", english, 0, STEPS, 4.0)
    assert items == [] and "adapts the English model to one other language" in message and "not trained" in message
    items, message = compare(catalogue, "untrained", "a prompt from nowhere", 0, STEPS, 4.0)
    assert items == [] and "not one of the world's parallel prompts" in message


@pytest.mark.parametrize("metric, cost, language", [("consistency_clip_cos", "trainable_parameters", "all"),
                                                    ("fid_scorer256", "train_seconds", "all"),
                                                    ("compositional_all", "trainable_parameters", "de"),
                                                    ("mean_recall", "train_seconds", "zh")])
def test_the_results_plot_shows_exactly_the_selected_numbers(metric, cost, language):
    """Each change rebuilds the figure and its rows from the results table: what is drawn (the error-bar
    points) is the selection's means, the rows are the same numbers, and the front follows the metric's
    direction (lower FID is better)."""
    from xlcore.analysis import GENERATION_METRICS, quality_points
    from xlcore.results import ResultsStore

    frame = ResultsStore("papermill_runs/toy/results.csv").read()
    figure, rows, caption = results_view(frame, metric, cost, language)
    expected = quality_points(frame, metric, None if language == "all" else language).set_index("method")
    drawn = [(x, y) for line in figure.axes[0].lines if line.get_marker() == "o"
             for x, y in zip(line.get_xdata(), line.get_ydata())]
    plotted = expected.dropna(subset=[cost, "mean"])
    plotted = plotted[plotted[cost] > 0]
    assert sorted(drawn) == sorted(zip(plotted[cost], plotted["mean"]))
    assert dict(zip(rows["method"], rows["quality (mean)"])) == pytest.approx(expected["mean"].dropna().round(4).to_dict())
    higher_better = GENERATION_METRICS.get(metric, (None, None, True))[2]
    front = plotted[plotted[f"front_{cost}"]].sort_values(cost)["mean"]
    assert front.is_monotonic_increasing if higher_better else front.is_monotonic_decreasing
    assert ("higher is better" if higher_better else "lower is better") in figure.axes[0].get_ylabel()
    assert "log scale" in figure.axes[0].get_xlabel() and "On the Pareto front:" in caption
    _, empty, caption = results_view(None, metric, cost, language)
    assert empty.empty and "make study" in caption
    table = pd.DataFrame({"de": ["1"], "zh": ["2"]}, index=pd.Index(["iap"], name="method"))
    assert list(filtered_table(table, ["iap"], ["de"]).columns) == ["method", "de"]
    assert filtered_table(table, ["pea"], []).empty


def test_app_builds_without_results_or_runs(tmp_path):
    demo = create_demo(tmp_path, shipped=())
    text = json.dumps(demo.config, default=str)
    assert "No results table" in text and "No trained method is here yet" in text


def test_user_text_is_shown_as_typed_never_rendered(catalogue):
    for text in ("<img src=x onerror=alert(1)>", "**bold** _it_", "a `tick` and ``two``", "`edge`"):
        shown = literal(text)
        fence = shown[:len(shown) - len(shown.lstrip("`"))]
        assert shown.startswith(fence) and shown.endswith(fence) and fence not in shown[len(fence):-len(fence)]
        assert text.strip("`") in shown
    _, message = generate(catalogue, "<img src=x> **bold**", "de", 0, STEPS, 4.0, names=["untrained"])
    assert "`<img src=x> **bold**`" in message


def test_the_page_says_what_the_world_makes_of_a_prompt(catalogue):
    prompt = catalogue.world.generation_prompts()[0].captions["de"]
    assert reading_note(catalogue, prompt, "de").startswith("✓") and "in English:" in reading_note(catalogue, prompt, "de")
    assert "words the world does not use here: `photo`, `cat`" in reading_note(catalogue, "a photo of a cat", "en")
    assert "non-Latin" in reading_note(catalogue, "Красный круг", "de")
    assert "the words are German, not Chinese" in reading_note(catalogue, "Ein roter Kreis", "zh")


def test_examples_carry_their_english_and_a_new_language_gets_its_own_prompt(catalogue):
    choices = example_choices(catalogue, "de")
    english = catalogue.world.generation_prompts()[0].captions["en"]
    assert choices[0] == (f"{examples(catalogue, 'de')[0]}  —  {english}", examples(catalogue, "de")[0])
    assert "culture concept" in choices[-1][0]
    german = catalogue.world.generation_prompts()[3].captions["de"]
    assert prompt_for(catalogue, german, "de", "fr") == catalogue.world.generation_prompts()[3].captions["fr"]
    assert prompt_for(catalogue, "irgendwas", "de", "ja") == examples(catalogue, "ja")[0]


def test_images_appear_as_each_method_finishes_and_the_set_downloads(catalogue):
    import zipfile

    prompt = catalogue.world.generation_prompts()[0].captions["de"]
    steps = list(generate_each(catalogue, {}, prompt, "de", ["english-backbone", "untrained", "translate_oracle"], 3,
                               STEPS, 4.0))
    assert [len(items) for items, *_ in steps] == [1, 2, 3, 3]
    assert "1 of 3 drawn" in steps[0][1] and steps[0][3] is None
    _, message, timings, archive = steps[-1]
    assert "Link to these settings](?prompt=" in message and "seed=3" in message and list(timings["system"])[0] == "english-backbone"
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        assert names == {"english-backbone.png", "untrained.png", "translate_oracle.png", "rows.csv"}
        assert "untrained," in opened.read("rows.csv").decode()


def test_settings_come_from_the_url():
    class Request:
        query_params = {"prompt": "Ein roter Kreis", "lang": "fr", "seed": "7", "steps": "x", "guidance": "2.5"}

    assert settings_from_url(Request(), ("en", "de", "fr"), "default", 25) == ("Ein roter Kreis", "fr", 7, 25, 2.5)
    assert settings_from_url(None, ("en", "de"), "default", 25) == ("default", "de", 0, 25, 4.0)
