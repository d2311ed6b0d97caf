"""MuLan language adapter (arXiv 2024 / ICML 2025; code mulanai/MuLan, `mulankit/models/adapter.py`).

Between the frozen multilingual encoder and the frozen UNet: an input projection (Linear, GELU, Linear),
120 learned queries and a `nn.Transformer` with one encoder and one decoder layer (pre-LN, 8 heads,
FFN 4x, no dropout; the encoder reads the projected text tokens, the decoder's queries attend to
them); the decoder's 120 output states condition the UNet. About 20.37M parameters for SD 1.5 with a
4096-wide encoder. Trained on English image-text only with the plain denoising loss through the frozen
UNet; other languages come from the encoder's own cross-lingual alignment (so on the toy backbone,
whose encoder saw no parallel text, that transfer is exactly what is being measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import option
from ..registry import METHODS
from ..train import TrainConfig
from ._base import (ENCODER_HELP, Conditioning, PaperCount, SingleStageMethod, StageData, parameter_count,
                    sd15_system, settings_label)


@dataclass(frozen=True)
class MuLanConfig:
    """MuLan: adapter shape and the English-only training budget."""

    queries: int = option(120, "Learned queries, i.e. the number of conditioning tokens (paper: 120).")
    heads: int = option(8, "Attention heads of the adapter's transformer (nn.Transformer default, upstream).")
    ffn_multiplier: int = option(4, "FFN width as a multiple of the UNet's cross-attention width (upstream: 3072 = 4 x 768).")
    # `added`: empty (the backbone's encoder) is what every recorded run read. MuLan's paper reads the text encoders of multilingual CLIP models (its 4096-wide row: InternVL's).
    multilingual_encoder: str = option("", ENCODER_HELP, added=True)
    caption_dropout: float = option(
        0.1, "Share of captions replaced by the empty prompt, so the adapter learns the unconditional input for "
             "guidance (Stable Diffusion's usual 10%; the MuLan paper does not state it).")
    train_items: int = option(10_000, "English image-text items (MuLan trains on English data only); 0: all the corpus has (sd15).", smoke=32)
    train: TrainConfig = option(
        lambda: TrainConfig(steps=400, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=0.01,
                            schedule="cosine", warmup_steps=30, mixed_precision="bf16"),
        "Adapter training (toy budget: 400 steps of 32; bf16 autocast where the device supports it).")


class LanguageAdapter(nn.Module):
    """Input projection, learned queries, one encoder and one decoder layer (pre-LN)."""

    def __init__(self, in_width: int, width: int, queries: int, heads: int, ffn: int):
        super().__init__()
        self.projection = nn.Sequential(nn.Linear(in_width, width), nn.GELU(), nn.Linear(width, width))
        self.queries = nn.Parameter(torch.randn(1, queries, width))
        self.transformer = nn.Transformer(d_model=width, nhead=heads, num_encoder_layers=1, num_decoder_layers=1,
                                          dim_feedforward=ffn, dropout=0.0, norm_first=True, batch_first=True)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padding = mask == 0
        source = self.projection(states)
        queries = self.queries.expand(len(states), -1, -1).to(source.dtype)
        return self.transformer(source, queries, src_key_padding_mask=padding, memory_key_padding_mask=padding)


# The published training budget of each stage, with its source (the cost extrapolation reads it; most
# papers publish no step count, and then nothing is extrapolated).
PUBLISHED_BUDGETS = {
    "adapter": {
        "samples": None,
        "steps": None,
        "global_batch": None,
        "gpus": None,
        "reported_gpu_hours": None,
        "source": ("mulanai/MuLan README.md (no training section); HF card mulanai/mulan-lang-adapter; "
                   "GitHub issue mulanai/MuLan#8 (2025-02-27: training pipeline not released); arXiv "
                   "2412.01271 abstract"),
        "note": ("Not published in any source reachable here. Known: adapter under 20M params, trained on "
                 "English-only data against a frozen text encoder (InternVL/CLIP) and a frozen denoiser, "
                 "with adapters for SD1.5/2.1, SDXL and PixArt. The repo has inference code only. The "
                 "paper (ICML 2025) describes its cost only qualitatively in the abstract ('negligible "
                 "cost'); its training-details section could not be read here. The write-up's '<768 GPU-h' "
                 "is unconfirmed."),
    },
}


@METHODS.register("mulan")
class MuLan(SingleStageMethod):
    title = "MuLan language adapter (Xing et al., 2024)"
    summary = "MuLan: a language adapter after a frozen multilingual encoder"
    prose = ("A small adapter between a frozen multilingual encoder and the frozen UNet: an input "
             "projection, 120 learned queries, one encoder and one decoder transformer layer. Trained on "
             "English image-text only with the ordinary denoising loss through the frozen UNet; other "
             "languages come for free from the encoder's cross-lingual alignment, which the study measures "
             "rather than assumes.")
    diagram = ("caption (en) -> multilingual encoder (frozen) -> adapter (trained) -> UNet (frozen) -> "
               "denoising loss")
    order = 9
    published_budgets = PUBLISHED_BUDGETS
    config_class = MuLanConfig
    stage_name = "adapter"
    uses_unet_gradients = True
    label = settings_label

    @classmethod
    def label_for(cls, config) -> str:
        encoder = [f"encoder {config.multilingual_encoder}"] if config.multilingual_encoder else []
        return "; ".join(["padding masked in the adapter's attention", "10% caption dropout assumed", *encoder])

    @classmethod
    def paper_counts(cls, sd15):
        adapter = LanguageAdapter(4096, 768, 120, 8, 3072)  # the paper's 4096-wide encoder row
        return [PaperCount("mulan", parameter_count(adapter), sd15_system(sd15), 20.37e6,
                           "MuLan paper, SD 1.5 with a 4096-wide encoder")]

    def build(self) -> None:
        c = self.config
        width = self.backbone.unet.config.cross_attention_dim
        self.adapter = LanguageAdapter(self.backbone.multilingual.config.hidden_size, width, c.queries, c.heads,
                                       c.ffn_multiplier * width)

    def modules(self) -> dict[str, nn.Module]:
        return {"adapter": self.adapter}

    def stage_data(self, stage: str, corpus) -> StageData:
        return StageData(corpus.english_image_text(self.config.train_items),
                         {"x0": "diffusion_input", "ml": "multilingual:caption"})

    def loss(self, batch, stage):
        empty = self.empty_prompt_states()
        states, drop = self.drop_states(self.config.caption_dropout, batch["ml.states"], empty["multilingual"])
        mask = torch.where(drop[:, None], empty["multilingual_mask"], batch["ml.mask"])
        context = self.adapter(states, mask)
        loss, _, _ = self.denoise(self.backbone.unet, batch["x0"], context)
        return {"loss": loss}

    def _encode(self, texts, lang):
        states, mask = self.backbone.encode_multilingual(texts)
        return Conditioning(self.adapter(states.float(), mask).to(self.backbone.dtype), None)
