"""PEA-Diffusion (ECCV 2024; code OPPO-Mente-Lab/PEA-Diffusion, `train_sd_zh.py`).

A plug-and-play adapter per target language between the frozen multilingual encoder and the frozen
UNet: LayerNorm, then a bias-free 3-layer MLP with GELU (SD 1.5: 1024 -> 2048 -> 2048 -> 768, 7.87M;
hidden width = 2 x input width). Loss, with the teacher = the frozen UNet on the English caption's
CLIP states (same noisy input and timestep):

    MSE(eps_student, target) + MSE(eps_student, eps_teacher) + 0.1 * sum over blocks MSE(f_student, f_teacher)

over the outputs of every down block, the mid block and every up block. 10% of captions are replaced by
the empty prompt on both sides (the student's empty target-language prompt, the teacher's empty English
one), so the adapter also learns the unconditional input used for guidance. Items with no English
caption (the world's culture concepts, which English cannot name) get only the denoising term: the
distillation terms need a teacher. Upstream's hybrid training goes further (`hybrid_masking='upstream'`):
native items get only the denoising term and translated items (those with an English caption) only the
distillation terms; the default, labelled, denoises every item.

Upstream optimiser: AdamW lr 1e-5, 100 warmup steps, polynomial decay; its weight decay of 0.1 is not
applied (the adapter's parameter group has no weight-decay key). The toy run trains ~100x fewer steps,
so it uses lr 3e-4 with cosine decay and weight decay 0 (labelled).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import option
from ..errors import ConfigError
from ..registry import METHODS
from ..train import TrainConfig
from ._base import (ENCODER_HELP, Conditioning, PaperCount, SingleStageMethod, StageData, capture_blocks,
                    parameter_count, sd15_system, settings_label)


@dataclass(frozen=True)
class PEAConfig:
    """PEA-Diffusion: adapter width, loss weights and the per-language budget."""

    hidden_multiplier: int = option(2, "MLP hidden width as a multiple of the encoder width (SD 1.5: 2048 = 2 x 1024).")
    output_kd_weight: float = option(1.0, "Weight of MSE(eps_student, eps_teacher).")
    feature_kd_weight: float = option(0.1, "Weight of the summed block-feature MSEs (paper: 0.1).")
    # `added`: empty (the backbone's encoder) is what every recorded run read. PEA's code (train_sd_zh.py, --text_encoder mul_clip) reads open_clip's xlm-roberta-large-ViT-H-14.
    multilingual_encoder: str = option("", ENCODER_HELP, added=True)
    caption_dropout: float = option(0.1, "Share of captions replaced by the empty prompt on both sides.")
    # `added`: the default is the rule every recorded PEA run trained with.
    hybrid_masking: str = option(
        "denoise_all", "Which items get which terms. 'denoise_all': the denoising term on every item, the "
        "distillation terms on items with an English caption (averaged over those). 'upstream': as "
        "train_sd_zh.py's --hybrid_training, the denoising term only on native items (no English caption: "
        "zh_or_not = 1) and the distillation terms only on translated ones, each masked per sample and "
        "averaged over the whole batch.", added=True)
    train_items: int = option(5000, "Target-language image-text items (with their English captions); 0: all the corpus has (sd15).", smoke=32)
    train: TrainConfig = option(
        lambda: TrainConfig(steps=300, batch_size=32, optimizer="adamw", lr=3e-4, weight_decay=0.0,
                            schedule="cosine", warmup_steps=20, mixed_precision="bf16"),
        "Adapter training. Upstream: AdamW lr 1e-5, 100 warmup, polynomial decay, effective weight decay 0; "
        "toy: lr 3e-4, cosine, 300 steps of 32.")


class PEAAdapter(nn.Module):
    """LayerNorm + bias-free Linear-GELU-Linear-GELU-Linear."""

    def __init__(self, in_width: int, hidden: int, out_width: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_width)
        self.mlp = nn.Sequential(nn.Linear(in_width, hidden, bias=False), nn.GELU(),
                                 nn.Linear(hidden, hidden, bias=False), nn.GELU(),
                                 nn.Linear(hidden, out_width, bias=False))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(states))


# The published training budget of each stage, with its source (the cost extrapolation reads it; most
# papers publish no step count, and then nothing is extrapolated).
PUBLISHED_BUDGETS = {
    "adapter": {
        "samples": None,
        "steps": None,
        "global_batch": 240,
        "gpus": "SDXL: 24 GPUs (NNODES=3 x 8 per node); SD1.5: 8 GPUs (1 node x 8); GPU type not stated",
        "reported_gpu_hours": None,
        "source": ("OPPO-Mente-Lab/PEA-Diffusion train_sdxl_zh.sh (NNODES=3, MICRO_BATCH_SIZE=10, lr 1e-5, "
                   "warmup 100, --max_epoch 10, fp16, DeepSpeed ZeRO-1) and train_sd_zh.sh (NNODES=1, "
                   "MICRO_BATCH_SIZE=40); README 'bash train_sdxl_zh.sh 0 8'"),
        "note": ("Global batch comes from the official scripts, not the paper: SDXL 3 x 8 x 10 = 240; "
                 "SD1.5 1 x 8 x 40 = 320 (assuming 8 GPUs per node as in the README call). Steps are not "
                 "set by the code: the webdataset is resampled (--resample_train) and has no epoch length, "
                 "so max_epoch 10 does not fix a step count, and no max_steps is given. The shard lists "
                 "mix LAION/COYO/Wukong/LAION-zh and translated parallel data. Data amount, steps and "
                 "hours would come from the ECCV'24 paper (arXiv 2311.17086), which could not be read "
                 "here. The write-up's '~100-200 GPU-h' is unconfirmed."),
    },
}


@METHODS.register("pea")
class PEA(SingleStageMethod):
    title = "PEA-Diffusion (Ma et al., ECCV 2024)"
    summary = "PEA-Diffusion: one small adapter per language, distilled from the English UNet"
    prose = ("A LayerNorm plus bias-free three-layer MLP maps the multilingual encoder's states to what "
             "the UNet reads; UNet frozen. Loss (PEA code): denoising on target-language samples + MSE to "
             "the teacher's noise prediction under the English caption + 0.1 x MSE between student and "
             "teacher UNet block features (all down, mid and up blocks). One run per target language.")
    diagram = ("caption (X) -> encoder (frozen) -> PEA adapter -> UNet (frozen) --KD-- UNet(English "
               "caption) teacher")
    order = 10
    published_budgets = PUBLISHED_BUDGETS
    config_class = PEAConfig
    stage_name = "adapter"
    per_language = True
    uses_unet_gradients = True
    label = settings_label

    @classmethod
    def label_for(cls, config) -> str:
        masking = ("upstream hybrid masking" if config.hybrid_masking == "upstream"
                   else "denoising on every item (upstream: native items only)")
        optimiser = [] if config.train.lr == 1e-5 else [f"optimiser lr {config.train.lr:g} {config.train.schedule} "
                                                         "(upstream 1e-5 linear)"]
        encoder = [f"encoder {config.multilingual_encoder}"] if config.multilingual_encoder else []
        return "; ".join([*optimiser, masking, *encoder])

    @classmethod
    def sd15_settings(cls) -> dict:
        # train_sd_zh.sh: --learning_rate 1e-5 --warmup_steps 100, MICRO_BATCH_SIZE 40 on 8 GPUs (320),
        # --precision 16, --hr_size 512; AdamW with a polynomial decay (power 1: linear), its weight decay
        # of 0.1 not reaching the adapter's parameter group. The step count is not set by the code (a
        # resampled webdataset, --max_epoch 10 without an epoch length): 100,000 is this study's choice.
        # utils/universal.py: --KD and --hybrid_training default to True, so upstream trains with its masking.
        return {"train": TrainConfig(steps=100_000, batch_size=320, optimizer="adamw", lr=1e-5, weight_decay=0.0,
                                     betas=(0.9, 0.999), schedule="linear", warmup_steps=100, mixed_precision="fp16"),
                "hybrid_masking": "upstream"}

    @classmethod
    def paper_counts(cls, sd15):
        return [PaperCount("pea", parameter_count(PEAAdapter(1024, 2048, 768)), sd15_system(sd15), 7.87e6,
                           "PEA code, SD 1.5 variant 1024->2048->2048->768")]

    def build(self) -> None:
        width = self.backbone.multilingual.config.hidden_size
        self.adapter = PEAAdapter(width, self.config.hidden_multiplier * width, self.backbone.unet.config.cross_attention_dim)

    def modules(self) -> dict[str, nn.Module]:
        return {"adapter": self.adapter}

    def stage_data(self, stage: str, corpus) -> StageData:
        return StageData(corpus.pivot_image_text(self.language, self.config.train_items),
                         {"x0": "diffusion_input", "ml": "multilingual:caption", "en": "clip_text:caption_en",
                          "has_english": "flag:has_english"})

    def loss(self, batch, stage):
        c, unet = self.config, self.backbone.unet
        empty = self.empty_prompt_states()
        ml, drop = self.drop_states(c.caption_dropout, batch["ml.states"], empty["multilingual"])
        en = torch.where(drop[:, None, None], empty["english"], batch["en.states"])
        student_context = self.adapter(ml)
        with capture_blocks(unet) as student_blocks:
            denoise, sample, prediction = self.denoise(unet, batch["x0"], student_context)
        with torch.no_grad(), capture_blocks(unet) as teacher_blocks:
            teacher = unet(sample.noisy, sample.timesteps, encoder_hidden_states=en.to(student_context.dtype)).sample
        def per_sample(a, b):
            return ((a.float() - b.float()) ** 2).mean(dim=tuple(range(1, a.ndim)))

        if c.hybrid_masking == "upstream":
            # train_sd_zh.py: loss * zh_or_not and loss * (1 - zh_or_not), then .mean() over the batch; a
            # dropped caption keeps its item's kind (both sides get the empty prompt).
            translated = batch["has_english"].float()
            denoise = ((1 - translated) * per_sample(prediction, sample.target)).mean()
            weight = translated / len(translated)
        elif c.hybrid_masking == "denoise_all":
            teach = (batch["has_english"].bool() | drop).float()  # the empty prompt has an English side
            weight = teach / teach.sum().clamp(min=1)
        else:
            raise ConfigError(f"hybrid_masking must be 'denoise_all' or 'upstream', got {c.hybrid_masking!r}")

        output_kd = (weight * per_sample(prediction, teacher)).sum()
        feature_kd = sum((weight * per_sample(s, t)).sum() for s, t in zip(student_blocks, teacher_blocks))
        loss = denoise + c.output_kd_weight * output_kd + c.feature_kd_weight * feature_kd
        return {"loss": loss, "denoise": denoise.detach(), "output_kd": output_kd.detach(),
                "feature_kd": feature_kd.detach()}

    def _encode(self, texts, lang):
        states, _ = self.backbone.encode_multilingual(texts)
        return Conditioning(self.adapter(states.float()).to(self.backbone.dtype), None)

