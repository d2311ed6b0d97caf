"""mCLIP's Triangle Knowledge Distillation (Chen et al., ACL 2023; code ghchen18/acl23_mclip).

Frozen: the CLIP image and text towers and the multilingual encoder. Trainable: the X-projector (two
post-LN transformer layers on the encoder's states, XLM-R base sized, dropout 0.3 as run_mclip.sh, pooled
at the final </s> token: upstream left-pads and takes the last position) and the CLIP-projector (a
bias-free linear from CLIP's joint space to the encoder's width, shared by image and text embeddings).
Loss (paper eq. 3): L = ITC(h_X, h_I) + 0.1 * TTC(h_X, h_T), both symmetric InfoNCE on L2-normalised
vectors; ITC has a learnable temperature (init 0.07, logit scale capped at 100), TTC a fixed 0.07.
Trained on English image-text only with LAMB and an inverse-square-root schedule after warmup.

Optional stage `mte` (mCLIP+, "MTE enhancement"): before TriKD, a copy of the multilingual encoder is
improved on parallel text with a contrastive objective (mask-mean-pooled, L2-normalised states of a
sentence and its translation, temperature 0.1; token and position embeddings stay frozen, as in
upstream's `xlmr_2stage`); TriKD then runs on the enhanced, again frozen, encoder. Deviation (labelled):
upstream's MTE also trains a 12-layer translation decoder and adds its cross-entropy (weight 1, with the
contrastive term at 2.0); the toy omits the decoder and keeps the contrastive term, which is what aligns
sentence representations across languages.

Extension for generation (the study's, not mCLIP's: mCLIP never generated images; weight
`token_alignment_weight`, labelled in the results): a bias-free token head maps the X-projector's token
states to the UNet's cross-attention width and is trained so that every cross-attention layer of the
frozen UNet gives the same output for the projected multilingual states as for the English text tower's
states, for random probe queries. Matching attention outputs (rather than the states themselves) needs
no token-to-token correspondence between the two tokenizations, and no UNet forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..cache import ConcatDataset
from ..config import option
from ..errors import ConfigError
from ..registry import METHODS
from ..train import TrainConfig
from ._base import (Conditioning, Method, StageData, Variant, cross_attention_modules, masked_mean, settings_label,
                    symmetric_info_nce, trim_padding)


@dataclass(frozen=True)
class TriKDConfig:
    """mCLIP / TriKD: projector sizes, loss weights and temperatures, the optional stages and budgets."""

    projector_layers: int = option(2, "Transformer layers of the X-projector (paper: 2).")
    projector_heads: int = option(0, "Attention heads of the X-projector (0: as the multilingual encoder).")
    projector_ffn: int = option(0, "FFN width of the X-projector (0: as the multilingual encoder, 3072 for XLM-R base).")
    projector_dropout: float = option(0.3, "Dropout in the X-projector (run_mclip.sh: 0.3).")
    ttc_weight: float = option(0.1, "Weight of the text-text term TTC(h_X, h_T) (paper: 0.1).")
    itc_init_temperature: float = option(0.07, "Initial temperature of the learnable ITC logit scale (paper: 0.07).")
    max_logit_scale: float = option(100.0, "Cap of the ITC logit scale (CLIP: 100).")
    ttc_temperature: float = option(0.07, "Fixed temperature of TTC (paper: 0.07).")
    # `added`: 'temperature' is what every recorded run did.
    ttc_logit_scale: str = option(
        "temperature", "How TTC's logits are scaled: 'temperature' divides the cosines by ttc_temperature (the "
        "paper's 0.07); 'released' multiplies them by log(1 / ttc_temperature) = 2.66, as the released code does "
        "(fairseq/criterions/multimodal_ctl_loss.py: tt_logit_scale = np.log(1 / 0.07), never exponentiated; an "
        "effective temperature of 0.38).", added=True)
    token_alignment_weight: float = option(
        1.0, "Study's extension for generation: weight of cross-attention output matching of the token head. "
             "0 is mCLIP as published: no token head, a retrieval model that draws nothing.")
    probe_queries: int = option(16, "Random probe queries per cross-attention layer for the token alignment term.")
    mte: bool = option(False, "Run the MTE enhancement stage first (mCLIP+): contrastive training of the "
                              "multilingual encoder on parallel text.")
    mte_temperature: float = option(0.1, "Temperature of the MTE stage's contrastive loss (upstream: 0.1).")
    mte_items_per_language: int = option(4000, "Parallel pairs per target language for the MTE stage; 0: all the corpus has (sd15).", smoke=32)
    train_items: int = option(10_000, "English image-text items TriKD trains on (paper: CC3M); 0: all the corpus has (sd15).", smoke=64)
    train: TrainConfig = option(
        lambda: TrainConfig(steps=400, batch_size=256, optimizer="lamb", lr=1e-2, weight_decay=0.01,
                            schedule="inverse_sqrt", warmup_steps=100, betas=(0.9, 0.999)),
        "TriKD stage. Paper: LAMB lr 1e-2, inverse-sqrt, 500 warmup, 15 epochs of CC3M at batch 2048 per GPU; "
        "toy: 400 steps of 256 (10 epochs of 10k items), 100 warmup.")
    mte_train: TrainConfig = option(
        lambda: TrainConfig(steps=600, batch_size=128, optimizer="adamw", lr=5e-5, weight_decay=0.01,
                            schedule="cosine", warmup_steps=50),
        "MTE stage (whole multilingual encoder trains; a fine-tuning learning rate).")


class XProjector(nn.Module):
    """Transformer layers on the multilingual encoder's states; pooled at each sequence's final </s>."""

    def __init__(self, width: int, layers: int, heads: int, ffn: int, dropout: float, eps: float = 1e-5):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, ffn, dropout=dropout, activation="gelu", batch_first=True,
                                       layer_norm_eps=eps)  # post-LN, as XLM-R's own layers
            for _ in range(layers))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padding = mask == 0
        for layer in self.layers:
            states = layer(states, src_key_padding_mask=padding)
        last = mask.sum(1).long() - 1  # right-padded here, so the final </s> is at length - 1
        return states, states[torch.arange(len(states), device=states.device), last]


# The published training budget of each stage, with its source (the cost extrapolation reads it; most
# papers publish no step count, and then nothing is extrapolated).
PUBLISHED_BUDGETS = {
    "trikd": {
        "samples": 49774995,
        "steps": 24315,
        "global_batch": 2048,
        "gpus": "1 GPU in the released script (GPU type not stated); paper hardware not verified",
        "reported_gpu_hours": None,
        "source": ("ghchen18/acl23_mclip scripts/run_mclip.sh, train_mclip(): --max-epoch 15 --batch-size "
                   "2048 --update-freq 1, lang_pairs 'im-en' (CC3M), export CUDA_VISIBLE_DEVICES=0 "
                   "(',1,...,7' commented out)"),
        "note": ("Derived UPPER BOUND, not a published step count. fairseq --batch-size is per GPU, so "
                 "global batch = 2048 x n_gpus; the script uses 1 GPU. samples = 15 epochs x 3,318,333 "
                 "(CC3M nominal train split, the dataset's own figure; the number of pairs the authors "
                 "actually downloaded is not given in the repo). steps = 15 x ceil(3,318,333/2048) = 15 x "
                 "1,621. No GPU type or hours in the repo; the ACL'23 paper body could not be read here, "
                 "so the write-up's '8x V100, ~256 GPU-h' is unconfirmed. (steps x batch = 49,797,120; the "
                 "22,125 difference is the partial last batch of each epoch.)"),
    },
    "mte": {
        "samples": None,
        "steps": 560000,
        "global_batch": None,
        "gpus": "8 GPUs (CUDA_VISIBLE_DEVICES=0-7 in scripts/run_mte.sh; GPU type not stated)",
        "reported_gpu_hours": None,
        "source": ("ghchen18/acl23_mclip scripts/run_mte.sh: train_1stage_mte (MaxUpdates=400000, "
                   "--max-tokens 4096, --update-freq 1) and train_2stage_mte_ctl (MaxUpdates=160000, "
                   "--max-tokens 1024, --update-freq 4, --contrastive-lambda 2.0)"),
        "note": ("Two sub-stages: 400k + 160k = 560k updates. Batches are token-based: at most 4096 x 1 x "
                 "8 = 32,768 tokens/update (stage 1) and 1024 x 4 x 8 = 32,768 tokens/update (stage 2), so "
                 "samples (sentence pairs) cannot be derived without assuming sentence length. Data: "
                 "parallel text for cs,de,es,ja,ru,zh <-> en (12 directions, temperature sampling T=5); "
                 "README says corpora come from URLs in the paper appendix, amount not stated in the repo. "
                 "No hours or GPU type published in the repo."),
    },
}


# mCLIP+ (paper section 3.3) is TriKD with the MTE stage on. Upstream's MTE (run_mte.sh, xlmr_2stage): Adam
# (0.9, 0.98), lr 1e-4, no weight decay, clip 2.0, 160k updates. The toy trains 600 steps of 128 at AltCLIP's
# teacher rate (3e-4), so the two parallel-text alignments of the same encoder get the same budget: at
# TriKD's default 5e-5 the toy MTE loss was still falling when the schedule ended (5.8 -> 2.6) and
# retrieval stayed at the floor.
MCLIP_PLUS = Variant(
    changes={"mte": True},
    changes_on={"toy": {"mte_train.lr": 3e-4, "mte_train.weight_decay": 0.0, "mte_train.max_grad_norm": 2.0}},
    title="mCLIP+: TriKD after MTE enhancement (Chen et al., ACL 2023, section 3.3)",
    summary="mCLIP+: TriKD after aligning the multilingual encoder on parallel text (MTE)",
    prose=("TriKD as in the `trikd` notebook, preceded by stage `mte`: a copy of the multilingual encoder is "
           "trained on parallel text (each sentence against its English translation) with a contrastive loss on "
           "its mask-mean-pooled states (temperature 0.1; token and position embeddings frozen, as upstream's "
           "`xlmr_2stage`). TriKD then runs on the enhanced encoder, frozen again. Deviation (labelled): "
           "upstream's MTE also trains a translation decoder with cross-entropy; the toy keeps the contrastive "
           "term only. The write-up's retrieval numbers for mCLIP are mCLIP+'s."),
    diagram=("stage mte:   sentence (X) -> XLM-R copy (trained) --InfoNCE-- XLM-R copy <- translation (en)\n"
             "stage trikd: caption (en) -> enhanced XLM-R (frozen) -> X-projector --ITC/TTC--> CLIP (frozen)\n"
             "prompt (X) -> enhanced XLM-R -> X-projector token head -> UNet (frozen) -> image"),
    order=5,
)


@METHODS.register("trikd")
class TriKD(Method):
    title = "mCLIP: Triangle Knowledge Distillation (Chen et al., ACL 2023)"
    summary = "mCLIP TriKD: a multilingual encoder distilled into CLIP's space"
    prose = ("Frozen: CLIP's image and text towers and the multilingual encoder (XLM-R). Trains: an "
             "X-projector (two transformer layers on the encoder's states, pooled at `</s>`) and a "
             "bias-free CLIP-projector. Loss (paper section 3): ITC(h_X, h_I) + 0.1 TTC(h_X, h_T), both "
             "symmetric InfoNCE, learnable temperature for ITC. English image-text only; other languages "
             "come from the encoder's alignment, or from the optional `mte` stage (mCLIP+), which first "
             "aligns the encoder on parallel text. mCLIP never generated images: the study adds a "
             "token-level alignment to the English text states so the projector can condition the UNet "
             "(labelled as the study's extension).")
    diagram = ("caption (en) -> XLM-R (frozen) -> X-projector --ITC--> CLIP image (frozen)\n"
               "                                               \\--TTC--> CLIP text (frozen)\n"
               "prompt (X) -> XLM-R -> X-projector token head -> UNet (frozen) -> image")
    order = 4
    published_budgets = PUBLISHED_BUDGETS
    variants = {"mclip_plus": MCLIP_PLUS}
    config_class = TriKDConfig
    label = settings_label

    @classmethod
    def label_for(cls, c) -> str:
        parts = ["token-alignment extension for generation (study's, weight in config)" if c.token_alignment_weight > 0
                 else "mCLIP as published: retrieval only"]
        if c.ttc_logit_scale == "released":
            parts.append("TTC logit scale as released (2.66)")
        if c.mte:
            parts.append("mte stage: contrastive only, no translation decoder")
        return "; ".join(parts)

    @classmethod
    def sd15_settings(cls) -> dict:
        return {
            # scripts/run_mclip.sh, train_mclip(): --optimizer lamb --lr 1e-2 --lr-scheduler inverse_sqrt
            # --warmup-updates 500 --weight-decay 0.01 --clip-norm 2.0 --batch-size 2048 --max-epoch 15 --fp16
            # (15 epochs of CC3M's 3.32M pairs at 2048: 24,315 updates). bf16 here: no loss scaler needed.
            "train": TrainConfig(steps=24_315, batch_size=2048, optimizer="lamb", lr=1e-2, weight_decay=0.01,
                                 betas=(0.9, 0.999), schedule="inverse_sqrt", warmup_steps=500, max_grad_norm=2.0,
                                 mixed_precision="bf16"),
            # scripts/run_mte.sh, train_2stage_mte_ctl() (the contrastive stage this one is): --optimizer adam
            # --adam-betas (0.9, 0.98) --lr 1e-4 --lr-scheduler inverse_sqrt --warmup-updates 10 --weight-decay 0
            # --clip-norm 2.0 --max-update 160000; batches of 1024 tokens x 4 accumulations x 8 GPUs = 32,768
            # tokens, taken here as 512 sentence pairs (about 64 tokens a pair: an assumption, labelled).
            "mte_train": TrainConfig(steps=160_000, batch_size=512, optimizer="adamw", lr=1e-4, weight_decay=0.0,
                                     betas=(0.9, 0.98), schedule="inverse_sqrt", warmup_steps=10, max_grad_norm=2.0,
                                     mixed_precision="bf16"),
        }

    def build(self) -> None:
        c, bb = self.config, self.backbone
        ml = bb.multilingual.config
        width = ml.hidden_size
        self.x_projector = XProjector(width, c.projector_layers, c.projector_heads or ml.num_attention_heads,
                                      c.projector_ffn or ml.intermediate_size, c.projector_dropout, ml.layer_norm_eps)
        self.clip_projector = nn.Linear(bb.clip.config.projection_dim, width, bias=False)
        # ITC's learnable temperature, stored as CLIP does: log of the logit scale.
        self.logit_scale = _Scalar(math.log(1 / c.itc_init_temperature))
        cross = bb.unet.config.cross_attention_dim
        self.token_head = nn.Linear(width, cross, bias=False) if c.token_alignment_weight > 0 else None
        self.draws = self.token_head is not None  # mCLIP itself never conditioned a UNet
        if c.ttc_logit_scale not in ("temperature", "released"):
            raise ConfigError(f"ttc_logit_scale must be 'temperature' or 'released', got {c.ttc_logit_scale!r}")
        self.encoder = self.trainable_copy(bb.multilingual) if c.mte else None

    def modules(self) -> dict[str, nn.Module]:
        owned = {"x_projector": self.x_projector, "clip_projector": self.clip_projector, "logit_scale": self.logit_scale}
        if self.token_head is not None:
            owned["token_head"] = self.token_head
        if self.encoder is not None:
            owned["encoder"] = self.encoder
        return owned

    @property
    def stages(self) -> tuple[str, ...]:
        return ("mte", "trikd") if self.config.mte else ("trikd",)

    def stage_modules(self, stage: str) -> dict[str, nn.Module]:
        if stage == "mte":  # the transformer layers; embeddings stay frozen (upstream xlmr_2stage)
            return {"encoder.layers": self.encoder.encoder}
        return {k: v for k, v in self.modules().items() if k != "encoder"}

    def train_config(self, stage: str) -> TrainConfig:
        return self.config.mte_train if stage == "mte" else self.config.train

    @property
    def multilingual(self) -> nn.Module:
        return self.encoder if self.encoder is not None else self.backbone.multilingual

    def stage_data(self, stage: str, corpus) -> StageData:
        if stage == "mte":
            parallel = ConcatDataset([corpus.parallel_text(lang, self.config.mte_items_per_language)
                                      for lang in corpus.target_languages])
            return StageData(parallel, {"en": "multilingual_tokens:en", "x": "multilingual_tokens:target"})
        data = corpus.english_image_text(self.config.train_items)
        return StageData(data, {"image": "clip_image", "en": "clip_text:caption", "ml": "multilingual:caption"},
                         multilingual=self.multilingual)

    def loss(self, batch, stage):
        if stage == "mte":
            return self._mte_loss(batch)
        c = self.config
        ml_states, ml_mask = batch["ml.states"], batch["ml.mask"]
        if self.token_head is not None:  # one extra row, the empty prompt, so the head learns guidance's input
            empty = self.empty_prompt_states()
            ml_states = torch.cat([ml_states, empty["multilingual"].to(ml_states.dtype)])
            ml_mask = torch.cat([ml_mask, empty["multilingual_mask"].to(ml_mask.dtype)])
        states, h_x = self.x_projector(ml_states, ml_mask)
        h_x = h_x[:len(batch["image"])]
        h_i = self.clip_projector(batch["image"])
        h_t = self.clip_projector(batch["en.pooled"])
        scale = self.logit_scale.value.exp().clamp(max=c.max_logit_scale)
        itc = symmetric_info_nce(h_x, h_i, scale)
        ttc_scale = 1.0 / c.ttc_temperature if c.ttc_logit_scale == "temperature" else math.log(1.0 / c.ttc_temperature)
        ttc = symmetric_info_nce(h_x, h_t, ttc_scale)
        terms = {"itc": itc, "ttc": ttc, "logit_scale": scale.detach()}
        loss = itc + c.ttc_weight * ttc
        if self.token_head is not None:
            teacher = torch.cat([batch["en.states"], self.empty_prompt_states()["english"].to(batch["en.states"].dtype)])
            terms["token_alignment"] = probe_alignment_loss(self.backbone.unet, self.token_head(states), teacher,
                                                            c.probe_queries)
            loss = loss + c.token_alignment_weight * terms["token_alignment"]
        terms["loss"] = loss
        return terms

    def _mte_loss(self, batch):
        def pooled(prefix):
            ids, mask = trim_padding(batch[f"{prefix}.ids"], batch[f"{prefix}.mask"])
            return masked_mean(self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask)

        loss = symmetric_info_nce(pooled("x"), pooled("en"), 1.0 / self.config.mte_temperature)
        return {"loss": loss}

    def _encode(self, texts, lang):  # without the token head (mCLIP as published) only `pooled` is meaningful
        bb = self.backbone
        tokens = bb.tokenize_multilingual(texts)
        states = self.multilingual(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        states, pooled = self.x_projector(states.float(), tokens["attention_mask"])
        token_states = self.token_head(states) if self.token_head is not None else states
        return Conditioning(token_states.to(bb.dtype), pooled)

    @torch.no_grad()
    def encode_images(self, pixel_values):
        return self.clip_projector(self.backbone.encode_images(pixel_values).float())


class _Scalar(nn.Module):
    """One learnable scalar as a module (so it is saved and trained like the others)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))


def probe_alignment_loss(unet: nn.Module, student: torch.Tensor, teacher: torch.Tensor, n_queries: int) -> torch.Tensor:
    """Mean over the UNet's cross-attention layers of the MSE between the layer's outputs for the student
    and the teacher context, at `n_queries` random standard-normal queries per sample (fresh each call).

    Equal outputs for every query is what makes two contexts interchangeable for the frozen UNet.
    """
    losses = []
    for _, attention in cross_attention_modules(unet):
        queries = torch.randn(len(student), n_queries, attention.to_q.in_features, device=student.device,
                              dtype=student.dtype)
        with torch.no_grad():
            target = attention(queries, encoder_hidden_states=teacher.to(student.dtype))
        output = attention(queries, encoder_hidden_states=student)
        losses.append(nn.functional.mse_loss(output.float(), target.float()))
    return torch.stack(losses).mean()
