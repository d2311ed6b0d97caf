"""Bad prompts and languages through `encode`, the pipeline (`xlcore.serving.Catalogue.draw`) and the
demo's callback: a clear error, or a visible correction, never a crash."""

import logging

import pytest

from xlcore.errors import PromptError, UnknownLanguageError

SUPPORTED = "supported languages: en, de, fr, cs, zh, ja"


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    from xlcore.serving import Catalogue

    return Catalogue(tmp_path_factory.mktemp("runs"), "toy", 0, shipped=(), steps=1)


@pytest.fixture(scope="module")
def untrained(catalogue):
    return catalogue.system("untrained", "de")


def test_encode_unknown_language_lists_the_supported_ones(untrained, ledger):
    with pytest.raises(UnknownLanguageError, match=SUPPORTED) as caught:
        untrained.encode(["ein Kreis"], "klingon")
    ledger.bad_input("encode: unknown language code", True, str(caught.value))


@pytest.mark.parametrize("text, case", [
    ("Ein roter Kreis über einem 青い 四角", "mixed scripts"),
    ("ein\x00 roter\x1b Kreis\u200b", "control characters"),
    ("", "the empty prompt (classifier-free guidance's unconditional input: accepted by design)"),
])
def test_encode_accepts_odd_text_without_crashing(untrained, text, case, ledger):
    states = untrained.encode([text], "de").token_states
    assert states.isfinite().all()
    ledger.bad_input(f"encode: {case}", True, "encoded; finite states")


def test_encode_warns_when_it_cuts_an_overlong_prompt(untrained, caplog, ledger):
    with caplog.at_level(logging.WARNING):
        untrained.encode(["rot " * 200], "de")
    assert "longer than the text encoder reads (64 tokens) and were cut" in caplog.text
    ledger.bad_input("encode: overlong prompt", True, "warning: 1 of 1 texts are longer than the text encoder reads")


@pytest.mark.parametrize("prompt, language, error, expected", [
    ("", "de", PromptError, "the prompt is empty"),
    (" \t\n ", "de", PromptError, "the prompt is empty"),
    ("\x00\x07", "de", PromptError, "held only control characters"),
    ("ein Kreis", "xx", UnknownLanguageError, SUPPORTED),
    (None, "de", PromptError, "a prompt is text"),
])
def test_the_pipeline_refuses_bad_prompts_clearly(catalogue, prompt, language, error, expected, ledger):
    with pytest.raises(error, match=expected) as caught:
        catalogue.draw(prompt, language, names=["untrained"])
    ledger.bad_input(f"pipeline: {prompt!r} in {language!r}", True, str(caught.value))


@pytest.mark.parametrize("prompt, note", [
    ("rot " * 200, "truncated to"),
    ("ein\x07 roter Kreis", "removed 1 control character"),
    ("一个红色的圆形" * 30, "truncated to"),
])
def test_the_pipeline_corrects_odd_prompts_visibly(catalogue, prompt, note, ledger):
    checked, drawn = catalogue.draw(prompt, "de" if "rot" in prompt else "zh", names=["untrained"])
    assert drawn[0].ok and any(note in n for n in checked.notes)
    ledger.bad_input(f"pipeline: {prompt[:24]!r}...", True, "; ".join(checked.notes)[:120])


def test_the_demo_shows_bad_input_in_the_page(catalogue, ledger):
    from demo.app import generate

    for prompt, language in (("", "de"), ("ein Kreis", "tlh")):
        items, message = generate(catalogue, prompt, language, 0, 1, 4.0)
        assert items == [] and message.startswith("**Cannot draw:**") and "Traceback" not in message
        ledger.bad_input(f"demo: {prompt!r} in {language!r}", True, message)
