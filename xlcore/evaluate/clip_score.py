"""CLIP score with a named model and a named convention (DESIGN.md section 6).

Conventions (they do not compare with each other; the name travels with every number):
- `raw_cos`: the mean cosine similarity, 0-1 scale: AltDiffusion's report (open_clip ViT-B-32-quickgelu,
  laion400m_e32, against the English caption), and the write-up's "0.31";
- `torchmetrics`: torchmetrics' `CLIPScore` over the whole set, max(100 * mean cosine, 0), computed by
  torchmetrics itself through a small adapter that hands it this module's encoders (so the conventions
  share the embeddings and differ only in the formula);
- `heim`: HELM's HEIM English CLIP score. HELM's `CLIPScorer` (helm/benchmark/metrics/image_generation/
  clip_scorers/clip_scorer.py) calls torchmetrics' CLIPScore on one image at a time, so every image's
  score is floored at 0 before the mean: mean(max(100 * cosine, 0));
- `100cos`: 100 * mean cosine, no floor (HELM's multilingual scorer's formula); equal to `heim` when no
  cosine is negative.

Models, all offline:
- `ToyClipScorer`: the toy backbone's frozen English CLIP (a world model: it knows the world's English
  words, not its culture concepts);
- `OpenClipScorer`: an open_clip model from a local checkpoint file or the Hugging Face cache; a missing
  checkpoint raises `MissingWeightsError` naming what to download. ViT-B-32-quickgelu/laion400m_e32 is
  AltDiffusion's choice and the default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..backbone.base import Backbone, clip_pixels
from ..errors import MissingWeightsError

log = logging.getLogger(__name__)

CONVENTIONS = ("raw_cos", "torchmetrics", "heim", "100cos")
ALTDIFFUSION_MODEL = ("ViT-B-32-quickgelu", "laion400m_e32")


class ClipScorer:
    """Image and text embeddings of one named CLIP model; subclasses supply the encoders."""

    name: str = ""

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def cosines(self, images: torch.Tensor, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Cosine similarity of each image with its caption, (N,)."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} captions")
        out = []
        for start in range(0, len(images), batch_size):
            a = nn.functional.normalize(self.encode_images(images[start:start + batch_size]).float(), dim=-1)
            b = nn.functional.normalize(self.encode_texts(list(texts[start:start + batch_size])).float(), dim=-1)
            out.append((a * b).sum(-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def image_cosines(self, a: torch.Tensor, b: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Cosine similarity between the embeddings of paired images, (N,) (cross-lingual consistency)."""
        out = []
        for start in range(0, len(a), batch_size):
            x = nn.functional.normalize(self.encode_images(a[start:start + batch_size]).float(), dim=-1)
            y = nn.functional.normalize(self.encode_images(b[start:start + batch_size]).float(), dim=-1)
            out.append((x * y).sum(-1).cpu())
        return torch.cat(out)

    def scores(self, images: torch.Tensor, texts: Sequence[str]) -> dict[str, float]:
        """The mean CLIP score of (image, caption) pairs under every convention."""
        cos = self.cosines(images, texts).double()
        return {"raw_cos": float(cos.mean()), "heim": float((100 * cos).clamp(min=0).mean()),
                "100cos": float(100 * cos.mean()), "torchmetrics": torchmetrics_clip_score(self, images, texts)}


class ToyClipScorer(ClipScorer):
    """The toy backbone's English CLIP (the same towers `Backbone.encode_images/encode_english` use)."""

    def __init__(self, backbone: Backbone):
        self.backbone = backbone
        self.name = f"toy-clip-{backbone.fingerprint(('clip',))[:8]}"

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_images(images)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.backbone.encode_english(list(texts))[1]


class OpenClipScorer(ClipScorer):
    """An open_clip model loaded from a local checkpoint (a file path, or a pretrained tag whose file is
    already in the Hugging Face cache); nothing is downloaded."""

    def __init__(self, model: str = ALTDIFFUSION_MODEL[0], pretrained: str = ALTDIFFUSION_MODEL[1],
                 device: torch.device | str = "cpu"):
        import open_clip

        checkpoint = pretrained if Path(pretrained).is_file() else None
        try:
            if checkpoint is None:
                # open_clip resolves a tag to a Hugging Face repo; offline, a missing file fails to download.
                self.model = open_clip.create_model(model, pretrained=pretrained, device=device, require_pretrained=True)
            else:
                self.model = open_clip.create_model(model, pretrained=checkpoint, device=device, require_pretrained=True)
        except (RuntimeError, OSError, ValueError) as err:
            raise MissingWeightsError(f"CLIP score model {model}", pretrained, hint=(
                f"open_clip could not load it offline ({type(err).__name__}); download it once with "
                f"`python -c \"import open_clip; open_clip.create_model('{model}', pretrained='{pretrained}')\"` "
                "on a machine with internet access and copy the Hugging Face cache here, or pass the checkpoint "
                "file's path as pretrained=")) from None
        self.model.eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model)
        self.image_size = self.model.visual.image_size
        self.image_size = self.image_size[0] if isinstance(self.image_size, (tuple, list)) else self.image_size
        self.device = torch.device(device)
        self.name = f"open_clip:{model}/{Path(pretrained).name}"

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(clip_pixels(images, self.image_size, self.device))  # open_clip's transform

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))


class _TorchmetricsModel(nn.Module):
    """What torchmetrics' CLIPScore calls: `get_image_features(pixel_values)` and
    `get_text_features(input_ids, attention_mask)`; texts travel as row indices into a list."""

    def __init__(self, scorer: ClipScorer, texts: list[str]):
        super().__init__()
        self.scorer, self.texts = scorer, texts
        self.config = None  # torchmetrics reads config.text_config for a length check that does not apply

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.scorer.encode_images(pixel_values).float().cpu()

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.scorer.encode_texts([self.texts[int(i)] for i in input_ids[:, 0]]).float().cpu()


class _TorchmetricsProcessor:
    def __init__(self, texts: list[str]):
        self.texts = texts

    def __call__(self, text=None, images=None, return_tensors="pt", padding=True):
        if images is not None:
            return {"pixel_values": torch.stack([image.float() for image in images])}
        ids = torch.tensor([[self.texts.index(t)] for t in text])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def torchmetrics_clip_score(scorer: ClipScorer, images: torch.Tensor, texts: Sequence[str]) -> float:
    """torchmetrics' CLIPScore (max(100 * mean cosine, 0)) of images in [0, 1] against their captions."""
    from torchmetrics.multimodal.clip_score import CLIPScore

    unique = list(dict.fromkeys(texts))
    metric = CLIPScore(model_name_or_path=lambda: (_TorchmetricsModel(scorer, unique), _TorchmetricsProcessor(unique)))
    for start in range(0, len(images), 256):
        metric.update(list(images[start:start + 256].float().cpu()), list(texts[start:start + 256]))
    return float(metric.compute())
