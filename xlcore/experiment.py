"""Train a method through all its stages, and measure whether it transferred (the methods issue's check).

`train_method` runs every stage of a method with the one `Trainer` (each stage checkpoints into
`<run_dir>/<stage>/` and resumes from there), then saves the trained method (`<run_dir>/method/`) and
returns per-stage costs measured on this machine. `transfer_check` measures, per target language,
retrieval (for methods with a joint image-text space) and scorer-judged generation on the world's
parallel prompts; the full protocols (FID, CLIP score, consistency, culture) are the evaluation layer's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .backbone import quality
from .cache import FeatureCache
from .evaluate.compositional import judge, summarise
from .evaluate.retrieval import retrieval_scores
from .methods._base import Method
from .train import Trainer, TrainConfig
from .world import World, image_to_tensor

log = logging.getLogger(__name__)


@dataclass
class StageCost:
    stage: str
    steps: int  # optimizer steps of the stage
    seconds: float  # training wall time of the stage, summed over every session that trained it
    trainable_parameters: int
    feature_cache: bool


def train_method(method: Method, world: World, run_dir: str | Path, *, cache: FeatureCache | None = None,
                 train_configs: dict[str, TrainConfig] | None = None) -> list[StageCost]:
    """Train every stage of `method` in order (resuming finished or interrupted stages), then save it."""
    run_dir = Path(run_dir)
    costs = []
    for stage in method.stages:
        config = (train_configs or {}).get(stage) or method.train_config(stage)
        task = method.task(stage, world, cache)
        trainer = Trainer(task, config, run_dir / stage)
        trainer.fit()
        costs.append(StageCost(stage, trainer.step, trainer.train_seconds,
                               sum(p.numel() for p in method.trainable_parameters(stage).values()), cache is not None))
        if stage not in method.trained_stages:
            method.trained_stages.append(stage)
    method.freeze()
    method.save(run_dir / "method")
    return costs


@torch.no_grad()
def transfer_retrieval(method: Method, world: World, lang: str, batch_size: int = 250) -> dict[str, float] | None:
    """Recall@k both ways and mean recall on the world's retrieval test split in `lang` (None without a joint space)."""
    items = list(world.retrieval_test()._items)
    image_embeds, text_embeds = [], []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        encoded = method.encode([x.captions[lang] for x in chunk], lang)
        if encoded.pooled is None:
            return None
        text_embeds.append(encoded.pooled.float().cpu())
        images = torch.stack([image_to_tensor(world.render(x)) for x in chunk])
        image_embeds.append(method.encode_images(images).float().cpu())
    return retrieval_scores(torch.cat(image_embeds), torch.cat(text_embeds), list(range(len(items)))).as_metrics()


@torch.no_grad()
def transfer_generation(method: Method, world: World, lang: str, n_prompts: int, guidance_scale: float,
                        steps: int, seed: int = 0) -> dict[str, float]:
    """Scorer-judged accuracy of generations from the first `n_prompts` parallel prompts in `lang`."""
    prompts = list(world.generation_prompts())[:n_prompts]
    states = method.encode([p.captions[lang] for p in prompts], lang).token_states
    negative = method.negative_prompt_embeds(1, lang)
    images = quality.generate(method.backbone, states, [seed * 100_003 + i for i in range(len(prompts))],
                              guidance_scale, steps, unet=method.unet, negative=negative)
    judged = judge(method.backbone.scorer.predict(images), [p.scene for p in prompts])
    return summarise(judged)


def transfer_check(method: Method, world: World, languages: Sequence[str], n_prompts: int, guidance_scale: float,
                   steps: int, seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """{language: {"retrieval": metrics (if the method has a joint space), "generation": metrics}}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for lang in languages:
        out[lang] = {}
        retrieval = transfer_retrieval(method, world, lang)
        if retrieval is not None:
            out[lang]["retrieval"] = retrieval
        out[lang]["generation"] = transfer_generation(method, world, lang, n_prompts, guidance_scale, steps, seed)
    return out
