"""A frozen multilingual language model behind a trained connector, in front of the frozen UNet: ELLA's
Timestep-Aware Semantic Connector (Hu et al. 2024, arXiv 2403.05135; code TencentQQGYLab/ELLA, `model.py`)
trained by ELLA's recipe or by X2I's (arXiv 2503.06134; code OPPO-Mente-Lab/X2I).

The connector (upstream `ELLA` with its defaults: width 768, 6 blocks, 8 heads, 64 latents, input 2048;
66,820,608 parameters, the "0.07B" of ELLA's Table 4): the UNet's timestep goes through a sinusoidal
embedding (320 channels) and a two-layer MLP (SiLU) to the connector's width; learned latents plus a linear
of SiLU(time embedding) are the queries; the language model's token states are projected to the width;
each block is a Perceiver-resampler block whose three LayerNorms are adaptive (AdaLN: no affine, scale
and shift from a zero-initialised linear of SiLU(time embedding)): attention of the latents over
[latents; text] (`nn.MultiheadAttention`), then a 4x MLP with squared ReLU, each with a residual. Its
output, one state per latent, is the UNet's cross-attention context, recomputed at every timestep (the
UNet it conditions is wrapped: `TimestepAwareUNet`). Padding of the language model's states is masked
(upstream cuts each prompt to its own length, which is the same).

Recipes (`recipe`):
- `ella` (ELLA, section 3 and issue #36 of its repository: "only the diffusion MSE loss"): the plain
  denoising loss through the frozen UNet on English image-text; AdamW 1e-4 constant, weight decay 0.01.
- `x2i` (the variant `x2i`): English text only. The frozen UNet under the English text encoder's states is
  the teacher, the same UNet under the connector's states the student, at the same noisy input and
  timestep, and the student's output is pulled to the teacher's (MSE). Upstream distils FLUX's attention
  outputs (KL of temperature-3 softmaxes) at pure noise only, its AlignNet being timestep-unaware; a
  timestep-aware connector must see every timestep, so here the noisy inputs are the teacher's own
  4-step DDIM samples of the text (no guidance; still no images from data), noised at a uniformly drawn
  timestep, and the outputs are distilled (labelled).

The language model: on the toy, `toy:llm`, the backbone's decoder-only Qwen2 (128 wide, 4 layers)
pretrained on the world's monolingual text of every language with the aligned encoder's recipe; on a
real preset, any Hugging Face decoder by id or folder (e.g. Qwen/Qwen2.5-1.5B; from the local cache,
the missing-weights error otherwise), its last hidden states, or another layer (`hidden_layer`). The sd15
default reads the backbone's XLM-R until an LLM is named (labelled), so that nothing needs a download.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from diffusers import DDIMScheduler
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from ..backbone.diffusion import denoising_loss, noisy_sample
from ..config import option
from ..errors import ConfigError
from ..registry import METHODS
from ..train import TrainConfig
from ._base import (Conditioning, PaperCount, SingleStageMethod, StageData, Variant, parameter_count, sd15_system,
                    settings_label)

RECIPES = ("ella", "x2i")


@dataclass(frozen=True)
class LLMConnectorConfig:
    """The connector's shape, the language model it reads and the training recipe."""

    multilingual_encoder: str = option(
        "toy:llm", "The frozen language model: 'toy:llm' (the toy's decoder-only Qwen2), a Hugging Face id or folder "
        "of a decoder (e.g. Qwen/Qwen2.5-1.5B) on a real preset, or empty: the backbone's multilingual encoder.")
    hidden_layer: int = option(-1, "Which hidden states of the language model the connector reads (-1: the last, "
                                   "-2: the penultimate; an index into its hidden_states).")
    recipe: str = option("ella", "'ella': denoising loss on English image-text; 'x2i': distillation of the frozen "
                                 "UNet's output on English text only (see the module docstring).")
    latents: int = option(24, "Learned latents, i.e. conditioning tokens (ELLA: 64 for SD 1.5's 77; toy: 24, "
                              "the English encoder's length).")
    blocks: int = option(3, "Resampler blocks (ELLA: 6).")
    heads: int = option(4, "Attention heads (ELLA: 8).")
    time_channels: int = option(320, "Sinusoidal timestep channels (ELLA: 320).")
    caption_dropout: float = option(0.1, "Share of captions replaced by the empty prompt (ELLA does not state it; "
                                         "SD's usual 10%), so the connector learns guidance's unconditional input.")
    teacher_sample_steps: int = option(4, "x2i: DDIM steps of the teacher's own samples that are noised for the "
                                          "distillation (no guidance).")
    train_items: int = option(10_000, "English items (image-text for ella, text for x2i); 0: all the corpus has.",
                              smoke=32)
    train: TrainConfig = option(
        lambda: TrainConfig(steps=400, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=0.01,
                            schedule="constant", warmup_steps=30, mixed_precision="bf16"),
        "Connector training (ELLA: AdamW 1e-4, constant, weight decay 0.01; toy budget 400 steps of 32).")


def _squared_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) ** 2


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine parameters, scaled and shifted by a zero-initialised linear of SiLU(t)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Linear(width, 2 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(nn.functional.silu(time)).unsqueeze(1).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


class ResamplerBlock(nn.Module):
    """Latents attend to [latents; text], then a squared-ReLU MLP; three AdaLNs, two residuals."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_latents, self.norm_text, self.norm_mlp = AdaLayerNorm(width), AdaLayerNorm(width), AdaLayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.Identity(), nn.Linear(4 * width, width))

    def forward(self, latents, text, padding, time):
        queries = self.norm_latents(latents, time)
        keys = torch.cat([queries, self.norm_text(text, time)], dim=1)
        mask = torch.cat([padding.new_zeros(len(padding), latents.shape[1]), padding], dim=1) \
            if padding is not None else None
        latents = latents + self.attention(queries, keys, keys, key_padding_mask=mask, need_weights=False)[0]
        hidden = self.mlp[0](self.norm_mlp(latents, time))
        return latents + self.mlp[2](_squared_relu(hidden))


class TimestepAwareConnector(nn.Module):
    """ELLA's TSC: (language-model states, padding mask, timestep) -> (latents, width) UNet context."""

    def __init__(self, in_width: int, width: int, latents: int, blocks: int, heads: int, time_channels: int):
        super().__init__()
        self.time_proj = Timesteps(time_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(time_channels, width, act_fn="silu")
        self.latents = nn.Parameter(width ** -0.5 * torch.randn(latents, width))
        self.time_aware_linear = nn.Linear(width, width)
        self.proj_in = nn.Linear(in_width, width)
        self.blocks = nn.ModuleList(ResamplerBlock(width, heads) for _ in range(blocks))

    def forward(self, states: torch.Tensor, padding: torch.Tensor | None, timestep: torch.Tensor) -> torch.Tensor:
        timestep = timestep.reshape(-1).expand(len(states)) if timestep.numel() == 1 else timestep.reshape(-1)
        time = self.time_embedding(self.time_proj(timestep.to(states.device)).to(self.proj_in.weight.dtype))
        latents = self.latents.unsqueeze(0).expand(len(states), -1, -1) \
            + self.time_aware_linear(nn.functional.silu(time)).unsqueeze(1)
        text = self.proj_in(states.to(self.proj_in.weight.dtype))
        for block in self.blocks:
            latents = block(latents, text, padding, time)
        return latents


def padding_of(states: torch.Tensor) -> torch.Tensor:
    """Padding positions of states handed through a pipeline, which carries no mask: they are all zeros."""
    return states.abs().amax(dim=-1) == 0


class TimestepAwareUNet(nn.Module):
    """The frozen UNet behind the connector: `encoder_hidden_states` are the language model's states (padding
    zeroed); the connector turns them into the context at the step's timestep. Anything else is the UNet's."""

    def __init__(self, connector: TimestepAwareConnector, unet: nn.Module):
        super().__init__()
        self.connector = connector
        self.__dict__["inner"] = unet  # not a submodule: the frozen UNet's weights stay the backbone's own

    @property
    def config(self):
        return self.inner.config

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        timestep = torch.as_tensor(timestep, device=sample.device)
        context = self.connector(encoder_hidden_states, padding_of(encoder_hidden_states), timestep)
        return self.inner(sample, timestep, encoder_hidden_states=context.to(sample.dtype), **kwargs)


class HiddenLayer(nn.Module):
    """A language model read at another hidden layer than its last (`hidden_layer`)."""

    def __init__(self, model: nn.Module, index: int):
        super().__init__()
        self.model, self.config = model, model.config
        # A buffer, so the layer read is part of the module's fingerprint, hence of the feature cache's keys.
        self.register_buffer("index", torch.tensor(index), persistent=True)

    def forward(self, input_ids, attention_mask, **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return SimpleNamespace(last_hidden_state=out.hidden_states[int(self.index)])


@METHODS.register("ella")
class LLMConnector(SingleStageMethod):
    title = "ELLA-style LLM connector (Hu et al., 2024); X2I-style text-only training (2025)"
    summary = "LLM connector: a frozen multilingual language model, a timestep-aware connector, the frozen UNet"
    prose = ("A frozen decoder-only multilingual language model reads the prompt; ELLA's Timestep-Aware Semantic "
             "Connector (a Perceiver resampler whose LayerNorms are modulated by the timestep) turns its states "
             "into the frozen UNet's context at every denoising step. Only the connector trains: ELLA's recipe "
             "with the denoising loss on English image-text; the `x2i` variant by distilling the frozen UNet's "
             "output under the English text encoder into its output under the connector, on English text only. "
             "Other languages come from the language model's own alignment.")
    diagram = ("caption (en) -> language model (frozen) -> connector(t) (trained) -> UNet (frozen) -> denoising loss\n"
               "x2i: text (en) -> English encoder -> UNet (teacher) vs language model -> connector(t) -> UNet (student)")
    order = 9.5
    config_class = LLMConnectorConfig
    stage_name = "connector"
    uses_unet_gradients = True
    label = settings_label
    variants = {"x2i": Variant(
        changes={"recipe": "x2i"}, title="X2I-style text-only connector (2025)",
        summary="LLM connector trained X2I's way: distilling the frozen UNet on English text only",
        prose=("The same language model and connector, trained without images: the frozen UNet under the English "
               "text encoder's states teaches the same UNet under the connector's states (same noisy input and "
               "timestep), on English text only."),
        diagram="text (en) -> English encoder -> UNet (teacher) vs language model -> connector(t) -> UNet (student)",
        order=9.6)}
    published_budgets = {"connector": {
        "samples": None, "steps": 280_000, "global_batch": None, "gpus": 8, "reported_gpu_hours": 8 * 7 * 24,
        "source": "ELLA arXiv 2403.05135 section 5.1 (280k steps, 8 A100-40G, about 7 days for SD 1.5)",
        "note": ("ELLA states no batch size (34M pairs in about 140k steps for one epoch suggests about 256); "
                 "X2I: 100k English texts, 160 A100-hours (its abstract)."),
    }}

    @classmethod
    def config_for_preset(cls, preset: str):
        config = super().config_for_preset(preset)
        if preset == "toy":
            return config
        # ELLA for SD 1.5 (model.py defaults): 64 latents, 6 blocks, 8 heads; the language model stays the
        # backbone's XLM-R until one is named (nothing downloads), labelled.
        import dataclasses

        return dataclasses.replace(config, multilingual_encoder="", latents=64, blocks=6, heads=8)

    @classmethod
    def label_for(cls, config) -> str:
        parts = [f"language model {config.multilingual_encoder or 'none: the backbone multilingual encoder'}"]
        if config.hidden_layer != -1:
            parts.append(f"hidden layer {config.hidden_layer}")
        if config.recipe == "x2i":
            parts.append(f"x2i: output distillation on the teacher's own {config.teacher_sample_steps}-step samples "
                         "(upstream: attention KL at pure noise)")
        parts.append("padding masked (upstream: prompts cut to length)")
        return "; ".join(parts)

    @classmethod
    def paper_counts(cls, sd15):
        connector = TimestepAwareConnector(2048, 768, 64, 6, 8, 320)  # ELLA for SD 1.5 on FlanT5-XL
        return [PaperCount("ella (connector)", parameter_count(connector), sd15_system(sd15), 66.82e6,
                           "ELLA's TSC for SD 1.5 (its ablation table: 66.82M; 0.07B in Table 4)")]

    def build(self) -> None:
        c = self.config
        if c.recipe not in RECIPES:
            raise ConfigError(f"recipe must be one of {', '.join(RECIPES)}, got {c.recipe!r}")
        if c.hidden_layer != -1:
            self.backbone = self.backbone.with_multilingual(HiddenLayer(self.backbone.multilingual, c.hidden_layer),
                                                            self.backbone.multilingual_tokenizer,
                                                            self.backbone.info.get("ids", {}).get("multilingual", ""))
        if getattr(self.backbone.multilingual_tokenizer, "padding_side", "right") != "right":
            self.backbone.multilingual_tokenizer.padding_side = "right"  # left padding would shift causal states
        width = self.backbone.unet.config.cross_attention_dim
        self.connector = TimestepAwareConnector(self.backbone.multilingual.config.hidden_size, width, c.latents,
                                                c.blocks, c.heads, c.time_channels)
        self.wrapped_unet = TimestepAwareUNet(self.connector, self.backbone.unet)

    def modules(self) -> dict[str, nn.Module]:
        return {"connector": self.connector}

    @property
    def unet(self) -> nn.Module:
        return self.wrapped_unet

    def stage_data(self, stage: str, corpus) -> StageData:
        if self.config.recipe == "ella":
            return StageData(corpus.english_image_text(self.config.train_items),
                             {"x0": "diffusion_input", "lm": "multilingual:caption"})
        return StageData(corpus.monolingual_text("en", self.config.train_items),
                         {"lm": "multilingual:text", "en": "clip_text:text"})

    def _masked_states(self, batch) -> torch.Tensor:
        empty = self.empty_prompt_states()
        states, drop = self.drop_states(self.config.caption_dropout, batch["lm.states"], empty["multilingual"])
        mask = torch.where(drop[:, None], empty["multilingual_mask"], batch["lm.mask"])
        return states * mask.unsqueeze(-1).to(states.dtype), drop

    def loss(self, batch, stage):
        states, drop = self._masked_states(batch)
        if self.config.recipe == "ella":
            loss, _, _ = self.denoise(self.wrapped_unet, batch["x0"], states)
            return {"loss": loss}
        teacher_context = torch.where(drop[:, None, None], self.empty_prompt_states()["english"],
                                      batch["en.states"].float())
        unet = self.backbone.unet
        dtype = next(self.connector.parameters()).dtype
        with torch.no_grad():
            x0 = self._teacher_samples(teacher_context)
            sample = noisy_sample(self.backbone.noise_scheduler, x0.to(dtype))
            target = unet(sample.noisy, sample.timesteps, encoder_hidden_states=teacher_context.to(dtype)).sample
        prediction = self.wrapped_unet(sample.noisy, sample.timesteps, encoder_hidden_states=states.to(dtype)).sample
        sample.target = target
        return {"loss": denoising_loss(prediction, sample)}

    def _teacher_samples(self, context: torch.Tensor) -> torch.Tensor:
        """The frozen UNet's own few-step DDIM samples under the English states (no guidance): what the text
        alone says the image is, so no image data is read."""
        unet = self.backbone.unet
        scheduler = DDIMScheduler.from_config(self.backbone.sample_scheduler.config)
        scheduler.set_timesteps(self.config.teacher_sample_steps)
        size, channels = unet.config.sample_size, unet.config.in_channels
        x = torch.randn(len(context), channels, size, size, device=context.device, dtype=context.dtype)
        for t in scheduler.timesteps:
            output = unet(x, t, encoder_hidden_states=context).sample
            x = scheduler.step(output, t, x).prev_sample
        return x

    def _encode(self, texts, lang):
        states, mask = self.backbone.encode_multilingual(texts)
        states = states.float() * mask.unsqueeze(-1)
        if not math.isfinite(float(states.abs().sum())):
            raise ConfigError("the language model gave non-finite states")
        # The UNet's context depends on the timestep: the states go to the wrapped UNet (`unet`), padding zeroed.
        return Conditioning(states.to(self.backbone.dtype), None)
