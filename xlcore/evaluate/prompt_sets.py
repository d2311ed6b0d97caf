"""Generation prompts: the world's, or real ones from published benchmark files.

A prompt set gives parallel prompts (prompt i in every language it has, the same seed in each), the
reference images FID compares against where it has them, and whether the world's attribute scorer can
judge its images (only the world's prompts name scenes the scorer knows).

- `WorldPrompts`: the world's parallel generation prompts, their clean renders as FID references, and
  each language's culture-concept prompts.
- `CaptionPrompts`: real parallel captions as prompts, their images as FID references:
  Multi30K task 1 (en, de, fr, cs: translations of one another, Flickr30K images), Crossmodal-3600 (the
  first caption of each image per language: written independently, parallel by image, not by text), or
  any `RetrievalBenchmark` list of the same images in several languages; and CoCo-CroLa's concept list
  (`concepts(path)`: a CSV whose header names languages and whose rows are one concept per language,
  prompted as "a photo of <concept>" in the concept list's own templates where given, no references).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import DataFormatError, MissingDataError

MULTI30K_LANGUAGES = ("en", "de", "fr", "cs")


@dataclass(frozen=True)
class EvalPrompt:
    """Prompt `index` in several languages; `scene` for the world's scorer, `image` for FID."""

    index: int
    captions: Mapping[str, str]
    scene: Any = None
    image: Path | None = None


class WorldPrompts:
    """The world's generation prompts (see the module docstring)."""

    scored = True  # the world's attribute scorer judges these images

    def __init__(self, world):
        self.world = world
        self.name = "polyglot-shapes/generation-prompts"
        self.languages = tuple(world.languages)

    def prompts(self, n: int) -> Sequence:
        return self.world.generation_prompts()[:n]

    def references(self, prompts: Sequence) -> torch.Tensor:
        from ..world import image_to_tensor

        return torch.stack([image_to_tensor(self.world.render(p)) for p in prompts])

    def culture_prompts(self, lang: str) -> Sequence:
        return self.world.culture_prompts(lang) if lang in self.world.target_languages else ()

    def descriptor(self) -> dict[str, Any]:
        return {"world": self.world.config}

    def concept_prompts(self, samples: int) -> list:
        from .concepts import world_concept_prompts

        return world_concept_prompts(self.world, samples)

    reference_note = ("clean renders of the same prompts (list in assets/fid_reference_toy.csv)")


@dataclass
class CaptionPrompts:
    """Real captions as parallel prompts (see the module docstring)."""

    name: str
    items: list[EvalPrompt]
    source: str
    image_size: int = 299
    scored: bool = False
    languages: tuple[str, ...] = field(default=())
    concept_list: bool = False  # CoCo-CroLa's kind: each prompt names one concept (its three scores apply)

    def __post_init__(self) -> None:
        if not self.items:
            raise DataFormatError(self.source, f"{self.name}: no prompts")
        if not self.languages:
            self.languages = tuple(dict.fromkeys(lang for item in self.items for lang in item.captions))

    def prompts(self, n: int) -> list[EvalPrompt]:
        return self.items[:n]

    def references(self, prompts: Sequence[EvalPrompt]) -> torch.Tensor | None:
        """The prompts' own images (shorter side to `image_size`, centre crop), or None without images."""
        if any(p.image is None for p in prompts):
            return None
        from .retrieval import clip_preprocess

        missing = [p.image for p in prompts if not Path(p.image).is_file()]
        if missing:
            raise MissingDataError(f"{len(missing)} reference images of {self.name} are missing, e.g. {missing[0]}")
        return torch.stack([clip_preprocess(p.image, self.image_size) for p in prompts])

    def culture_prompts(self, lang: str) -> Sequence:
        return ()

    def concept_prompts(self, samples: int) -> list:
        from .concepts import listed_concept_prompts

        return listed_concept_prompts(self.items, samples) if self.concept_list else []

    def descriptor(self) -> dict[str, Any]:
        listed = "\n".join(f"{p.image}\t" + "\t".join(f"{k}={v}" for k, v in sorted(p.captions.items()))
                           for p in self.items)
        return {"name": self.name, "source": self.source, "sha256": hashlib.sha256(listed.encode()).hexdigest()[:16]}

    @property
    def reference_note(self) -> str:
        digest = hashlib.sha256("\n".join(str(p.image) for p in self.items).encode()).hexdigest()[:12]
        return f"the prompts' own images from {self.source} (list sha256 {digest}), PIL bicubic shorter side, centre crop"


def from_benchmarks(benchmarks: Mapping[str, Any], name: str) -> CaptionPrompts:
    """Parallel prompts from one benchmark loaded per language (`xlcore.data` loaders): image i's first
    caption in each language is prompt i; its image (when the benchmark was loaded with one) the reference."""
    loaded = list(benchmarks.values())
    ids = loaded[0].image_ids
    for benchmark in loaded[1:]:
        if benchmark.image_ids != ids:
            raise DataFormatError(benchmark.source, f"{benchmark.name} ({benchmark.language}) lists other images than "
                                  f"{loaded[0].language}: prompts must be parallel across languages")
    image_dir = loaded[0].image_dir
    items = [EvalPrompt(i, {lang: b.captions[i][0] for lang, b in benchmarks.items()},
                        image=(image_dir / image_id) if image_dir is not None else None) for i, image_id in enumerate(ids)]
    return CaptionPrompts(name, items, "; ".join(b.source for b in loaded), languages=tuple(benchmarks))


def concepts(path: str | Path, templates: Mapping[str, str] | None = None) -> CaptionPrompts:
    """CoCo-CroLa's concept list: a CSV (header: languages, e.g. `en,de,zh,ja`) with one concept per row in
    every language. Each language's prompt is its template with the concept ('{}'; default
    'a photo of {}' in English and the bare concept elsewhere, so give each language its own template)."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"concept list {path} not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DataFormatError(path, "no concepts (expected a header of languages, then one concept per row)")
    templates = dict(templates or {})
    items = []
    for number, row in enumerate(rows):
        captions = {}
        for lang, concept in row.items():
            if not concept or not concept.strip():
                raise DataFormatError(path, f"concept {number + 1} has no {lang!r} word", line=number + 2)
            captions[lang] = templates.get(lang, "a photo of {}" if lang == "en" else "{}").format(concept.strip())
        items.append(EvalPrompt(number, captions))
    return CaptionPrompts(f"cococrola/{path.stem}", items, str(path), concept_list=True)
