"""The Polyglot Shapes world: deterministic data regimes built from scenes, a renderer and grammars.

Every item is a pure function of (world seed, regime, language, index): an item's random generator is
seeded with exactly that tuple, so items can be read in any order, by any number of DataLoader workers,
and the same seed always gives the same world. Regimes (DESIGN.md section 4):

- `english_image_text`: the large English image-text set (backbone pretraining, English-only methods).
- `language_image_text(lang)`: a small image-text set per non-English language; a share `p_culture` of
  it shows that language's culture concept.
- `parallel_text(lang)`: en-X caption pairs of the same scene and phrasing (translations), no images,
  no culture concepts (English has no word for them).
- `monolingual_text(lang)`: captions in one language, unpaired (multilingual encoder pretraining).
- `encoder_parallel_text(lang)`: a small en-X parallel share of its own, read only by the multilingual
  encoder's pretraining (translation language modelling), never by a method: real multilingual encoders
  are partly aligned by what they were pretrained on, and this is the toy's counterpart.
- `retrieval_test()`: fixed images with unique descriptions and one caption per language, parallel
  across languages (the shape of Multi30K task 1).
- `generation_prompts()`: parallel prompts in every language; `culture_prompts(lang)`: prompts naming
  that language's culture concept.

Splits are disjoint by construction: each regime draws from its own random stream, so no rendered image
occurs in two regimes (tests check this). The scenes themselves (descriptions) are shared between
training and test: the study measures cross-lingual transfer, not compositional generalisation.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import WorldConfig, config_hash
from ..data.corpus import CorpusLanguages
from ..errors import ConfigError, UnknownLanguageError
from .grammars import get_grammar, supported_languages
from .render import Placement, render, sample_layout
from .scene import CULTURE_SHAPES, RELATIONS_BY_AXIS, SHAPES, Scene, pair_scenes, single_scenes

log = logging.getLogger(__name__)

# Stable ids for seeding: never reorder, only append (changing them changes every world).
REGIME_IDS = {"english": 1, "language": 2, "parallel": 3, "monolingual": 4, "retrieval_test": 5,
              "generation_prompts": 6, "culture_prompts": 7, "scorer": 8, "encoder_parallel": 9}
LANGUAGE_IDS = {"en": 1, "de": 2, "fr": 3, "cs": 4, "zh": 5, "ja": 6}


@dataclass(frozen=True)
class WorldItem:
    """One sample: a scene, where its objects are drawn, and its caption in one or more languages."""

    regime: str
    index: int
    scene: Scene
    layout: tuple[Placement, ...]
    relation: str | None
    template: int
    captions: Mapping[str, str]


class World(CorpusLanguages):
    """All data regimes of one Polyglot Shapes world (see the module docstring)."""

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()
        known = supported_languages()
        for code in self.config.languages:
            if code not in known:
                raise UnknownLanguageError(code, known)
        if self.config.languages[0] != "en":
            raise ConfigError(f"world.languages must start with 'en' (the backbone's language): {self.config.languages}")
        if not 0.0 <= self.config.p_two_objects <= 1.0 or not 0.0 <= self.config.p_culture <= 1.0:
            raise ConfigError("world.p_two_objects and world.p_culture are probabilities in [0, 1]")
        self.languages: tuple[str, ...] = tuple(self.config.languages)
        self.single_scenes = tuple(single_scenes())
        self.pair_scenes = tuple(pair_scenes())
        self.culture_single: dict[str, tuple[Scene, ...]] = {}
        self.culture_pairs: dict[str, tuple[Scene, ...]] = {}
        for lang in self.target_languages:
            own = CULTURE_SHAPES.get(lang, ())
            self.culture_single[lang] = tuple(single_scenes(own))
            self.culture_pairs[lang] = tuple(
                s for s in pair_scenes(SHAPES + own) if s.culture_language == lang
            )

    # ----------------------------------------------------------------------------------------------
    # Items

    def _rng(self, regime: str, index: int, lang: str | None = None, stream: int = 0) -> np.random.Generator:
        """The generator of one item (stream 0) or of a regime's fixed selection of scenes (stream 1)."""
        return np.random.default_rng(
            [self.config.seed, REGIME_IDS[regime], LANGUAGE_IDS.get(lang, 0), stream, index]
        )

    def sample_scene(self, rng: np.random.Generator, culture_language: str | None = None) -> Scene:
        """A random scene; with `culture_language`, a share p_culture shows its culture concept."""
        pair = rng.random() < self.config.p_two_objects
        if culture_language and CULTURE_SHAPES.get(culture_language) and rng.random() < self.config.p_culture:
            pool = (self.culture_pairs if pair else self.culture_single)[culture_language]
        else:
            pool = self.pair_scenes if pair else self.single_scenes
        return pool[rng.integers(len(pool))]

    def _make_item(self, regime: str, index: int, scene: Scene, rng: np.random.Generator,
                   languages: tuple[str, ...], template: int | None = None) -> WorldItem:
        relation = RELATIONS_BY_AXIS[scene.place][rng.integers(2)] if scene.is_pair else None
        template = int(rng.integers(4)) if template is None else template
        layout = sample_layout(scene, rng)
        captions = {lang: get_grammar(lang).describe(scene, relation, template) for lang in languages}
        return WorldItem(regime, index, scene, layout, relation, template, captions)

    def item(self, regime: str, index: int, language: str | None = None) -> WorldItem:
        """Item `index` of a sampled regime: 'english', 'language', 'parallel', 'encoder_parallel',
        'monolingual' or 'scorer'."""
        if regime == "english":
            rng = self._rng(regime, index)
            return self._make_item(regime, index, self.sample_scene(rng), rng, ("en",))
        if regime == "scorer":
            # Every shape, culture concepts of all languages included: the scorer is an evaluator and
            # must recognise whatever a method draws. No captions (no language names them all).
            rng = self._rng(regime, index)
            culture = self.target_languages[rng.integers(len(self.target_languages))]
            return self._make_item(regime, index, self.sample_scene(rng, culture), rng, ())
        if language is None:
            raise ValueError(f"regime {regime!r} needs a language")
        if regime == "language":
            self.check_language(language, allow_english=False)
            rng = self._rng(regime, index, language)
            return self._make_item(regime, index, self.sample_scene(rng, language), rng, (language,))
        if regime in ("parallel", "encoder_parallel"):
            self.check_language(language, allow_english=False)
            rng = self._rng(regime, index, language)
            return self._make_item(regime, index, self.sample_scene(rng), rng, ("en", language))
        if regime == "monolingual":
            self.check_language(language)
            rng = self._rng(regime, index, language)
            return self._make_item(regime, index, self.sample_scene(rng, language), rng, (language,))
        raise ValueError(f"unknown sampled regime {regime!r}")

    def render(self, item: WorldItem) -> np.ndarray:
        """The item's image, uint8 (H, W, 3)."""
        return render(item.scene, item.layout, self.config.image_size, self.config.supersample)

    def caption(self, scene: Scene, lang: str, relation: str | None = None, template: int = 0) -> str:
        self.check_language(lang)
        return get_grammar(lang).describe(scene, relation, template)

    # ----------------------------------------------------------------------------------------------
    # Regimes as datasets

    def english_image_text(self, size: int | None = None) -> "ImageTextDataset":
        return ImageTextDataset(self, "english", "en", size or self.config.n_english)

    def language_image_text(self, lang: str, size: int | None = None) -> "ImageTextDataset":
        self.check_language(lang, allow_english=False)
        return ImageTextDataset(self, "language", lang, size or self.config.n_per_language)

    def pivot_image_text(self, lang: str, size: int | None = None) -> "PivotImageTextDataset":
        """`language_image_text(lang)` with each item's English caption beside it (see the class)."""
        self.check_language(lang, allow_english=False)
        return PivotImageTextDataset(self, lang, size or self.config.n_per_language)

    def parallel_text(self, lang: str, size: int | None = None) -> "ParallelTextDataset":
        self.check_language(lang, allow_english=False)
        return ParallelTextDataset(self, lang, size or self.config.n_parallel)

    def encoder_parallel_text(self, lang: str, size: int | None = None) -> "ParallelTextDataset":
        """The multilingual encoder's own parallel share (see the module docstring), disjoint from `parallel_text`."""
        self.check_language(lang, allow_english=False)
        return ParallelTextDataset(self, lang, size or self.config.n_encoder_parallel, regime="encoder_parallel")

    def monolingual_text(self, lang: str, size: int | None = None) -> "TextDataset":
        self.check_language(lang)
        return TextDataset(self, lang, size or self.config.n_monolingual)

    def scorer_images(self, size: int) -> "ImageTextDataset":
        """Labelled images over every shape (culture concepts included), for the attribute scorer."""
        return ImageTextDataset(self, "scorer", None, size)

    def _unique_scenes(self, regime: str, count: int, single: tuple[Scene, ...], pairs: tuple[Scene, ...]) -> list[Scene]:
        """`count` distinct scenes, a share p_two_objects of them pairs, in a fixed random order."""
        rng = self._rng(regime, 0, stream=1)
        n_single = min(len(single), round(count * (1 - self.config.p_two_objects)))
        n_pair = count - n_single
        if n_pair > len(pairs):
            raise ConfigError(f"{regime}: {count} unique scenes asked for, the world has {len(single) + len(pairs)}")
        chosen = [single[i] for i in rng.permutation(len(single))[:n_single]]
        chosen += [pairs[i] for i in rng.permutation(len(pairs))[:n_pair]]
        return [chosen[i] for i in rng.permutation(len(chosen))]

    @functools.cached_property
    def _retrieval_items(self) -> tuple[WorldItem, ...]:
        scenes = self._unique_scenes("retrieval_test", self.config.n_retrieval_test, self.single_scenes, self.pair_scenes)
        return tuple(
            self._make_item("retrieval_test", i, scene, self._rng("retrieval_test", i), self.languages)
            for i, scene in enumerate(scenes)
        )

    def retrieval_test(self) -> "ImageTextDataset":
        """Unique-description test images with one caption per language (parallel), fixed by the seed."""
        return ImageTextDataset(self, "retrieval_test", None, len(self._retrieval_items), self._retrieval_items)

    @functools.cached_property
    def _generation_items(self) -> tuple[WorldItem, ...]:
        scenes = self._unique_scenes("generation_prompts", self.config.n_generation_prompts,
                                     self.single_scenes, self.pair_scenes)
        # Template 0 in every language: the plainest phrasing, identical in structure across languages.
        return tuple(
            self._make_item("generation_prompts", i, s, self._rng("generation_prompts", i), self.languages, template=0)
            for i, s in enumerate(scenes)
        )

    def generation_prompts(self) -> tuple[WorldItem, ...]:
        """Parallel generation prompts (one caption per language) with the scene each one asks for."""
        return self._generation_items

    def culture_prompts(self, lang: str) -> tuple[WorldItem, ...]:
        """Prompts naming `lang`'s culture concept (single objects, template 0)."""
        self.check_language(lang, allow_english=False)
        pool = self.culture_single[lang]
        if not pool:
            return ()
        rng = self._rng("culture_prompts", 0, lang, stream=1)
        order = rng.permutation(len(pool))[: self.config.n_culture_prompts]
        return tuple(
            self._make_item("culture_prompts", i, pool[j], self._rng("culture_prompts", i, lang), (lang,), template=0)
            for i, j in enumerate(order)
        )


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)


class _RegimeDataset(Dataset):
    """A regime of `size` items, read by index through `World.item` (or from a fixed tuple of items)."""

    def __init__(self, world: World, regime: str, language: str | None, size: int,
                 items: tuple[WorldItem, ...] | None = None):
        self.world, self.regime, self.language, self.size = world, regime, language, size
        self._items = items

    def __len__(self) -> int:
        return self.size

    def descriptor(self) -> dict:
        """What identifies this dataset's content (a feature cache key part)."""
        return {"kind": type(self).__name__, "world": config_hash(self.world.config), "regime": self.regime,
                "language": self.language, "size": self.size}

    def item(self, index: int) -> WorldItem:
        if not 0 <= index < self.size:
            raise IndexError(f"{self.regime} ({self.language or 'all languages'}) has {self.size} items, "
                             f"asked for {index}")
        if self._items is not None:
            return self._items[index]
        return self.world.item(self.regime, index, self.language)


class ImageTextDataset(_RegimeDataset):
    """Rendered images with captions. Each element is a dict:

    `pixel_values` float (3, H, W) in [0, 1]; `caption` (the item's language) or `captions`
    (dict language -> caption, for parallel test sets); `language`; `scene` (the canonical key);
    `labels` (long tensor of attribute classes, see Scene.labels; -1 where not applicable).
    """

    def __getitem__(self, index: int) -> dict:
        item = self.item(index)
        sample = {
            "pixel_values": image_to_tensor(self.world.render(item)),
            "scene": item.scene.key(),
            "labels": torch.tensor(list(item.scene.labels().values()), dtype=torch.long),
        }
        if self.language is None:
            sample["captions"] = dict(item.captions)
        else:
            sample["caption"] = item.captions[self.language]
            sample["language"] = self.language
        return sample


class PivotImageTextDataset(_RegimeDataset):
    """A language's own image-text items with the English caption of the same scene and phrasing beside
    the target caption (image-target-English triplets, what IAP and PEA's teacher need).

    Culture-concept items have no English caption (English has no word for them): `caption_en` is ""
    and `has_english` is False, so a method can drop its English-teacher terms for them.
    """

    def __init__(self, world: World, language: str, size: int):
        super().__init__(world, "language", language, size)

    def __getitem__(self, index: int) -> dict:
        item = self.item(index)
        sample = {"pixel_values": image_to_tensor(self.world.render(item)), "caption": item.captions[self.language],
                  "language": self.language}
        if item.scene.culture_language is None:
            sample["caption_en"] = get_grammar("en").describe(item.scene, item.relation, item.template)
        else:
            sample["caption_en"] = ""
        sample["has_english"] = torch.tensor(item.scene.culture_language is None)
        return sample


class ParallelTextDataset(_RegimeDataset):
    """en-X caption pairs of the same scene and phrasing: {'en': ..., 'target': ..., 'language': X}."""

    def __init__(self, world: World, language: str, size: int, regime: str = "parallel"):
        super().__init__(world, regime, language, size)

    def __getitem__(self, index: int) -> dict:
        item = self.item(index)
        return {"en": item.captions["en"], "target": item.captions[self.language], "language": self.language}


class TextDataset(_RegimeDataset):
    """Monolingual captions of one language: {'text': ..., 'language': ...}."""

    def __init__(self, world: World, language: str, size: int):
        super().__init__(world, "monolingual", language, size)

    def __getitem__(self, index: int) -> dict:
        return {"text": self.item(index).captions[self.language], "language": self.language}
