"""Full fine-tuning: the 100% reference for cost (DESIGN.md section 5).

The multilingual encoder (a trainable copy, with a linear to the UNet's cross-attention width) and a
copy of the whole UNet train together on multilingual image-text (English included) with the plain
denoising loss and 10% caption dropout (so its own empty prompt is the unconditional input).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..cache import ConcatDataset
from ..config import option
from ..registry import METHODS
from ..train import TrainConfig
from ._base import Conditioning, SingleStageMethod, StageData
from .iap import ProjectedEncoder


@dataclass(frozen=True)
class FullFinetuneConfig:
    """Full fine-tuning: data per language, caption dropout and budget."""

    items_per_language: int = option(2000, "Image-text items per language, English included.", smoke=16)
    caption_dropout: float = option(0.1, "Share of captions replaced by the empty prompt.")
    train: TrainConfig = option(
        lambda: TrainConfig(steps=300, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=0.01,
                            schedule="cosine", warmup_steps=30, mixed_precision="bf16"),
        "Joint training of encoder and UNet (toy budget: 300 steps of 32).")


@METHODS.register("full_finetune")
class FullFinetune(SingleStageMethod):
    config_class = FullFinetuneConfig
    stage_name = "joint"
    uses_unet_gradients = True

    def build(self) -> None:
        self.text_encoder = ProjectedEncoder(self.trainable_copy(self.backbone.multilingual),
                                             self.backbone.unet.config.cross_attention_dim)
        self.unet_copy = self.trainable_copy(self.backbone.unet)

    @property
    def unet(self) -> nn.Module:
        return self.unet_copy

    def modules(self) -> dict[str, nn.Module]:
        return {"text_encoder": self.text_encoder, "unet": self.unet_copy}


    def stage_data(self, stage: str, world) -> StageData:
        n = self.config.items_per_language
        data = ConcatDataset([world.english_image_text(n)] + [world.language_image_text(lang, n)
                                                             for lang in world.target_languages])
        return StageData(data, {"x0": "diffusion_input", "text": "multilingual_tokens:caption"})

    def loss(self, batch, stage):
        ids, mask = self.drop_captions(batch["text.ids"], batch["text.mask"], self.config.caption_dropout)
        loss, _, _ = self.denoise(self.unet_copy, batch["x0"], self.text_encoder(ids, mask))
        return {"loss": loss}

    def _encode(self, texts, lang):
        tokens = self.backbone.tokenize_multilingual(texts)
        return Conditioning(self.text_encoder(tokens["input_ids"], tokens["attention_mask"]).to(self.backbone.dtype), None)

