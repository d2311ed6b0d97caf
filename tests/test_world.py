"""The Polyglot Shapes world: determinism, disjoint splits, culture concepts, labels, rendering."""

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from fontTools.ttLib import TTFont
from torch.utils.data import DataLoader

from xlcore.config import WorldConfig, apply_smoke
from xlcore.errors import ConfigError, UnknownLanguageError
from xlcore.plotting import FONT_FILE
from xlcore.world import (ALL_SHAPES, COLOURS, CULTURE_SHAPES, LABEL_CLASSES, SHAPES, Scene, Thing, World,
                          get_grammar, render)
from xlcore.world.lexicon import all_captions
from xlcore.world.render import Placement


def image_hash(array: np.ndarray) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def test_same_seed_gives_the_same_world_and_another_seed_does_not():
    config = apply_smoke(WorldConfig())
    a, b = World(config), World(config)
    c = World(dataclasses.replace(config, seed=1))
    for regime, lang in [("english", None), ("language", "de"), ("parallel", "zh"), ("encoder_parallel", "cs"),
                         ("monolingual", "ja")]:
        items_a = [a.item(regime, i, lang) for i in range(20)]
        items_b = [b.item(regime, i, lang) for i in range(20)]
        items_c = [c.item(regime, i, lang) for i in range(20)]
        assert items_a == items_b
        assert items_a != items_c
    assert [image_hash(a.render(x)) for x in a.retrieval_test()._items] == \
        [image_hash(b.render(x)) for x in b.retrieval_test()._items]
    assert a.generation_prompts() == b.generation_prompts()


def test_items_do_not_depend_on_reading_order(small_world):
    forward = [small_world.item("language", i, "cs") for i in range(10)]
    backward = [small_world.item("language", i, "cs") for i in reversed(range(10))][::-1]
    assert forward == backward


def test_splits_never_share_an_image(full_world):
    world = full_world
    seen: dict[str, str] = {}
    regimes = {
        "english": [world.render(world.item("english", i)) for i in range(300)],
        "retrieval_test": [world.render(x) for x in world.retrieval_test()._items],
        "generation_prompts": [world.render(x) for x in world.generation_prompts()],
    }
    for lang in world.target_languages:
        regimes[f"language:{lang}"] = [world.render(world.item("language", i, lang)) for i in range(100)]
        regimes[f"culture:{lang}"] = [world.render(x) for x in world.culture_prompts(lang)]
    for name, images in regimes.items():
        for image in images:
            h = image_hash(image)
            assert seen.get(h, name) == name, f"an image occurs in both {seen[h]} and {name}"
            seen[h] = name


def test_retrieval_test_is_parallel_with_unique_descriptions(full_world):
    test = full_world.retrieval_test()
    assert len(test) == 1000
    keys = [test.item(i).scene.key() for i in range(len(test))]
    assert len(set(keys)) == len(keys)
    for i in range(0, 1000, 97):
        item = test.item(i)
        assert set(item.captions) == set(full_world.languages)
        assert item.scene.culture_language is None
        for lang, caption in item.captions.items():  # every caption is the same scene and phrasing
            assert caption == get_grammar(lang).describe(item.scene, item.relation, item.template)
    shares = np.mean([test.item(i).scene.is_pair for i in range(len(test))])
    assert abs(shares - full_world.config.p_two_objects) < 0.02


def test_culture_concepts_appear_only_in_their_own_languages_data(full_world):
    world = full_world
    for i in range(400):
        assert world.item("english", i).scene.culture_language is None
    for lang in world.target_languages:
        own = [world.item("language", i, lang).scene.culture_language for i in range(400)]
        assert set(own) <= {None, lang}
        share = np.mean([c == lang for c in own])
        assert abs(share - world.config.p_culture) < 0.06, (lang, share)
        assert all(world.item("parallel", i, lang).scene.culture_language is None for i in range(200))
        prompts = world.culture_prompts(lang)
        assert len(prompts) == world.config.n_culture_prompts
        assert all(p.scene.things[0].shape in CULTURE_SHAPES[lang] for p in prompts)
        word = {"de": "Brezel", "fr": "croissant", "cs": "kraslice", "zh": "灯笼", "ja": "鳥居"}[lang]
        assert all(word in p.captions[lang] for p in prompts)


def test_parallel_pairs_are_translations_of_one_scene(small_world):
    item = small_world.item("parallel", 3, "fr")
    assert set(item.captions) == {"en", "fr"}
    for lang in ("en", "fr"):
        assert item.captions[lang] == get_grammar(lang).describe(item.scene, item.relation, item.template)


def test_sizes_are_configurable_and_datasets_have_them(small_world):
    config = small_world.config
    assert len(small_world.english_image_text()) == config.n_english
    assert len(small_world.language_image_text("de")) == config.n_per_language
    assert len(small_world.parallel_text("de")) == config.n_parallel
    assert len(small_world.monolingual_text("en")) == config.n_monolingual
    assert len(small_world.retrieval_test()) == config.n_retrieval_test
    assert len(small_world.generation_prompts()) == config.n_generation_prompts
    assert len(small_world.english_image_text(size=7)) == 7
    with pytest.raises(IndexError):
        small_world.english_image_text(size=7)[7]


def test_torch_datasets_batch_through_a_dataloader_identically_with_workers(small_world):
    dataset = small_world.language_image_text("ja", size=16)
    serial = next(iter(DataLoader(dataset, batch_size=16)))
    parallel = next(iter(DataLoader(dataset, batch_size=16, num_workers=2)))
    assert serial["pixel_values"].shape == (16, 3, 32, 32)
    assert serial["pixel_values"].dtype == torch.float32
    assert 0.0 <= serial["pixel_values"].min() and serial["pixel_values"].max() <= 1.0
    assert torch.equal(serial["pixel_values"], parallel["pixel_values"])
    assert serial["caption"] == parallel["caption"]
    assert serial["labels"].shape == (16, len(LABEL_CLASSES))
    test_batch = next(iter(DataLoader(small_world.retrieval_test(), batch_size=4)))
    assert set(test_batch["captions"]) == set(small_world.languages)


def test_labels_decode_back_to_the_scene():
    scene = Scene((Thing("star", "white"), Thing("torii", "blue")), "vertical")
    labels = scene.labels()
    assert LABEL_CLASSES["layout"][labels["layout"]] == "vertical"
    assert ALL_SHAPES[labels["shape0"]] == "star" and COLOURS[labels["colour0"]] == "white"
    assert ALL_SHAPES[labels["shape1"]] == "torii" and labels["size0"] == -1


def test_every_shape_renders_differently_and_colours_are_exact():
    placement = (Placement(0.5, 0.5, 0.3),)
    masks = {}
    for shape in ALL_SHAPES:
        image = render(Scene((Thing(shape, "red", "big"),), "centre"), placement, 32)
        masks[shape] = (np.abs(image.astype(int) - 128).sum(-1) > 60)
        assert 15 < masks[shape].sum() < 32 * 32 // 2, shape
        centre_colours = {tuple(p) for p in image.reshape(-1, 3)}
        assert (220, 40, 40) in centre_colours  # the object's colour appears unblended inside it
    for a in ALL_SHAPES:
        for b in ALL_SHAPES:
            if a < b:
                assert (masks[a] != masks[b]).sum() >= 8, f"{a} and {b} look alike"


def test_image_size_64_renders_at_64(full_world):
    world = World(dataclasses.replace(full_world.config, image_size=64))
    assert world.render(world.item("english", 0)).shape == (64, 64, 3)


def test_scene_validation_and_language_errors(small_world):
    with pytest.raises(ValueError):
        Scene((Thing("circle", "red"),), "left")  # a single object needs a size
    with pytest.raises(ValueError):
        Scene((Thing("circle", "red"), Thing("circle", "red")), "horizontal")
    with pytest.raises(ValueError):
        Thing("hexagon", "red", "big")
    with pytest.raises(UnknownLanguageError, match="supported languages: de, fr, cs, zh, ja"):
        small_world.language_image_text("en")
    with pytest.raises(UnknownLanguageError, match="'sw'"):
        small_world.monolingual_text("sw")
    with pytest.raises(UnknownLanguageError):
        World(dataclasses.replace(small_world.config, languages=("en", "xx")))
    with pytest.raises(ConfigError, match="must start with 'en'"):
        World(dataclasses.replace(small_world.config, languages=("de", "en")))


def test_the_shipped_font_covers_every_cjk_character_the_grammars_write():
    cmap = TTFont(FONT_FILE).getBestCmap()
    for lang in ("zh", "ja"):
        text = "".join(all_captions(get_grammar(lang), CULTURE_SHAPES[lang]))
        missing = sorted({c for c in text if ord(c) > 0x2000 and ord(c) not in cmap})
        assert not missing, f"{lang}: regenerate the font subset (see {Path(FONT_FILE).parent / 'README.md'}): {missing}"


def test_world_scene_space_size(full_world):
    assert len(full_world.single_scenes) == len(SHAPES) * 6 * 2 * 5
    assert len(full_world.pair_scenes) == 2 * (36 * 36 - 36)


def test_the_encoders_parallel_share_is_its_own_stream_and_never_a_methods(full_world):
    """The multilingual encoder's TLM share (issue 20) is drawn apart from the methods' parallel corpus: other
    items at the same indices, translations of the same scene, no culture concepts, a tenth of the size."""
    for lang in full_world.target_languages:
        own, methods = full_world.encoder_parallel_text(lang), full_world.parallel_text(lang)
        assert len(own) * 10 == len(methods)
        items = [own.item(i) for i in range(50)]
        assert [x.layout for x in items] != [methods.item(i).layout for i in range(50)]
        assert all(x.scene.culture_language is None and set(x.captions) == {"en", lang} for x in items)
        assert own[0]["en"] == full_world.caption(items[0].scene, "en", items[0].relation, items[0].template)
