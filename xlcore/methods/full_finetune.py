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
from ._base import Conditioning, PaperCount, SingleStageMethod, StageData, parameter_count, sd15_system
from .iap import ProjectedEncoder


@dataclass(frozen=True)
class FullFinetuneConfig:
    """Full fine-tuning: data per language, caption dropout and budget."""

    items_per_language: int = option(2000, "Image-text items per language, English included; 0: all the corpus has (sd15).", smoke=16)
    caption_dropout: float = option(0.1, "Share of captions replaced by the empty prompt.")
    train: TrainConfig = option(
        lambda: TrainConfig(steps=300, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=0.01,
                            schedule="cosine", warmup_steps=30, mixed_precision="bf16"),
        "Joint training of encoder and UNet (toy budget: 300 steps of 32).")


# The published training budget of each stage, with its source (the cost extrapolation reads it; most
# papers publish no step count, and then nothing is extrapolated).
PUBLISHED_BUDGETS = {
    "joint": {
        "samples": 20000000,
        "steps": None,
        "global_batch": None,
        "gpus": "32x A100 (memory not stated)",
        "reported_gpu_hours": 3200,
        "source": ("IDEA-CCNL/Fengshenbang-LM fengshen/examples/stable_diffusion_chinese/README.md (= HF "
                   "card IDEA-CCNL/Taiyi-Stable-Diffusion-1B-Chinese-v0.1), 'Model Information'; for the "
                   "UNet-unfrozen run: fengshen/examples/stable_diffusion_chinese_EN/README.md "
                   "(Taiyi-Stable-Diffusion-1B-Chinese-EN-v0.1)"),
        "note": ("Confirmed: '32 x A100, about 100 hours' = 3,200 A100-h, 1 epoch over about 20M ('0.2亿') "
                 "Wukong+Zero pairs filtered at CLIP score > 0.2. CAVEAT: this run is NOT a full "
                 "fine-tune. Only the text encoder (Taiyi-CLIP-RoBERTa-102M init) was trained, with SD "
                 "v1-4 frozen. The only Taiyi run that unfreezes the UNet is Chinese-EN-v0.1: stage 1 "
                 "(text encoder only) 80 h and stage 2 (text encoder + UNet) 100 h, both on 8x A100, i.e. "
                 "640 + 800 = 1,440 A100-h, with no sample/step/batch counts. Steps and batch are not "
                 "published for either run; finetune.sh (micro-batch 1) is a user example. The write-up's "
                 "'~150,000 A100-h / $320,000' full fine-tune figure has no support in these sources."),
    },
}


@METHODS.register("full_finetune")
class FullFinetune(SingleStageMethod):
    title = "Full fine-tuning: the cost reference"
    summary = "full fine-tuning of the text encoder and the UNet"
    prose = ("The multilingual encoder (plus a projection) and the whole UNet train on multilingual "
             "image-text with the denoising loss. Copies of both train; the backbone is never changed. "
             "This is the 100% row of every cost table.")
    diagram = "caption (X) -> encoder copy (trained) -> UNet copy (trained) -> denoising loss"
    order = 11
    published_budgets = PUBLISHED_BUDGETS
    config_class = FullFinetuneConfig
    stage_name = "joint"
    uses_unet_gradients = True

    @classmethod
    def paper_counts(cls, sd15):
        trainable = parameter_count(ProjectedEncoder(sd15["multilingual"], 768)) + parameter_count(sd15["unet"])
        return [PaperCount("full_finetune", trainable, sd15_system(sd15), None,
                           "multilingual encoder + whole UNet: the 100% reference")]

    def build(self) -> None:
        self.text_encoder = ProjectedEncoder(self.trainable_copy(self.backbone.multilingual),
                                             self.backbone.unet.config.cross_attention_dim)
        self.unet_copy = self.trainable_copy(self.backbone.unet)

    @property
    def unet(self) -> nn.Module:
        return self.unet_copy

    def modules(self) -> dict[str, nn.Module]:
        return {"text_encoder": self.text_encoder, "unet": self.unet_copy}


    def stage_data(self, stage: str, corpus) -> StageData:
        n = self.config.items_per_language
        data = ConcatDataset([corpus.english_image_text(n)] + [corpus.language_image_text(lang, n)
                                                             for lang in corpus.target_languages])
        return StageData(data, {"x0": "diffusion_input", "text": "multilingual_tokens:caption"})

    def loss(self, batch, stage):
        ids, mask = self.drop_captions(batch["text.ids"], batch["text.mask"], self.config.caption_dropout)
        loss, _, _ = self.denoise(self.unet_copy, batch["x0"], self.text_encoder(ids, mask))
        return {"loss": loss}

    def _encode(self, texts, lang):
        tokens = self.backbone.tokenize_multilingual(texts)
        return Conditioning(self.text_encoder(tokens["input_ids"], tokens["attention_mask"]).to(self.backbone.dtype), None)

