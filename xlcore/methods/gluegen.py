"""GlueGen's GlueNet (Qin et al., ICCV 2023, arXiv 2303.10056; code salesforce/GlueGen,
`multilingual-gluenet/train_gluenet_multi.py` and `model.py`).

A translator from a frozen multilingual encoder's token states to the frozen English text encoder's token
states, trained on parallel text only (no images, no UNet gradients), one model per target language;
at inference its output replaces the English encoder's states as the UNet's cross-attention context.

Architecture (upstream `Translator_noln(77, 1024, 768, 2, 5)`): an MLP-Mixer without attention. Each of
`blocks` blocks has a channel MLP (Linear d->2d, LN, GELU, Linear 2d->2d, LN, GELU, Linear 2d->d, LN)
with a residual, then a token MLP over the positions (L->2L->2L->L with the same norms) with a residual,
and the block's output passes GELU(block(x) + x). A tail without LayerNorm and without residuals maps
the width to the English encoder's (d->2d->2d->D) and the positions to the English sequence length
(upstream both are 77, so L_in = L_out there; the toy's encoders read 64 and 24 tokens). At SD 1.5 scale
(XLM-R large, CLIP ViT-L/14) that is 50,179,776 parameters, the 50.2M GlueGen reports.

Training (`train_gluenet_multi.py`), on (target sentence, English sentence) pairs:
- input: the multilingual encoder's last states of the target sentence, divided by 3 (upstream's constant
  for XLM-R large); target: the English encoder's states of the English sentence divided by half of a
  fixed per-position norm, so every position has a comparable scale;
- distillation: 10000 x mean over positions and channels of the squared error, weighted per position by
  how far the batch-mean English state at that position is from the last position's (mean absolute
  difference over channels, normalised to mean 1; the last position takes the mean of the two before it);
- reconstruction: a decoder of the same architecture (English width back to the multilingual width)
  rebuilds the scaled input from the translation, 10000 x MSE;
- adversarial: 0.1 x the negative log-likelihood of a per-token discriminator (gradient reversal with
  coefficient 0.1, Linear D->D/4, BatchNorm, ReLU, Linear ->2, log-softmax) telling the English encoder's
  raw states (label 0; upstream feeds them unscaled) from the translations (label 1). The reversal makes
  the translator maximise what the discriminator minimises (DANN), in one loss, as upstream.
- one Adam over translator, decoder and discriminator, lr 1e-4, StepLR halving every epoch, batch 32,
  4 epochs; only the translator is kept for inference.

Deviations (labelled in the results): the per-position norm upstream hard-codes for CLIP ViT-L's states is
measured here, at build, on the frozen English encoder's states of the empty prompt (so it needs nothing
but the backbone and is the same after loading); the toy trains at a higher learning rate over far fewer
steps. Upstream releases no image-side fine-tuning of GlueNet for the multilingual task (its README: no
UNet back-propagation, no image-text pairs), so there is none here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backbone.sd15 import PUBLISHED_PARAMETER_COUNTS
from ..config import option
from ..registry import METHODS
from ..train import TrainConfig
from ._base import (ENCODER_HELP, Conditioning, PaperCount, SingleStageMethod, StageData, parameter_count, sd15_system,
                    settings_label)


@dataclass(frozen=True)
class GlueGenConfig:
    """GlueGen: the translator's shape, its three losses and the per-language budget."""

    blocks: int = option(5, "Mixer blocks of the translator (upstream: 5).")
    width_multiplier: int = option(2, "Hidden width of every MLP as a multiple of its input (upstream: hard-coded 2).")
    input_divisor: float = option(3.0, "The multilingual states are divided by this (upstream: 3 for XLM-R large).")
    distill_weight: float = option(10_000.0, "Weight of the token-weighted MSE to the English states (upstream: 10000).")
    reconstruction_weight: float = option(10_000.0, "Weight of the decoder's reconstruction MSE (upstream: 10000).")
    adversarial_weight: float = option(0.1, "Weight of the discriminator's loss (upstream: 0.1).")
    reversal: float = option(0.1, "Gradient-reversal coefficient in front of the discriminator (upstream: 0.1).")
    multilingual_encoder: str = option("", ENCODER_HELP + " GlueGen reads XLM-R large (FacebookAI/xlm-roberta-large).")
    parallel_items: int = option(4000, "Parallel pairs of the target language; 0: all the corpus has (sd15).", smoke=32)
    train: TrainConfig = option(
        lambda: TrainConfig(steps=0, epochs=4, batch_size=32, optimizer="adamw", lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999),
                            schedule="epoch_step", decay_factor=0.5, warmup_steps=0, max_grad_norm=0.0),
        "Translator training: Adam (AdamW without decay), StepLR halving per epoch, batch 32, 4 epochs, no gradient "
        "clipping. Upstream: lr 1e-4 over its corpus; toy: 4,000 pairs (500 steps) at lr 1e-3.")


class MixerMLP(nn.Module):
    """Linear in->h, [LN], GELU, Linear h->h, [LN], GELU, Linear h->out, [LN] (upstream's `net_sen` / `net_tok`)."""

    def __init__(self, width_in: int, hidden: int, width_out: int, norm: bool):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(((width_in, hidden), (hidden, hidden), (hidden, width_out))):
            layers.append(nn.Linear(a, b))
            if norm:
                layers.append(nn.LayerNorm(b))
            if i < 2:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MixerBlock(nn.Module):
    """Channel MLP then token MLP, each with a residual (upstream `translator_base`)."""

    def __init__(self, length: int, width: int, multiplier: int):
        super().__init__()
        self.channels = MixerMLP(width, multiplier * width, width, norm=True)
        self.tokens = MixerMLP(length, multiplier * length, length, norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channels(x) + x
        return self.tokens(x.transpose(1, 2)).transpose(1, 2) + x


class GlueNet(nn.Module):
    """(B, length_in, width_in) -> (B, length_out, width_out): `blocks` mixer blocks, then a norm-free tail."""

    def __init__(self, length_in: int, width_in: int, length_out: int, width_out: int, blocks: int, multiplier: int):
        super().__init__()
        self.blocks = nn.ModuleList(MixerBlock(length_in, width_in, multiplier) for _ in range(blocks))
        self.tail_channels = MixerMLP(width_in, multiplier * width_in, width_out, norm=False)
        self.tail_tokens = MixerMLP(length_in, multiplier * length_in, length_out, norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = nn.functional.gelu(block(x) + x)  # upstream's outer residual around each block
        x = self.tail_channels(x)
        return self.tail_tokens(x.transpose(1, 2)).transpose(1, 2)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


class TokenDiscriminator(nn.Module):
    """Per token: gradient reversal, Linear D->D/4, BatchNorm, ReLU, Linear ->2, log-softmax."""

    def __init__(self, width: int, reversal: float):
        super().__init__()
        self.reversal = reversal
        self.net = nn.Sequential(nn.Linear(width, width // 4), nn.BatchNorm1d(width // 4), nn.ReLU(),
                                 nn.Linear(width // 4, 2), nn.LogSoftmax(dim=-1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(_ReverseGradient.apply(tokens, self.reversal))


def position_weights(english: torch.Tensor) -> torch.Tensor:
    """Upstream's per-batch token weights (L,): distance of each position's batch-mean state from the last
    position's, normalised to mean 1, the last position set to the mean of the two before it."""
    mean = english.float().mean(0)
    distance = (mean - mean[-1]).abs().mean(-1)
    weights = distance / distance.mean().clamp(min=1e-12)
    weights[-1] = (weights[-3] + weights[-2]) / 2
    return weights


@METHODS.register("gluegen")
class GlueGen(SingleStageMethod):
    title = "GlueGen's GlueNet (Qin et al., ICCV 2023)"
    summary = "GlueGen: a translator from multilingual-encoder states to the English encoder's, text only"
    prose = ("A translator (an MLP-Mixer, 50.2M parameters at SD 1.5 scale) from the frozen multilingual "
             "encoder's token states to the frozen English text encoder's, trained on parallel text only, one "
             "per language: token-weighted MSE to the English states, a decoder reconstructing the input, and "
             "a per-token discriminator behind gradient reversal. The UNet and every encoder stay frozen; at "
             "inference the translation replaces the English encoder's states.")
    diagram = ("prompt (X) -> multilingual encoder (frozen) -> GlueNet (trained) ~ English encoder's states (en) "
               "-> UNet (frozen)")
    order = 8.5
    per_language = True
    config_class = GlueGenConfig
    stage_name = "translator"
    label = settings_label
    published_budgets = {"translator": {
        "samples": None, "steps": None, "global_batch": 32, "gpus": None, "reported_gpu_hours": None,
        "source": "salesforce/GlueGen multilingual-gluenet/train_gluenet_multi.py (batch 32, 4 epochs, Adam 1e-4)",
        "note": ("4 epochs of WikiMatrix en-X plus machine-translated LAION-1M captions per language; the pair "
                 "count and the compute are not published, so nothing is extrapolated."),
    }}

    @classmethod
    def label_for(cls, config) -> str:
        encoder = config.multilingual_encoder or "the backbone's multilingual encoder (upstream: XLM-R large)"
        return (f"encoder {encoder}; per-position target norm measured on the empty prompt (upstream: CLIP ViT-L's, "
                "hard-coded); adversarial 'real' side unscaled, as upstream")

    @classmethod
    def sd15_settings(cls) -> dict:
        # train_gluenet_multi.py: Adam lr 1e-4 (L187-192), StepLR gamma 0.5 stepped every epoch (L194),
        # batch 32 and 4 epochs (L49-50); the step count follows from the data file's pairs.
        return {"train": TrainConfig(steps=0, epochs=4, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=0.0,
                                     betas=(0.9, 0.999), schedule="epoch_step", decay_factor=0.5, warmup_steps=0,
                                     max_grad_norm=0.0, mixed_precision="bf16")}

    @classmethod
    def paper_counts(cls, sd15):
        # Upstream's setting: XLM-R large (1024 wide) read at 77 tokens onto CLIP ViT-L/14's 77 x 768 states;
        # the decoder and the discriminator only train, the translator is what ships (the 50.2M figure).
        system = sd15_system(sd15) - parameter_count(sd15["multilingual"]) + PUBLISHED_PARAMETER_COUNTS["xlm-roberta-large"]
        translator = GlueNet(77, 1024, 77, 768, 5, 2)
        training = translator, GlueNet(77, 768, 77, 1024, 5, 2), TokenDiscriminator(768, 0.1)
        return [PaperCount("gluegen (translator)", parameter_count(translator), system, 50.2e6,
                           "GlueGen: GlueNet for XLM-R large -> CLIP ViT-L/14"),
                PaperCount("gluegen (translator + decoder + discriminator, training)", sum(map(parameter_count, training)),
                           system, None, "what trains; only the translator ships")]

    def build(self) -> None:
        c, bb = self.config, self.backbone
        length_in, width_in = bb.multilingual_tokenizer.model_max_length, bb.multilingual.config.hidden_size
        english, _ = bb.encode_english([""])
        length_out, width_out = english.shape[1], english.shape[2]
        self.translator = GlueNet(length_in, width_in, length_out, width_out, c.blocks, c.width_multiplier)
        self.decoder = GlueNet(length_out, width_out, length_in, width_in, c.blocks, c.width_multiplier)
        self.discriminator = TokenDiscriminator(width_out, c.reversal)
        # Upstream divides the target by half of a per-position norm it measured on CLIP ViT-L's states; here
        # the frozen English encoder's own per-position norms (the empty prompt's), a pure function of the backbone.
        self.register_target_norm(english[0].float().norm(dim=-1).clamp(min=1e-6))

    def register_target_norm(self, norm: torch.Tensor) -> None:
        self.target_half_norm = (norm / 2).to(self.backbone.device)

    def modules(self) -> dict[str, nn.Module]:
        return {"translator": self.translator, "decoder": self.decoder, "discriminator": self.discriminator}

    def stage_data(self, stage: str, corpus) -> StageData:
        return StageData(corpus.parallel_text(self.language, self.config.parallel_items),
                         {"x": "multilingual:target", "en": "clip_text:en"})

    def translate(self, states: torch.Tensor) -> torch.Tensor:
        """The translator on raw multilingual states, in the scaled target space."""
        return self.translator(states.float() / self.config.input_divisor)

    def loss(self, batch, stage):
        c = self.config
        source = batch["x.states"].float() / c.input_divisor
        english = batch["en.states"].float()
        translated = self.translator(source)
        target = english / self.target_half_norm[:, None]
        weights = position_weights(english)
        distill = ((translated - target) ** 2 * weights[None, :, None]).mean()
        reconstruction = nn.functional.mse_loss(self.decoder(translated), source)
        width = english.shape[-1]
        real = self.discriminator(english.reshape(-1, width))
        fake = self.discriminator(translated.reshape(-1, width))
        adversarial = (nn.functional.nll_loss(real, torch.zeros(len(real), dtype=torch.long, device=real.device))
                       + nn.functional.nll_loss(fake, torch.ones(len(fake), dtype=torch.long, device=fake.device)))
        loss = c.distill_weight * distill + c.reconstruction_weight * reconstruction + c.adversarial_weight * adversarial
        return {"loss": loss, "distill": distill.detach(), "reconstruction": reconstruction.detach(),
                "adversarial": adversarial.detach()}

    def _encode(self, texts, lang):
        if lang == "en":  # the English pipeline, untouched
            states, pooled = self.backbone.encode_english(texts)
            return Conditioning(states, pooled)
        states, _ = self.backbone.encode_multilingual(texts)
        context = self.translate(states) * self.target_half_norm[:, None]
        return Conditioning(context.to(self.backbone.dtype), None)
