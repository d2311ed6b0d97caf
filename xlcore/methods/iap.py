"""Images as Pivots (IAP; arXiv 2305.11540; no public code).

Per target language, a new text encoder (here: a trainable copy of the multilingual encoder plus a linear
to the UNet's cross-attention width) is trained while the UNet and the image side stay frozen. The
objective is the distance between the "attentive features" that cross-attention produces between an
image and each language: the frozen UNet runs on the noisy image with the English caption's states,
every cross-attention layer's input hidden states (the image-derived queries) and output are recorded,
and the student's states must give the same outputs from the same queries (MSE, averaged over layers).
Only the cross-attention layers are re-run for the student, so no gradient flows through the UNet.

Reconstructed from the abstract (the method section's details are not public as code): the queries
are taken at a uniformly drawn diffusion timestep, every cross-attention layer is matched, and the
distance is MSE. Training data are image-target-English triplets (the target language's image-text
items with the English caption of the same scene); items whose concept English cannot name are skipped.
The paper claims 5-10% of competitors' data, hence the small default `train_items`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backbone.diffusion import noisy_sample
from ..config import option
from ..registry import METHODS
from ..train import TrainConfig
from ._base import (Conditioning, PaperCount, SingleStageMethod, StageData, capture_cross_attention, parameter_count,
                    sd15_system)


@dataclass(frozen=True)
class IAPConfig:
    """IAP: the per-language student encoder's budget."""

    caption_dropout: float = option(0.1, "Share of pairs replaced by the empty prompt on both sides (so the "
                                         "student learns the unconditional input used for guidance).")
    train_items: int = option(1000, "Target-language image-text triplets (the paper's point: little data); 0: all the corpus has (sd15).", smoke=32)
    train: TrainConfig = option(
        lambda: TrainConfig(steps=300, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=0.01,
                            schedule="cosine", warmup_steps=20),
        "Student encoder training (toy budget: 300 steps of 32).")


class ProjectedEncoder(nn.Module):
    """A text encoder whose token states are mapped to the UNet's cross-attention width."""

    def __init__(self, encoder: nn.Module, out_width: int):
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(encoder.config.hidden_size, out_width)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)


# The published training budget of each stage, with its source (the cost extrapolation reads it; most
# papers publish no step count, and then nothing is extrapolated).
PUBLISHED_BUDGETS = {
    "pivot": {
        "samples": None,
        "steps": None,
        "global_batch": None,
        "gpus": None,
        "reported_gpu_hours": None,
        "source": ("arXiv 2305.11540 abstract (ar5iv / arXiv listing); no official code repository found "
                   "in the index"),
        "note": ("Not published in any source reachable here. Known from the abstract: only a separate "
                 "Chinese text encoder is trained (UNet, VAE and English CLIP frozen), and the method "
                 "'outperforms several strong Chinese diffusion models with only 5%~10% training data'. "
                 "Data size, steps, batch, GPUs and hours are in the paper's experimental-setup section, "
                 "which could not be read here. The write-up's '~500-1,000 GPU-h, 100M params' is "
                 "unconfirmed."),
    },
}


@METHODS.register("iap")
class IAP(SingleStageMethod):
    title = "Image as Pivot (Hu et al., 2023, arXiv 2305.11540)"
    summary = "Image-as-Pivot: one cross-attention alignment per language"
    prose = ("A new text encoder for one target language is trained while the UNet and the image side stay "
             "frozen. For an image with an English and a target caption, the UNet's cross-attention "
             "outputs, queried by the image's own latents, should be the same under either caption: MSE "
             "between them. No public code; the study reconstructs it from the paper (labelled). One run "
             "per target language.")
    diagram = ("image -> noisy latent -> UNet queries (frozen)\n"
               "   English caption -> CLIP text (frozen) -> attn2 outputs --MSE-- attn2 outputs <- new encoder(target caption)")
    order = 8
    published_budgets = PUBLISHED_BUDGETS
    config_class = IAPConfig
    stage_name = "pivot"
    per_language = True
    label = "reconstructed from the abstract: all attn2 layers, MSE, random timestep"

    @classmethod
    def paper_counts(cls, sd15):
        return [PaperCount("iap", parameter_count(ProjectedEncoder(sd15["multilingual"], 768)), sd15_system(sd15), None,
                           "no public code; the original write-up's 100M is unsupported")]

    def build(self) -> None:
        self.student = ProjectedEncoder(self.trainable_copy(self.backbone.multilingual),
                                        self.backbone.unet.config.cross_attention_dim)

    def modules(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    def stage_data(self, stage: str, corpus) -> StageData:
        return StageData(corpus.pivot_image_text(self.language, self.config.train_items),
                         {"x0": "diffusion_input", "text": "multilingual_tokens:caption", "en": "clip_text:caption_en",
                          "has_english": "flag:has_english"})

    def loss(self, batch, stage):
        empty = self.empty_prompt_states()
        ids, mask, drop = self.drop_captions(batch["text.ids"], batch["text.mask"], self.config.caption_dropout,
                                             return_dropped=True)
        english = torch.where(drop[:, None, None], empty["english"], batch["en.states"])
        keep = batch["has_english"].bool() | drop
        if not keep.any():  # only culture items, none dropped: no English pivot to learn from in this batch
            zero = sum(p.sum() for p in self.student.parameters()) * 0.0  # keeps the step's graph and optimizer
            return {"loss": zero, "items_with_english": keep.float().mean()}
        context = self.student(ids[keep], mask[keep])
        sample = noisy_sample(self.backbone.noise_scheduler, batch["x0"][keep])
        with torch.no_grad(), capture_cross_attention(self.backbone.unet) as records:
            self.backbone.unet(sample.noisy, sample.timesteps, encoder_hidden_states=english[keep])
        losses = [nn.functional.mse_loss(module(queries, encoder_hidden_states=context).float(), target.float())
                  for module, queries, target in records]
        return {"loss": torch.stack(losses).mean(), "items_with_english": keep.float().mean()}

    def _encode(self, texts, lang):
        tokens = self.backbone.tokenize_multilingual(texts)
        return Conditioning(self.student(tokens["input_ids"], tokens["attention_mask"]).to(self.backbone.dtype), None)
