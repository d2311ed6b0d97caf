"""Image-text retrieval: recall@k in both directions and mean recall (DESIGN.md section 6).

- text->image: one query per caption; a hit if its image is among the top k images.
- image->text: one query per image; a hit if any of its captions is among the top k captions.
- mean recall: the average of R@1, R@5, R@10 in both directions (six numbers), 0-100, as mCLIP reports.

Ties are counted against the query (pessimistic): a candidate that scores exactly as high as the best
positive ranks ahead of it. So a model that scores everything equally gets zero recall instead of an
index-order accident, and results do not depend on the order of the gallery.

Similarities are computed in chunks of queries, so 36 languages x 3,600 images x several captions fit
in memory on a laptop: memory is O(chunk x gallery), never O(texts x images) at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import ALL_CAPTIONS, FIRST_CAPTION, PROTOCOLS, RetrievalBenchmark
from .common import Measurement

log = logging.getLogger(__name__)

KS = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalScores:
    """Recall@k (0-100) per direction, and their mean."""

    text_to_image: dict[int, float]
    image_to_text: dict[int, float]

    @property
    def mean_recall(self) -> float:
        values = list(self.text_to_image.values()) + list(self.image_to_text.values())
        return sum(values) / len(values)

    def as_metrics(self) -> dict[str, float]:
        metrics = {f"t2i_r@{k}": v for k, v in self.text_to_image.items()}
        metrics.update({f"i2t_r@{k}": v for k, v in self.image_to_text.items()})
        metrics["mean_recall"] = self.mean_recall
        return metrics


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


@torch.no_grad()
def retrieval_scores(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_to_image: Sequence[int] | torch.Tensor,
    ks: Sequence[int] = KS,
    chunk_size: int = 1024,
) -> RetrievalScores:
    """Recall@k for cosine similarity between `image_embeds` (I, D) and `text_embeds` (T, D).

    `text_to_image[t]` is the index of caption t's image; an image may have any number of captions
    (every image needs at least one).
    """
    if not (torch.isfinite(image_embeds).all() and torch.isfinite(text_embeds).all()):
        # NaN compares false with everything, which would count every query as a hit.
        raise ValueError("embeddings contain NaN or inf; recall is undefined (did training diverge?)")
    images, texts = _normalise(image_embeds), _normalise(text_embeds)
    owner = torch.as_tensor(text_to_image, dtype=torch.long)
    if owner.shape != (len(texts),):
        raise ValueError(f"text_to_image has {owner.numel()} entries for {len(texts)} captions")
    if len(owner) and (owner.min() < 0 or owner.max() >= len(images)):
        raise ValueError("text_to_image points outside the image gallery")
    captions_per_image = torch.bincount(owner, minlength=len(images))
    if (captions_per_image == 0).any():
        raise ValueError(f"{int((captions_per_image == 0).sum())} images have no caption")

    t2i_ranks = torch.empty(len(texts), dtype=torch.long)
    for start in range(0, len(texts), chunk_size):
        sims = texts[start:start + chunk_size] @ images.T  # (chunk, I)
        positive = sims.gather(1, owner[start:start + chunk_size, None])
        # Pessimistic ties: every other image scoring >= the positive ranks ahead of it.
        t2i_ranks[start:start + chunk_size] = (sims >= positive).sum(1) - 1

    i2t_ranks = torch.empty(len(images), dtype=torch.long)
    for start in range(0, len(images), chunk_size):
        sims = images[start:start + chunk_size] @ texts.T  # (chunk, T)
        is_positive = owner[None, :] == torch.arange(start, start + len(sims))[:, None]
        best_positive = sims.masked_fill(~is_positive, float("-inf")).max(1, keepdim=True).values
        i2t_ranks[start:start + chunk_size] = ((sims >= best_positive) & ~is_positive).sum(1)

    def recall(ranks: torch.Tensor) -> dict[int, float]:  # integer hits divided in float64: 47 of 100 is 47.0
        return {k: 100.0 * int((ranks < k).sum()) / len(ranks) for k in ks}

    return RetrievalScores(recall(t2i_ranks), recall(i2t_ranks))


# --------------------------------------------------------------------------------------------------
# The entry point: a system's text and image embeddings on one or more benchmarks, as measurements.


@dataclass(frozen=True)
class RetrievalSet:
    """One language of one retrieval benchmark, ready to embed: captions per image and an image loader.

    `gallery` names the image collection; sets that share it (the languages of one benchmark) share
    their image embeddings, so 36 XM3600 languages embed the 3,600 images once.
    """

    name: str
    language: str
    protocol: str  # data.ALL_CAPTIONS or data.FIRST_CAPTION: which captions the set holds
    captions: tuple[tuple[str, ...], ...]
    gallery: str
    load_images: Callable[[Sequence[int]], torch.Tensor]  # image indices -> (B, 3, H, W) in [0, 1]
    preprocessing: str

    def first_caption_only(self) -> "RetrievalSet":
        return dataclasses.replace(self, captions=tuple(c[:1] for c in self.captions), protocol=FIRST_CAPTION)


def world_retrieval_set(world, lang: str, captions_per_image: int = 1) -> RetrievalSet:
    """The world's retrieval test split in `lang`: its parallel caption, plus `captions_per_image - 1`
    paraphrases (other templates of the same grammar), for the all-captions protocol."""
    from ..world import get_grammar, image_to_tensor

    world.check_language(lang)
    test = world.retrieval_test()
    items = [test.item(i) for i in range(len(test))]
    n_templates = get_grammar(lang).n_templates
    if not 1 <= captions_per_image <= n_templates:
        raise ValueError(f"captions_per_image must be 1..{n_templates} (the grammars' paraphrase templates)")
    captions = []
    for item in items:
        group = [item.captions[lang]]
        for offset in range(1, captions_per_image):
            group.append(world.caption(item.scene, lang, item.relation, (item.template + offset) % n_templates))
        captions.append(tuple(group))
    return RetrievalSet(
        name="polyglot-shapes/retrieval-test", language=lang,
        protocol=ALL_CAPTIONS, captions=tuple(captions),
        gallery=f"polyglot-shapes/retrieval-test/seed{world.config.seed}/{world.config.image_size}px",
        load_images=lambda idx: torch.stack([image_to_tensor(world.render(items[i])) for i in idx]),
        preprocessing=f"world renders {world.config.image_size}px, bicubic resize to the image tower's input")


def benchmark_retrieval_set(benchmark: RetrievalBenchmark, image_size: int) -> RetrievalSet:
    """A loaded benchmark (`xlcore.data`) with CLIP's preprocessing: shorter side resized to `image_size`
    (bicubic, PIL), centre crop. Images are read lazily, a batch at a time; missing images fail up front."""
    paths = benchmark.image_paths()

    def load(indices: Sequence[int]) -> torch.Tensor:
        return torch.stack([clip_preprocess(paths[i], image_size) for i in indices])

    images_digest = hashlib.sha256("\n".join(benchmark.image_ids).encode()).hexdigest()[:12]
    return RetrievalSet(name=benchmark.name, language=benchmark.language, protocol=benchmark.protocol,
                        captions=benchmark.captions, gallery=f"{benchmark.image_dir}:{images_digest}",
                        load_images=load, preprocessing=f"PIL bicubic shorter side {image_size}, centre crop")


def clip_preprocess(path, size: int) -> torch.Tensor:
    """An image file -> (3, size, size) in [0, 1]: RGB, shorter side to `size` (bicubic), centre crop."""
    from PIL import Image

    from ..errors import DataFormatError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = size / min(image.size)
            resized = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                                   Image.Resampling.BICUBIC)
    except OSError as err:
        raise DataFormatError(path, f"not a readable image ({err})") from None
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    array = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def evaluate_retrieval(system, sets: Sequence[RetrievalSet], *, protocols: Sequence[str] = PROTOCOLS,
                       batch_size: int = 256, chunk_size: int = 1024, progress: bool = True) -> list[Measurement]:
    """Recall@1/5/10 both ways and mean recall of `system` (a method, or `EnglishBackbone`) on every set.

    Text queries use `system.encode(captions, lang).pooled`; a system without a joint image-text space
    (pooled is None) yields no measurements. Sets with one caption per image are reported once under
    the all-captions protocol (both protocols coincide there); sets with several captions under each of
    `protocols`. Image embeddings are computed once per gallery."""
    image_cache: dict[str, torch.Tensor] = {}
    out: list[Measurement] = []
    for rset in tqdm(sets, desc=f"retrieval ({getattr(system, 'name', 'system')})", unit="set", disable=not progress):
        texts, owners = _flat(rset.captions)
        text_embeds = []
        for start in range(0, len(texts), batch_size):
            pooled = system.encode(texts[start:start + batch_size], rset.language).pooled
            if pooled is None:
                log.info("%s has no joint image-text space; no retrieval", getattr(system, "name", system))
                return []
            text_embeds.append(pooled.float().cpu())
        text_embeds = torch.cat(text_embeds)
        if rset.gallery not in image_cache:
            embeds = []
            for start in range(0, len(rset.captions), batch_size):
                indices = range(start, min(start + batch_size, len(rset.captions)))
                embeds.append(system.encode_images(rset.load_images(indices)).float().cpu())
            image_cache[rset.gallery] = torch.cat(embeds)
        images = image_cache[rset.gallery]
        several = any(len(group) > 1 for group in rset.captions)
        # One caption per image: both protocols coincide; report under the set's own protocol name.
        for protocol in (protocols if several else (rset.protocol,)):
            if protocol == ALL_CAPTIONS:
                keep = torch.ones(len(texts), dtype=torch.bool)
            elif protocol == FIRST_CAPTION:
                keep = torch.tensor(_first_flags(rset.captions))
            else:
                raise ValueError(f"unknown retrieval protocol {protocol!r}; use {PROTOCOLS}")
            scores = retrieval_scores(images, text_embeds[keep], torch.tensor(owners)[keep], chunk_size=chunk_size)
            captions_used = "one caption per image" if not several else (
                "every caption of each image" if protocol == ALL_CAPTIONS else "first caption of each image")
            out.append(Measurement(
                rset.language, rset.name,
                f"{protocol} ({captions_used}); t2i one query per caption, i2t a hit if any caption of the image; "
                f"cosine of pooled embeddings; pessimistic ties; {len(rset.captions)} images; {rset.preprocessing}",
                scores.as_metrics()))
    return out


def _flat(captions: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
    return [c for group in captions for c in group], [i for i, group in enumerate(captions) for _ in group]


def _first_flags(captions: Sequence[Sequence[str]]) -> list[bool]:
    return [j == 0 for group in captions for j in range(len(group))]
