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

from dataclasses import dataclass
from typing import Sequence

import torch

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

    def recall(ranks: torch.Tensor) -> dict[int, float]:
        return {k: 100.0 * float((ranks < k).float().mean()) for k in ks}

    return RetrievalScores(recall(t2i_ranks), recall(i2t_ranks))
