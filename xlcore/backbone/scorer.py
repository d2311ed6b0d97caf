"""The world's attribute scorer: the analogue of GenEval's detector (DESIGN.md section 4).

A small CNN with one classification head per attribute of `Scene.labels()` (layout, shape and colour
of each object slot, size of a single object). An image counts as correct for a prompt only if every
attribute the prompt asks for is predicted right. Its penultimate features (256-d) serve the world
Frechet distance, which is a world metric, not comparable with published FID.
"""

from __future__ import annotations

import torch
from torch import nn

from ..world.scene import LABEL_CLASSES

FEATURE_DIM = 256


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class AttributeScorer(nn.Module):
    """Images in [0, 1] (B, 3, H, W) -> logits per attribute head, and 256-d features."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.trunk = nn.Sequential(
            _block(3, width), nn.MaxPool2d(2),
            _block(width, 2 * width), nn.MaxPool2d(2),
            _block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(4 * width * 16, FEATURE_DIM), nn.ReLU(inplace=True),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(FEATURE_DIM, len(classes)) for name, classes in LABEL_CLASSES.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 256); images are resized to 32 px first so every preset compares."""
        if images.shape[-1] != 32:
            images = nn.functional.interpolate(images, size=(32, 32), mode="area")
        return self.trunk(images * 2.0 - 1.0)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(images)
        return {name: head(feats) for name, head in self.heads.items()}

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sum of per-head cross-entropies; label -1 (attribute not applicable) is ignored."""
        logits = self(images)
        total = images.new_zeros(())
        for column, name in enumerate(LABEL_CLASSES):
            target = labels[:, column]
            if (target >= 0).any():
                total = total + nn.functional.cross_entropy(logits[name], target, ignore_index=-1)
        return total

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class per head (B, n_heads), in the column order of LABEL_CLASSES (on the CPU, whatever
        device the scorer is on)."""
        logits = self(images.to(next(self.parameters()).device))
        return torch.stack([logits[name].argmax(-1) for name in LABEL_CLASSES], dim=1).cpu()
