"""Frechet distance between image sets with an explicit feature extractor (DESIGN.md section 6).

FID numbers from different feature extractors do not compare, so the extractor is part of the metric's
name: `fid_scorer256` (the world scorer's penultimate features, toy preset: a world metric, never
comparable with published FID) and `fid_inception2048` (the standard Inception-v3 pool features, on the
real presets, where its weights are on this machine). torchmetrics computes the distance from running
feature sums in float64 (its `FrechetInceptionDistance` with a custom feature module).

Conventions, recorded with every number:
- world reference set: the clean renders of the very prompts that were generated (the scenes the
  prompts ask for), at the world's image size, exact uint8 pixels; the list is fixed by the world's
  seed and published as `assets/fid_reference_toy.csv` (prompt index, scene key, caption, pixel hash),
  which a test regenerates and compares.
- Inception: images resized to 299x299 with clean-fid's "clean" resize (PIL bicubic on each float32
  channel, no uint8 rounding before the resize), fed as float in [0, 1] (`normalize=True`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from ..errors import MissingWeightsError

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS
REFERENCE_LIST = Path(__file__).resolve().parent.parent / "assets" / "fid_reference_toy.csv"


class ScorerFeatures(nn.Module):
    """The world scorer's 256-d penultimate features as a torchmetrics feature extractor."""

    num_features = 256

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        # torchmetrics keeps its running sums on the CPU: return the features there, whatever the scorer's device.
        return self.scorer.features(images.to(next(self.scorer.parameters()).device)).double().cpu()


def frechet_distance(feature: nn.Module, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 256) -> float:
    """Frechet distance between the feature distributions of `real` and `fake` images (float in [0, 1] or uint8)."""
    metric = FrechetInceptionDistance(feature=feature, normalize=True, reset_real_features=True)
    for images, is_real in ((real, True), (fake, False)):
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            # normalize=True means float in [0, 1]: 8-bit images must be scaled, not just cast.
            batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
            metric.update(batch.cpu(), real=is_real)
    return float(metric.compute())


def clean_resize(images: torch.Tensor, size: int = 299) -> torch.Tensor:
    """clean-fid's "clean" resize: PIL bicubic on each channel as float32 (images in [0, 1]) -> [0, 1]."""
    from PIL import Image

    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    array = (images.float().clamp(0, 1) * 255.0).cpu().numpy()
    for i, image in enumerate(array):
        for c in range(3):
            channel = Image.fromarray(image[c], mode="F").resize((size, size), Image.Resampling.BICUBIC)
            out[i, c] = np.asarray(channel)
    return torch.from_numpy(out).clamp_(0, 255).div_(255.0)


def inception_weights_path() -> Path:
    """The FID Inception-v3 weights file (torch-fidelity's), from XLCORE_INCEPTION_WEIGHTS or the torch hub
    cache; never downloaded here."""
    candidates = [os.environ.get("XLCORE_INCEPTION_WEIGHTS", ""),
                  str(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise MissingWeightsError("FID Inception-v3", INCEPTION_WEIGHTS, hint=(
        f"download {INCEPTION_URL} once on a machine with internet access and put it in "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'} or point XLCORE_INCEPTION_WEIGHTS at it "
        "(world FID with the scorer's features needs no download)"))


class CleanInception(nn.Module):
    """Inception-v3 pool features (2048-d) after the clean resize, as a torchmetrics feature extractor."""

    num_features = 2048

    def __init__(self, weights: Path | None = None):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.inception = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                            feature_extractor_weights_path=str(weights or inception_weights_path()))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        resized = clean_resize(images)
        return self.inception((resized * 255).round().to(torch.uint8)).double().cpu()


def pixel_hash(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


def reference_rows(world, prompts: Sequence) -> list[dict[str, str]]:
    """The published reference list: prompt index, scene key, English caption and the render's pixel hash."""
    return [{"index": str(p.index), "scene": str(p.scene.key()), "caption_en": p.captions["en"],
             "pixels_sha256_16": pixel_hash(world.render(p))} for p in prompts]
