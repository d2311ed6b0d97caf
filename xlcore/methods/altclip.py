"""AltCLIP and AltDiffusion (BAAI; arXiv 2211.06679, 2308.09991; code FlagAI-Open/FlagAI, superhero-7/AltDiffusion).

The student text encoder is FlagAI's `RobertaSeriesModelWithTransformation`: a fully trainable copy of
the multilingual encoder with `pre_LN` (LayerNorm) and `transformation` (a linear to the CLIP text
tower's width). Its pooled output is transformation(pre_LN(last hidden)[:, 0]); its token states for the
UNet are transformation(last hidden) (FlagAI's `projection_state`, without pre_LN, as upstream).

AltCLIP stages:
1. `teacher`: teacher learning on parallel text. MSE between the student's pooled output on the
   target sentence and the frozen CLIP text tower's pooled output (the final-layer-normed EOS state,
   before text_projection) on the English sentence, and the same for the English sentence itself
   (upstream distils on both sides of its parallel corpora).
2. `contrastive`: symmetric InfoNCE between CLIP's frozen image embeddings and
   text_projection(student pooled) on multilingual image-text; the image tower, the text projection and
   the logit scale stay frozen, the student trains.

AltDiffusion adds, on a copy of the UNet conditioned by the (now frozen) student's token states:
3. `concept`: concept alignment, denoising loss on multilingual image-text, training only the
   cross-attention key and value projections (`attn2.to_k`, `attn2.to_v`). The upstream code selects
   parameters with `if 'to_k' or 'to_v' in name`, which is always true and trains all of attn2
   (to_q, to_k, to_v, to_out); `upstream_all_attn2=True` reproduces that.
4. `quality`: quality improvement, the whole UNet copy trains (optional: `quality_stage`).

Both train with 10% caption dropout (the empty prompt through the student), so guidance uses the
student's empty-prompt states as its unconditional branch. Deviation: the released m18 model
conditions on the penultimate layer through a second transformation; this follows the v1 (FlagAI) path.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..cache import ConcatDataset
from ..config import option
from ..registry import METHODS
from ..train import TrainConfig
from ..losses import symmetric_info_nce
from ._base import (Conditioning, Method, PaperCount, StageData, cross_attention_modules, parameter_count,
                    sd15_system, settings_label, trim_padding)


@dataclass(frozen=True)
class AltCLIPConfig:
    """AltCLIP: the student's stages and budgets."""

    parallel_items_per_language: int = option(4000, "Parallel pairs per target language for teacher learning; 0: all the corpus has (sd15).", smoke=32)
    image_text_items_per_language: int = option(
        2000, "Image-text items per language (English included) for the contrastive and diffusion stages; 0: all the corpus has (sd15).", smoke=16)
    # `added`: -1 is what every recorded run did. Upstream AltCLIP's teacher learning is reported to run
    # without dropout (its authors' distillation scripts have a no-dropout setting, jongjyh/multi-clip
    # scripts/run_kd_noDrop.sh); 0.0 reproduces that.
    teacher_dropout: float = option(
        -1.0, "Dropout of the student encoder in the teacher stage (hidden and attention); -1 keeps the encoder's "
              "own (0.1 for XLM-R), 0 runs the stage without dropout as upstream's teacher learning.", added=True)
    teacher_train: TrainConfig = option(
        lambda: TrainConfig(steps=500, batch_size=64, optimizer="adamw", lr=3e-4, weight_decay=0.01,
                            schedule="cosine", warmup_steps=50),
        "Teacher-learning stage (AltCLIP: AdamW with warmup; toy: lr 3e-4, 500 steps of 64).")
    contrastive_train: TrainConfig = option(
        lambda: TrainConfig(steps=300, batch_size=128, optimizer="adamw", lr=2e-5, weight_decay=0.01,
                            schedule="cosine", warmup_steps=30),
        "Contrastive image-text stage (a fine-tuning learning rate).")


@contextlib.contextmanager
def dropout_set_to(module: nn.Module, p: float) -> Iterator[None]:
    """Every `nn.Dropout` in `module` at probability `p` for the block (a negative `p` changes nothing);
    Hugging Face encoders read their attention dropout from these modules too."""
    layers = [m for m in module.modules() if isinstance(m, nn.Dropout)] if p >= 0 else []
    before = [m.p for m in layers]
    for m in layers:
        m.p = p
    try:
        yield
    finally:
        for m, old in zip(layers, before):
            m.p = old


@dataclass(frozen=True)
class AltDiffusionConfig(AltCLIPConfig):
    """AltDiffusion: AltCLIP's stages, then concept alignment and (optionally) quality improvement."""

    upstream_all_attn2: bool = option(
        False, "Train all of attn2 in concept alignment, as the upstream code does by accident "
               "(`if 'to_k' or 'to_v' in name`); default trains only to_k and to_v, as the paper says.")
    quality_stage: bool = option(True, "Run the quality-improvement stage (whole UNet) after concept alignment.")
    caption_dropout: float = option(0.1, "Share of captions replaced by the empty prompt in the diffusion stages.")
    concept_train: TrainConfig = option(
        lambda: TrainConfig(steps=400, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=0.01,
                            schedule="cosine", warmup_steps=20, mixed_precision="bf16"),
        "Concept-alignment stage (paper: lr 1e-4; toy budget 400 steps).")
    quality_train: TrainConfig = option(
        lambda: TrainConfig(steps=200, batch_size=32, optimizer="adamw", lr=2e-5, weight_decay=0.01,
                            schedule="cosine", warmup_steps=20, mixed_precision="bf16"),
        "Quality-improvement stage (whole UNet, a lower learning rate).")


class StudentTextEncoder(nn.Module):
    """FlagAI's RobertaSeriesModelWithTransformation on a copy of the multilingual encoder."""

    def __init__(self, encoder: nn.Module, out_width: int):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.pre_ln = nn.LayerNorm(hidden, eps=encoder.config.layer_norm_eps)
        self.transformation = nn.Linear(hidden, out_width)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token states for the UNet, pooled output in the CLIP text tower's pooled space)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.transformation(hidden), self.transformation(self.pre_ln(hidden)[:, 0])


# The published training budget of each stage, with its source (the cost extrapolation reads it; most
# papers publish no step count, and then nothing is extrapolated).
PUBLISHED_BUDGETS = {
    "teacher": {
        "samples": None,
        "steps": None,
        "global_batch": None,
        "gpus": None,
        "reported_gpu_hours": None,
        "source": ("FlagAI-Open/FlagAI examples/AltCLIP/README.md '训练/Training'; "
                   "examples/AltCLIP-m18/README.md 'Training datasets' table"),
        "note": ("Not published in any source reachable here. Official READMEs say only that this stage "
                 "uses parallel text only (teacher = CLIP text encoder, student = XLM-R, MSE on [CLS] vs "
                 "[TOS], per FlagAI issue #133). AltCLIP-m18 table lists OPUS sources per language "
                 "(CCAligned, WikiMatrix, CCMatrix, MultiParaCrawl, ...) and English text from LAION400M, "
                 "with no counts. Check the training-details section of arXiv 2211.06679 before filling "
                 "these fields. examples/AltCLIP/deepspeed.json (micro-batch 64, lr 1e-5) is the "
                 "fine-tuning example, not the published budget."),
    },
    "contrastive": {
        "samples": None,
        "steps": None,
        "global_batch": None,
        "gpus": None,
        "reported_gpu_hours": None,
        "source": ("FlagAI-Open/FlagAI examples/AltCLIP/README.md '训练/Training'; HF model card "
                   "BAAI/AltCLIP 'Training'"),
        "note": ("Only the data size is published in the official README: 'a small number of "
                 "Chinese-English image-text pairs (about 2 million in total)'. AltCLIP-m18: stages 2&3 "
                 "use a LAION-Aesthetics subset plus WuDaoMM for Chinese, with no counts. Steps, batch, "
                 "GPUs and hours were not found (paper body not readable here)."),
    },
}


@METHODS.register("altclip")
class AltCLIP(Method):
    title = "AltCLIP (Chen et al., 2022, arXiv 2211.06679)"
    summary = "AltCLIP: teacher distillation, then contrastive tuning of the text encoder"
    prose = ("Frozen: the CLIP image tower and the English CLIP text tower (the teacher). Trains: the "
             "whole multilingual encoder plus a transformation into CLIP's text space. Stage `teacher`: "
             "MSE between the student's pooled output and CLIP's on parallel text (the teacher reads "
             "English, the student both languages). Stage `contrastive`: InfoNCE of the student against "
             "frozen CLIP image embeddings, on image-text in every language.")
    diagram = ("parallel text: English -> CLIP text (frozen) --MSE-- student(X) <- XLM-R + transformation (trained)\n"
               "image-text:    image -> CLIP image (frozen) --InfoNCE-- student(caption)")
    order = 6
    published_budgets = PUBLISHED_BUDGETS
    config_class = AltCLIPConfig
    label = ""

    @classmethod
    def paper_counts(cls, sd15):
        return [PaperCount("altclip/teacher+contrastive", parameter_count(StudentTextEncoder(sd15["multilingual"], 768)),
                           sd15_system(sd15), None, "whole multilingual encoder + transformation")]

    def build(self) -> None:
        clip_text = self.backbone.clip.config.text_config.hidden_size
        self.student = StudentTextEncoder(self.trainable_copy(self.backbone.multilingual), clip_text)

    def modules(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    @property
    def stages(self) -> tuple[str, ...]:
        return ("teacher", "contrastive")

    def stage_modules(self, stage: str) -> dict[str, nn.Module]:
        return {"student": self.student}

    def train_config(self, stage: str) -> TrainConfig:
        return getattr(self.config, f"{stage}_train")

    def stage_identity(self, stage: str):
        """AltCLIP's two stages are AltDiffusion's first two: the same student, built first under the same seed,
        on the same data, so AltDiffusion takes AltCLIP's trained stages where the settings they read agree
        (the settings of the stages before included: the contrastive stage starts from the teacher stage)."""
        if stage not in ("teacher", "contrastive"):
            return None
        c = self.config
        # `code` names this implementation of the stages: change it when their loss or modules change, so
        # entries stored before no longer match.
        identity = {"code": "altclip-1", "parallel_items_per_language": c.parallel_items_per_language,
                    "teacher_dropout": c.teacher_dropout}
        if stage == "contrastive":
            identity["image_text_items_per_language"] = c.image_text_items_per_language
        return identity

    def _image_text(self, corpus) -> ConcatDataset:
        n = self.config.image_text_items_per_language
        return ConcatDataset([corpus.english_image_text(n)] + [corpus.language_image_text(lang, n)
                                                             for lang in corpus.target_languages])

    def stage_data(self, stage: str, corpus) -> StageData:
        if stage == "teacher":
            parallel = ConcatDataset([corpus.parallel_text(lang, self.config.parallel_items_per_language)
                                      for lang in corpus.target_languages])
            return StageData(parallel, {"teacher": "clip_text:en", "en": "multilingual_tokens:en",
                                        "x": "multilingual_tokens:target"})
        features = {"image": "clip_image"} if stage == "contrastive" else {"x0": "diffusion_input"}
        return StageData(self._image_text(corpus), {**features, "text": "multilingual_tokens:caption"})

    def loss(self, batch, stage):
        if stage == "teacher":
            teacher = batch["teacher.pooler"]
            with dropout_set_to(self.student, self.config.teacher_dropout):
                _, pooled_x = self.student(*trim_padding(batch["x.ids"], batch["x.mask"]))
                _, pooled_en = self.student(*trim_padding(batch["en.ids"], batch["en.mask"]))
            mse_x = nn.functional.mse_loss(pooled_x.float(), teacher)
            mse_en = nn.functional.mse_loss(pooled_en.float(), teacher)
            return {"loss": mse_x + mse_en, "mse_target": mse_x.detach(), "mse_english": mse_en.detach()}
        if stage == "contrastive":
            _, pooled = self.student(*trim_padding(batch["text.ids"], batch["text.mask"]))
            clip = self.backbone.clip
            scale = clip.logit_scale.exp().clamp(max=100.0).detach()
            return {"loss": symmetric_info_nce(batch["image"], clip.text_projection(pooled), scale)}
        return self._diffusion_loss(batch, stage)

    def _diffusion_loss(self, batch, stage):
        raise NotImplementedError(f"{self.name} has no stage {stage!r}")

    def _encode(self, texts, lang):
        tokens = self.backbone.tokenize_multilingual(texts)
        states, pooled = self.student(tokens["input_ids"], tokens["attention_mask"])
        return Conditioning(states.to(self.backbone.dtype), self.backbone.clip.text_projection(pooled.to(self.backbone.dtype)))



# The published training budget of each stage, with its source (the cost extrapolation reads it; most
# papers publish no step count, and then nothing is extrapolated).
ALTDIFFUSION_PUBLISHED_BUDGETS = {
    "concept": {
        "samples": 1013760000,
        "steps": 330000,
        "global_batch": 3072,
        "gpus": "64x NVIDIA A100-SXM4-40GB",
        "reported_gpu_hours": 12288,
        "source": ("FlagAI-Open/FlagAI examples/AltDiffusion-m18/README.md, section '训练细节' (Training "
                   "details), commit 75218b84 (2023-05-05); same text on HF card BAAI/AltDiffusion-m18"),
        "note": ("Published: initialised from SD v2.1 512-base-ema, batch 3072, 256x256, LAION2B-en "
                 "(2.32B) + filtered LAION2B-multi (1.8B, 18 languages), 330k steps, 'approximately 8 "
                 "days' on 64 A100. The README's method section says only the UNet cross-attention k,v are "
                 "trained here (AltCLIP-m18 frozen). AdamW, lr 1e-4, 10k warmup. GPU-hours = 8 d x 24 h x "
                 "64 = 12,288, derived from the published days. The write-up's '~21,000 A100 h / $47,700' "
                 "is not supported: the published total is 19 days x 64 = 29,184 A100-h (23,040 without "
                 "the CFG phase). The write-up's own CSV (theomkulpe/multilingual-image-generation, "
                 "cross_lingual_approaches_comparison.csv) gives '~128 A100 equivalent, ~1 week', and 128 "
                 "x 168 h = 21,504, the likely origin. $47,700 is about $2.27/A100-h; no source for it was "
                 "found."),
    },
    "quality": {
        "samples": 1036800000,
        "steps": 270000,
        "global_batch": 3840,
        "gpus": "64x NVIDIA A100-SXM4-40GB",
        "reported_gpu_hours": 10752,
        "source": ("FlagAI-Open/FlagAI examples/AltDiffusion-m18/README.md, section '训练细节' (Training "
                   "details); corroborated by superhero-7/AltDiffuson src/configs/train_hpc.yaml "
                   "(batch_size 10 x world_size 64 x accumulate_grad_batches 6 = 3840, 512px, "
                   "LAION-aesthetics en+multi)"),
        "note": ("Published: resumed from the 330k checkpoint, batch 3840, 512x512, LAION Aesthetics V1-en "
                 "(52M) + V1-multi (46M), 270k steps, about 7 days on 64 A100 (all UNet parameters "
                 "trained). 7 x 24 x 64 = 10,752 A100-h. It was followed by a further 150k steps with 10% "
                 "text dropout for CFG, about 4 days (6,144 A100-h); the README does not restate that "
                 "phase's batch (576M samples if it is 3840). Counting the CFG phase gives 420k steps and "
                 "16,896 A100-h."),
    },
}


@METHODS.register("altdiffusion")
class AltDiffusion(AltCLIP):
    title = "AltDiffusion (Ye et al., 2023, arXiv 2308.09991)"
    summary = "AltDiffusion: the AltCLIP encoder, then UNet concept alignment and quality tuning"
    prose = ("AltCLIP's two stages give an aligned multilingual text encoder; then stage `concept` trains "
             "only the UNet's cross-attention key and value projections (`attn2.to_k`, `attn2.to_v`) on "
             "multilingual prompts with the denoising loss, and stage `quality` trains the whole UNet (a "
             "copy; the backbone is never changed). `upstream_all_attn2=True` reproduces the upstream "
             "code's condition, which is always true and trains all of attn2.")
    diagram = "prompt (X) -> AltCLIP text encoder -> UNet copy (attn2 k/v, then all) -> denoising loss"
    order = 7
    published_budgets = {**AltCLIP.published_budgets, **ALTDIFFUSION_PUBLISHED_BUDGETS}
    config_class = AltDiffusionConfig
    uses_unet_gradients = True

    label = settings_label

    @classmethod
    def label_for(cls, config) -> str:
        parts = ["concept stage trains all of attn2 (upstream behaviour)"] if config.upstream_all_attn2 else []
        if config.teacher_dropout >= 0:
            parts.append(f"teacher stage dropout {config.teacher_dropout:g}")
        return "; ".join(parts)

    @classmethod
    def sd15_settings(cls) -> dict:
        # FlagAI examples/AltDiffusion-m18/README.md, training details: concept alignment at batch 3072 for
        # 330k steps, AdamW lr 1e-4 with 10k warmup steps (at 256 px; here the preset's 512); quality
        # improvement at batch 3840 for 270k steps, 512 px (its learning rate is not stated: 1e-4 kept).
        # Both train an EMA of the UNet's weights (the LDM training config FlagAI builds on: use_ema,
        # decay 0.9999, warmed up by the number of updates as LitEma does), which is what is evaluated and shipped.
        return {"concept_train": TrainConfig(steps=330_000, batch_size=3072, optimizer="adamw", lr=1e-4,
                                             weight_decay=0.01, schedule="constant", warmup_steps=10_000,
                                             ema_decay=0.9999, ema_warmup=True, mixed_precision="bf16"),
                "quality_train": TrainConfig(steps=270_000, batch_size=3840, optimizer="adamw", lr=1e-4,
                                             weight_decay=0.01, schedule="constant", warmup_steps=10_000,
                                             ema_decay=0.9999, ema_warmup=True, mixed_precision="bf16")}

    @classmethod
    def paper_counts(cls, sd15):
        unet, system = sd15["unet"], sd15_system(sd15)
        kv = sum(parameter_count(a.to_k) + parameter_count(a.to_v) for _, a in cross_attention_modules(unet))
        upstream = sum(parameter_count(a) for _, a in cross_attention_modules(unet))
        return [PaperCount("altdiffusion/concept", kv, system, 19.17e6, "AltDiffusion: attn2.to_k/to_v of SD 1.5"),
                PaperCount("altdiffusion/concept (upstream all-attn2)", upstream, system, 43.96e6,
                           "upstream `if 'to_k' or ...` trains all of attn2"),
                PaperCount("altdiffusion/quality", parameter_count(unet), system, None, "whole UNet")]

    def build(self) -> None:
        super().build()
        self.unet_copy = self.trainable_copy(self.backbone.unet)
        chosen = ("to_k", "to_v") if not self.config.upstream_all_attn2 else ("to_q", "to_k", "to_v", "to_out")
        self.concept_params = nn.ModuleDict({
            f"{name}.{part}".replace(".", "_"): getattr(attention, part)
            for name, attention in cross_attention_modules(self.unet_copy) for part in chosen})

    @property
    def unet(self) -> nn.Module:
        return self.unet_copy

    def modules(self) -> dict[str, nn.Module]:
        return {"student": self.student, "unet": self.unet_copy}

    @property
    def stages(self) -> tuple[str, ...]:
        return ("teacher", "contrastive", "concept") + (("quality",) if self.config.quality_stage else ())

    def stage_modules(self, stage: str) -> dict[str, nn.Module]:
        if stage == "concept":
            return {"concept": self.concept_params}
        if stage == "quality":
            return {"unet": self.unet_copy}
        return {"student": self.student}

    def _diffusion_loss(self, batch, stage):
        ids, mask = self.drop_captions(batch["text.ids"], batch["text.mask"], self.config.caption_dropout)
        with torch.no_grad():  # the student is frozen from here on
            context, _ = self.student(ids, mask)
        loss, _, _ = self.denoise(self.unet_copy, batch["x0"], context)
        return {"loss": loss}

