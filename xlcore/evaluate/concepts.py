"""CoCo-CroLa's three concept scores (Saxon & Wang, "Multilingual Conceptual Coverage in Text-to-Image
Models", Findings of ACL 2023; github.com/michaelsaxon/CoCoCroLa, `cococrola/analyze/evaluate_model.py`).

A concept is prompted in several languages with several samples each (CoCo-CroLa: one prompt per
concept and language, several seeds); the images are embedded by a feature extractor and compared
by cosine similarity. Per concept c and language l, with I(c, l) the images:

- correctness: the mean cosine over all pairs of I(c, l) and I(c, source), the source language being
  English (CoCo-CroLa's `compare_by_lang`; for l = source the n identical pairs are left out);
- self-consistency: the mean cosine over the pairs of distinct images within I(c, l) (`lang_self_sim`);
- inverse specificity: the mean cosine over all pairs of I(c, l) and the language's fingerprint, one
  image of every concept in l (`lang_cross_sim` against `precompute_fingerprint_matrix`; upstream draws
  one random image of each of up to 100 random concepts, here sample 0 of every concept, so the number
  is deterministic). Lower is more specific: the concept's images differ from other concepts'.

Each score of a language is the mean over its concepts. The feature extractor is CoCo-CroLa's own
(`CLIPVisionModel` openai/clip-vit-base-patch32, its pooled output) where its weights are on the
machine (`CocoCrolaFeatures`), otherwise the study's CLIP image tower, named in the protocol.

On the toy world the concepts are its shapes: the six shared ones in every language and each
language's culture concept in that language only (no other language names it, so it has no
correctness). The world cannot name a bare object, so sample j of a concept is the prompt for that
shape with the j-th colour, size and place of a fixed cycle, the same scene in every language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ..backbone.base import clip_pixels
from ..errors import MissingWeightsError

COCOCROLA_MODEL = "openai/clip-vit-base-patch32"
CONCEPT_SEED_OFFSET = 50_000  # concept prompts' indices (hence seeds) start here, apart from the generation prompts'


@dataclass(frozen=True)
class ConceptPrompt:
    """Sample `sample` of concept `concept`, in every language that names it (`index` seeds its noise)."""

    concept: str
    sample: int
    index: int
    captions: Mapping[str, str]


def mean_pairwise_cosine(a: torch.Tensor, b: torch.Tensor, same_set: bool = False) -> float:
    """CoCo-CroLa's `avg_cos_sim`: the mean cosine over all pairs of rows of `a` and `b`; with `same_set`
    (a and b the same images) the n pairs of an image with itself are left out."""
    a = nn.functional.normalize(a.double(), dim=-1)
    b = nn.functional.normalize(b.double(), dim=-1)
    sims = a @ b.T
    if same_set:
        if len(a) < 2:
            raise ValueError("self-consistency needs at least two images of a concept")
        return float((sims.sum() - sims.diagonal().sum()) / (len(a) * len(a) - len(a)))
    return float(sims.mean())


def concept_scores(features: Mapping[str, Mapping[str, torch.Tensor]], source: str = "en"
                   ) -> dict[str, dict[str, float]]:
    """The three scores per language (module docstring) from `features[lang][concept]`, (n, d) each."""
    out = {}
    for lang, by_concept in features.items():
        fingerprint = torch.stack([images[0] for images in by_concept.values()])
        scores: dict[str, list[float]] = {"correctness": [], "self_consistency": [], "inverse_specificity": []}
        for concept, images in by_concept.items():
            scores["self_consistency"].append(mean_pairwise_cosine(images, images, same_set=True))
            scores["inverse_specificity"].append(mean_pairwise_cosine(images, fingerprint))
            reference = features.get(source, {}).get(concept)
            if reference is not None:
                scores["correctness"].append(mean_pairwise_cosine(reference, images, same_set=lang == source))
        out[lang] = {name: sum(values) / len(values) for name, values in scores.items() if values}
    return out


def world_concept_prompts(world, samples: int) -> list[ConceptPrompt]:
    """The toy world's concept prompts (module docstring): every shape, `samples` scenes each."""
    from ..world.scene import ALL_SHAPES, COLOURS, POSITIONS, SHAPE_CULTURE, SIZES, Scene, Thing

    prompts = []
    for k, shape in enumerate(ALL_SHAPES):
        owner = SHAPE_CULTURE.get(shape)
        languages = [lang for lang in world.languages if owner is None or lang == owner]
        if not languages:
            continue
        for j in range(samples):
            scene = Scene((Thing(shape, COLOURS[(k + j) % len(COLOURS)], SIZES[j % len(SIZES)]),),
                          POSITIONS[j % len(POSITIONS)])
            prompts.append(ConceptPrompt(shape, j, CONCEPT_SEED_OFFSET + k * samples + j,
                                         {lang: world.caption(scene, lang) for lang in languages}))
    return prompts


def listed_concept_prompts(items: Sequence, samples: int) -> list[ConceptPrompt]:
    """A real concept list's prompts (`prompt_sets.concepts`): each concept's one prompt per language,
    drawn `samples` times with different seeds, as CoCo-CroLa does."""
    return [ConceptPrompt(item.captions.get("en", next(iter(item.captions.values()))), j,
                          CONCEPT_SEED_OFFSET + item.index * samples + j, item.captions)
            for item in items for j in range(samples)]


class CocoCrolaFeatures:
    """CoCo-CroLa's feature extractor: Hugging Face `CLIPVisionModel` (default openai/clip-vit-base-patch32)
    from the local cache or a folder, its pooled output; images resized (bicubic) to the tower's input
    and CLIP-normalised, as its CLIPProcessor does for square images. Nothing is downloaded."""

    def __init__(self, model_id: str = COCOCROLA_MODEL, device: torch.device | str = "cpu"):
        from transformers import CLIPVisionModel

        try:
            self.model = CLIPVisionModel.from_pretrained(model_id, local_files_only=True).to(device)
        except OSError:
            raise MissingWeightsError("CoCo-CroLa's feature extractor", model_id) from None
        self.model.eval().requires_grad_(False)
        self.size = self.model.config.image_size
        self.device = torch.device(device)
        self.name = f"{model_id} (CLIPVisionModel pooled output, CoCo-CroLa's)"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=clip_pixels(images, self.size, self.device)).pooler_output.float().cpu()


def measure_concepts(draw_images: Callable[[Sequence[str], str, Sequence[int]], torch.Tensor],
                     prompts: Sequence[ConceptPrompt], languages: Sequence[str],
                     embed: Callable[[torch.Tensor], torch.Tensor], source: str | None = "en",
                     draw_source: Callable[[Sequence[str], str, Sequence[int]], torch.Tensor] | None = None
                     ) -> dict[str, dict[str, float]]:
    """Draw every concept prompt in `languages` and in `source` (`draw_images(texts, lang, indices)`; the
    source's through `draw_source` when given, e.g. the English pipeline for a system that reads no
    English), embed the images and score them (`concept_scores`); the scores of `languages` only. Without a
    source there is no correctness."""
    wanted = list(dict.fromkeys(list(languages) + ([source] if source else [])))
    features: dict[str, dict[str, torch.Tensor]] = {}
    for lang in wanted:
        mine = [p for p in prompts if lang in p.captions]
        if not mine:
            continue
        drawer = draw_source if lang == source and lang not in languages and draw_source is not None else draw_images
        images = drawer([p.captions[lang] for p in mine], lang, [p.index for p in mine])
        embedded = embed(images)
        by_concept: dict[str, list[torch.Tensor]] = {}
        for prompt, row in zip(mine, embedded):
            by_concept.setdefault(prompt.concept, []).append(row)
        features[lang] = {concept: torch.stack(rows) for concept, rows in by_concept.items()}
    scores = concept_scores(features, source or "")
    return {lang: scores[lang] for lang in languages if lang in scores}
