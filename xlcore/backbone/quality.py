"""The toy backbone's quality bar, measured (issue: "well above chance" is a number, not a hope).

- the scorer's accuracy per attribute on rendered test images it never trained on (the retrieval test
  renders and every language's culture prompts);
- English retrieval (recall@1/5/10 both ways, mean recall) of the CLIP on the world's test split;
- English generation judged by the scorer: single-object shape+colour and all attributes, two-object
  prompts GenEval style, at several guidance scales (DESIGN.md 8.1: under-trained models can be
  destroyed by guidance, so every scale is reported).
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..evaluate.compositional import judge, summarise
from ..evaluate.retrieval import RetrievalScores, retrieval_scores
from ..world import World, WorldItem, image_to_tensor
from ..world.scene import LABEL_CLASSES
from .base import Backbone
from .pipeline import run_pipeline, text_to_image_pipeline

log = logging.getLogger(__name__)


def _batches(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def scorer_accuracy(backbone: Backbone, world: World, noise_std: float = 0.05, seed: int = 0) -> dict[str, float]:
    """Accuracy (0-100) per scorer head and with every head right, on clean renders and, since generated
    images carry sampling noise, on the same renders with Gaussian noise of std `noise_std`."""
    items: list[WorldItem] = list(world.retrieval_test()._items)
    for lang in world.target_languages:
        items += list(world.culture_prompts(lang))
    generator = torch.Generator().manual_seed(seed)
    metrics = {}
    for suffix, std in (("", 0.0), (f"_noise{noise_std:g}", noise_std)):
        correct = {name: [] for name in LABEL_CLASSES}
        exact = []
        for chunk in _batches(items, 256):
            images = torch.stack([image_to_tensor(world.render(x)) for x in chunk])
            if std:
                images = (images + std * torch.randn(images.shape, generator=generator)).clamp(0, 1)
            predicted = backbone.scorer.predict(images)
            labels = torch.tensor([list(x.scene.labels().values()) for x in chunk])
            applies = labels >= 0
            hits = (predicted == labels) | ~applies
            exact += hits.all(1).tolist()
            for column, name in enumerate(LABEL_CLASSES):
                correct[name] += hits[applies[:, column], column].tolist()
        metrics.update({f"scorer_{name}_acc{suffix}": 100.0 * sum(v) / len(v) for name, v in correct.items() if v})
        metrics[f"scorer_all_heads_acc{suffix}"] = 100.0 * sum(exact) / len(exact)
    return metrics


@torch.no_grad()
def english_retrieval(backbone: Backbone, world: World, batch_size: int = 256) -> RetrievalScores:
    test = world.retrieval_test()
    items = list(test._items)
    image_embeds, text_embeds = [], []
    for chunk in _batches(items, batch_size):
        images = torch.stack([image_to_tensor(world.render(x)) for x in chunk])
        image_embeds.append(backbone.encode_images(images))
        text_embeds.append(backbone.encode_english([x.captions["en"] for x in chunk])[1])
    return retrieval_scores(torch.cat(image_embeds), torch.cat(text_embeds), list(range(len(items))))


@torch.no_grad()
def generate(backbone: Backbone, token_states: torch.Tensor, seeds: Sequence[int], guidance_scale: float,
             steps: int = 25, batch_size: int = 100, *, unet=None, negative: torch.Tensor | None = None) -> torch.Tensor:
    """Images in [0, 1] for each row of token states; image i uses its own generator seeded seeds[i].

    `unet` defaults to the backbone's; `negative` (1, L, D) to the empty English prompt's states."""
    pipe = text_to_image_pipeline(backbone, unet)
    empty = negative if negative is not None else backbone.encode_english([""])[0]
    out = []
    for start in range(0, len(token_states), batch_size):
        states = token_states[start:start + batch_size]
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds[start:start + batch_size]]
        out.append(run_pipeline(pipe, backbone.image_size, states, empty.expand(len(states), -1, -1),
                                guidance_scale, steps, generators).float().cpu())
    return torch.cat(out)


def english_generation(backbone: Backbone, world: World, guidance_scales: Sequence[float] = (1.0, 2.0, 4.0),
                       n_prompts: int | None = None, steps: int = 25, seed: int = 0) -> dict[float, dict[str, float]]:
    """Scorer-judged accuracy of English generations, per guidance scale, split by single/pair prompts."""
    prompts = list(world.generation_prompts())[:n_prompts]
    states, _ = backbone.encode_english([p.captions["en"] for p in prompts])
    seeds = [seed * 100_003 + i for i in range(len(prompts))]
    results = {}
    for scale in tqdm(guidance_scales, desc="English generation", unit="scale"):
        images = generate(backbone, states, seeds, scale, steps)
        judged = judge(backbone.scorer.predict(images), [p.scene for p in prompts])
        single = [i for i, p in enumerate(prompts) if not p.scene.is_pair]
        pair = [i for i, p in enumerate(prompts) if p.scene.is_pair]
        metrics = {f"single_{k}": v for k, v in summarise({k: v[single] for k, v in judged.items()}).items()}
        metrics.update({f"pair_{k}": v for k, v in summarise({k: v[pair] for k, v in judged.items()}).items()})
        results[scale] = metrics
        log.info("guidance %.1f: %s", scale, {k: round(v, 1) for k, v in metrics.items()})
    return results
