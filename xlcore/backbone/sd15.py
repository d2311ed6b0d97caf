"""The `sd15` preset: Stable Diffusion 1.5 with the models it was built from (DESIGN.md sections 2, 3, 5).

The bundle: SD 1.5's UNet, VAE and noise schedule; OpenAI CLIP ViT-L/14 (its text tower is exactly SD 1.5's
`text_encoder`, its image tower embeds images for retrieval and scoring); XLM-R base or large as the
multilingual encoder.

Two ways to get it:

- `load_sd15_backbone()` loads the pretrained weights by Hugging Face id from the local cache. Nothing is
  downloaded at run time; a missing model raises `MissingWeightsError` naming the id.
- `build_sd15_backbone_from_configs()` builds the same architectures with random weights from the
  configs written below (or a scaled-down copy with `small=True`). That is what lets this preset be tested
  without its weights: parameter counts (on the `meta` device, free), shapes, dtypes and GPU throughput
  do not depend on the weights.

The configs mirror the published `config.json` files so that the counts the study reports (DESIGN.md
section 5: AltDiffusion's 19.17M `attn2.to_k`/`to_v`, MuLan's and PEA's adapter widths) come from the real
architectures; `PUBLISHED_PARAMETER_COUNTS` pins them and the tests check every one.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from torch import nn
from transformers import (
    AutoTokenizer,
    CLIPConfig,
    CLIPModel,
    CLIPTokenizer,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaModel,
)

from ..errors import ConfigError, MissingWeightsError
from .base import Backbone

log = logging.getLogger(__name__)

SD15_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CLIP_ID = "openai/clip-vit-large-patch14"
MULTILINGUAL_IDS = {
    "xlm-roberta-base": "FacebookAI/xlm-roberta-base",
    "xlm-roberta-large": "FacebookAI/xlm-roberta-large",
}

# ------------------------------------------------------------------------------------------------------
# Architectures as configs. Keys and values copy the published config.json files, minus bookkeeping
# keys (_class_name, _diffusers_version, architectures, ...).

# stable-diffusion-v1-5/stable-diffusion-v1-5, unet/config.json. `attention_head_dim` 8 is, despite the
# name, the number of heads (a diffusers legacy naming): 8 heads of width 40/80/160 per stage.
UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}

# stable-diffusion-v1-5/stable-diffusion-v1-5, vae/config.json. The published file leaves
# `scaling_factor` at the class default; it is written out here because training and sampling code
# read it (latents are multiplied by it before the UNet sees them).
VAE_CONFIG: dict[str, Any] = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "scaling_factor": 0.18215,
}

# openai/clip-vit-large-patch14, config.json. Token ids follow the tokenizer (bos 49406, eos 49407):
# with eos 49407 transformers pools the first end-of-text token. Older copies of the hub file carry the
# pre-transformers#24773 placeholders (bos 0, eos 2), which select argmax pooling instead; with the real
# tokenizer both pick the same position, since 49407 is the largest id.
CLIP_CONFIG: dict[str, Any] = {
    "projection_dim": 768,
    "logit_scale_init_value": 2.6592,
    "text_config": {
        "vocab_size": 49408,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": 768,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
    },
    "vision_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
        "num_channels": 3,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": 768,
    },
}

# FacebookAI/xlm-roberta-base and FacebookAI/xlm-roberta-large, config.json.
_XLMR_COMMON: dict[str, Any] = {
    "vocab_size": 250002,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "bos_token_id": 0,
    "pad_token_id": 1,
    "eos_token_id": 2,
}
MULTILINGUAL_CONFIGS: dict[str, dict[str, Any]] = {
    "xlm-roberta-base": {**_XLMR_COMMON, "hidden_size": 768, "num_hidden_layers": 12,
                         "num_attention_heads": 12, "intermediate_size": 3072},
    "xlm-roberta-large": {**_XLMR_COMMON, "hidden_size": 1024, "num_hidden_layers": 24,
                          "num_attention_heads": 16, "intermediate_size": 4096},
}

# stable-diffusion-v1-5/stable-diffusion-v1-5, scheduler/scheduler_config.json (a PNDMScheduler config;
# the DDPM training scheduler and the DDIM sampler are built from the same values, as diffusers'
# training examples and pipelines do). Epsilon prediction is SD 1.5's objective.
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
}

# Parameter counts of the architectures above, as instantiated on the meta device. unet, vae, clip,
# clip.text and xlm-roberta-base are the published figures (the text tower is SD 1.5's 123M text
# encoder; xlm-roberta-base counts its pooler, as `XLMRobertaModel` does by default). clip.vision and
# xlm-roberta-large were measured here: they agree with the rounded figures usually quoted (304M for the
# ViT-L/14 image tower, 560M for XLM-R large; the XLM-R paper rounds to 550M). clip = text + vision +
# the two 768-wide projections (1024*768 + 768*768) + the logit scale.
PUBLISHED_PARAMETER_COUNTS: dict[str, int] = {
    "unet": 859_520_964,
    "vae": 83_653_863,
    "clip": 427_616_513,
    "clip.text": 123_060_480,
    "clip.vision": 303_179_776,
    "xlm-roberta-base": 278_043_648,
    "xlm-roberta-large": 559_890_432,
}

# `small=True`: the same block structure (block types, layers per block, transformer layers per attention
# block, channel ratios 1:2:4:4, hence the same module names) at widths and depths a CPU test runs in
# milliseconds. Vocabulary sizes, sequence lengths and image size stay, so the real tokenizers' ids and
# the Backbone's preprocessing fit the small models unchanged. The UNet keeps its four stages, so
# 8x8 latents are reduced to 1x1 at the bottom, as 64x64 latents are reduced to 8x8 at full size.
_SMALL_OVERRIDES: dict[str, dict[str, Any]] = {
    "unet": {"sample_size": 8, "block_out_channels": [32, 64, 128, 128], "norm_num_groups": 8,
             "cross_attention_dim": 32, "attention_head_dim": 2},
    "vae": {"sample_size": 64, "block_out_channels": [8, 16, 32, 32], "norm_num_groups": 8},
    "clip": {"projection_dim": 32,
             "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 2, "projection_dim": 32},
             "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "projection_dim": 32}},
    "multilingual": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "intermediate_size": 64},
}


def _check_multilingual(name: str) -> str:
    if name not in MULTILINGUAL_CONFIGS:
        raise ConfigError(f"unknown multilingual encoder {name!r} for the sd15 preset; "
                          f"choose one of: {', '.join(MULTILINGUAL_CONFIGS)}")
    return name


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` updated by `overrides`, nested dicts merged key by key (a deep copy; inputs untouched)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) else copy.deepcopy(value)
    return out


def sd15_configs(multilingual: str = "xlm-roberta-base", small: bool = False) -> dict[str, dict[str, Any]]:
    """Fresh copies of the architecture configs: unet, vae, clip, multilingual, scheduler.

    `small=True` gives the scaled-down copy described at `_SMALL_OVERRIDES` (the scheduler is unchanged).
    """
    configs = {
        "unet": UNET_CONFIG,
        "vae": VAE_CONFIG,
        "clip": CLIP_CONFIG,
        "multilingual": MULTILINGUAL_CONFIGS[_check_multilingual(multilingual)],
        "scheduler": SCHEDULER_CONFIG,
    }
    return {name: _merged(config, _SMALL_OVERRIDES.get(name, {}) if small else {})
            for name, config in configs.items()}


def sd15_architectures(multilingual: str = "xlm-roberta-base", device: torch.device | str = "meta", *,
                       small: bool = False, pooler: bool = True) -> dict[str, nn.Module]:
    """The unet, vae, clip and multilingual modules built from the configs, in float32 on `device`.

    On `meta` (the default) nothing is allocated, so counting the 1.65B parameters of the whole preset is
    free; on a real device the weights are the libraries' random initialisation under the current seed.
    `pooler=True` gives `XLMRobertaModel`'s default architecture, whose count is the published one; the
    Backbone drops the pooler (see `load_sd15_backbone`).
    """
    configs = sd15_configs(multilingual, small=small)
    with torch.device(device):
        return {
            "unet": UNet2DConditionModel(**configs["unet"]),
            "vae": AutoencoderKL(**configs["vae"]),
            "clip": CLIPModel(CLIPConfig(**configs["clip"])),
            "multilingual": XLMRobertaModel(XLMRobertaConfig(**configs["multilingual"]), add_pooling_layer=pooler),
        }


def parameter_counts(modules: Mapping[str, nn.Module]) -> dict[str, int]:
    """Parameters per module (meta tensors count too), with CLIP's text and image towers also listed alone.

    The same keys as `Backbone.parameter_counts`, so architecture counts and loaded counts line up.
    """
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}
    if "clip" in modules:
        counts["clip.text"] = sum(p.numel() for p in modules["clip"].text_model.parameters())
        counts["clip.vision"] = sum(p.numel() for p in modules["clip"].vision_model.parameters())
    return counts


def make_schedulers(config: Mapping[str, Any] | None = None) -> tuple[DDPMScheduler, DDIMScheduler]:
    """The DDPM training scheduler and the DDIM sampler from one config (default: SD 1.5's)."""
    noise_scheduler = DDPMScheduler.from_config(dict(config or SCHEDULER_CONFIG))
    return noise_scheduler, DDIMScheduler.from_config(noise_scheduler.config)


# ------------------------------------------------------------------------------------------------------
# Tokenizers that need no download


def clip_tokenizer_offline() -> CLIPTokenizer:
    """OpenAI CLIP's BPE tokenizer as a `transformers.CLIPTokenizer`, built from open_clip's packaged file.

    open_clip ships `bpe_simple_vocab_16e6.txt.gz`, the merges file OpenAI released, and its
    `SimpleTokenizer` derives the vocabulary from it (256 byte symbols, the same with the end-of-word
    mark, 48,894 merges, then the two specials: 49,408 entries). That vocabulary, with open_clip's special
    names swapped for the Hugging Face ones (`<|startoftext|>` 49406, `<|endoftext|>` 49407), and the
    merge list are the contents of `openai/clip-vit-large-patch14`'s vocab.json and merges.txt, and the
    Hugging Face BPE pipeline (NFC, whitespace, lower case, CLIP's split pattern) does the rest. The ids
    equal open_clip's, the tokenizer CLIP and hence SD 1.5 were trained with (checked in the tests), with
    two differences from open_clip that the hub's fast tokenizer shares: padding is `<|endoftext|>`
    (open_clip pads with 0, which the attention mask hides anyway), and HTML entities are not unescaped.
    """
    from open_clip.tokenizer import SimpleTokenizer, default_bpe  # imported here: only this path needs it

    reference = SimpleTokenizer(default_bpe())
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renamed.get(token, token): index for token, index in reference.encoder.items()}
    merges = [pair for pair, _ in sorted(reference.bpe_ranks.items(), key=lambda item: item[1])]
    max_length = CLIP_CONFIG["text_config"]["max_position_embeddings"]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


# Multilingual prompts are cut and padded to 77 tokens, CLIP's context length, as AltDiffusion's XLM-R
# tokenizer does (its model_max_length is 77). XLM-R's own default, 512, would make every multilingual step
# encode and cross-attend over 6.6x more (mostly padding) tokens than the published methods do, inflating
# their measured cost.
MULTILINGUAL_TEXT_LENGTH = 77


def byte_level_multilingual_tokenizer() -> PreTrainedTokenizerFast:
    """A STAND-IN for XLM-R's tokenizer, for throughput runs on random weights only.

    XLM-R's SentencePiece model is part of its hub download, so it cannot be built offline. This stand-in
    keeps the interface and the conventions the encoder sees (ids `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3,
    `<s> ... </s>` framing, SentencePiece's `▁` word marker) and spells every
    character as its UTF-8 bytes (ids 4-259; `▁` is 260, `<mask>` 261), so any language tokenizes and
    every id fits XLM-R's embedding table. Its sequences are longer than SentencePiece's (one id per byte,
    not per subword), and its ids mean nothing to pretrained XLM-R weights: never use it with real weights
    or for quality.
    """
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = ([(token, 0.0) for token in specials] + [(f"<0x{byte:02X}>", -1.0) for byte in range(256)]
             + [("▁", -1.0), ("<mask>", 0.0)])
    tokenizer = Tokenizer(Unigram(vocab, unk_id=specials.index("<unk>"), byte_fallback=True))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(),
                                           decoders.Metaspace(replacement="▁", prepend_scheme="always")])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=MULTILINGUAL_TEXT_LENGTH,
    )


# ------------------------------------------------------------------------------------------------------
# Building the Backbone


def _resolve_device(device: torch.device | str | None) -> torch.device:
    """`None` means the GPU when there is one, else the CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _place(modules, device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
    """Move and cast modules in place with `nn.Module.to`.

    diffusers' own `ModelMixin.to` logs a warning about "modules that should be kept in float32"
    whenever a dtype argument is present, even when that list is empty, as it is for SD 1.5's UNet and
    VAE; the plain torch method does the same work without the noise.
    """
    for module in modules:
        nn.Module.to(module, device=device, dtype=dtype)


def _load(what: str, model_id: str, loader, *args, **kwargs):
    """Call a `from_pretrained`; a missing file becomes `MissingWeightsError` naming `model_id`.

    diffusers and transformers report a file absent from the cache as `OSError` (huggingface_hub's
    `LocalEntryNotFoundError` is one too), with messages about connecting to huggingface.co that would
    mislead offline; the original stays attached as `__cause__` for debugging.
    """
    try:
        return loader(*args, **kwargs)
    except OSError as err:
        raise MissingWeightsError(what, model_id) from err


def _load_tokenizer(what: str, model_id: str, **kwargs):
    """Load a tokenizer and make sure it is the real one.

    transformers 5 does not fail when a tokenizer's files are absent: it returns a tokenizer that knows
    only its special tokens (measured: 2 entries for CLIP, 5 for XLM-R) and silently maps every word to
    `<unk>`. Such a tokenizer is treated as missing.
    """
    tokenizer = _load(what, model_id, AutoTokenizer.from_pretrained, model_id, **kwargs)
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise MissingWeightsError(what, model_id, hint=(
            "its tokenizer files are missing or incomplete (transformers built an empty tokenizer); download "
            f"them again, e.g. `huggingface-cli download {model_id}`, and copy the Hugging Face cache here"))
    return tokenizer


def load_multilingual_encoder(spec: str, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                              local_files_only: bool = True) -> tuple[nn.Module, Any]:
    """A method's own multilingual encoder and its tokenizer, from the local cache, in `dtype` on `device`.

    `spec` is a Hugging Face id or folder of any encoder with `last_hidden_state` (e.g.
    FacebookAI/xlm-roberta-large), or `open_clip:MODEL/PRETRAINED` for the text tower of an open_clip
    model whose text side is a Hugging Face transformer (PEA's `mul_clip`: `open_clip:xlm-roberta-large-
    ViT-H-14/frozen_laion5b_s13b_b90k`; its token states, the transformer's last hidden layer). Nothing is
    downloaded; a missing model is a `MissingWeightsError` naming it."""
    from transformers import AutoModel

    target = _resolve_device(device)
    if spec.startswith("open_clip:"):
        import open_clip

        model_name, _, pretrained = spec.removeprefix("open_clip:").partition("/")
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained or None, require_pretrained=bool(pretrained))
            tokenizer = open_clip.get_tokenizer(model_name)
        except (RuntimeError, OSError, ValueError) as err:
            raise MissingWeightsError(f"open_clip model {model_name}", pretrained, hint=(
                f"open_clip could not load it offline ({type(err).__name__}); run `open_clip.create_model("
                f"'{model_name}', pretrained='{pretrained}')` once on a machine with internet access and copy "
                "the Hugging Face cache here")) from None
        if not hasattr(model, "text") or not hasattr(model.text, "transformer") or not hasattr(tokenizer, "tokenizer"):
            raise ConfigError(f"{model_name}'s text tower is not a Hugging Face transformer; use one that is "
                              "(e.g. xlm-roberta-large-ViT-H-14) or a Hugging Face id")
        encoder, tokenizer = model.text.transformer, tokenizer.tokenizer
    else:
        tokenizer = _load_tokenizer(f"{spec} tokenizer", spec, local_files_only=local_files_only)
        encoder = _load(f"{spec} encoder", spec, AutoModel.from_pretrained, spec, dtype=dtype,
                        local_files_only=local_files_only)
    tokenizer.model_max_length = MULTILINGUAL_TEXT_LENGTH
    _place((encoder,), device=target, dtype=dtype)
    return encoder.eval().requires_grad_(False), tokenizer


def load_sd15_backbone(multilingual: str = "xlm-roberta-base", dtype: torch.dtype = torch.float16,
                       device: torch.device | str | None = None, local_files_only: bool = True, *,
                       sd_id: str = SD15_ID, clip_id: str = CLIP_ID,
                       multilingual_id: str | None = None) -> Backbone:
    """The pretrained `sd15` Backbone from the local Hugging Face cache.

    UNet, VAE and noise schedule come from `sd_id`; CLIP (both towers) and the English tokenizer from
    `clip_id`, whose text tower and tokenizer are the ones SD 1.5 was trained with, so SD's own
    `text_encoder` is not loaded twice; the multilingual encoder and tokenizer from `multilingual_id`
    (default: the FacebookAI repo of `multilingual`). Pass other ids (or local folders) for mirrors.

    The weights are loaded straight into `dtype` (float16 halves the 6.6 GB of float32 weights; on a
    CPU prefer bfloat16 or float32) and moved to `device` (default: the GPU when there is one). The
    XLM-R pooler is left out: no method reads it (they use token states), and where a checkpoint lacks
    its weights transformers would initialise it at random, changing `Backbone.fingerprint()` from one
    load to the next. Small files (schedule, tokenizers) are loaded first so a missing model fails fast.
    """
    multilingual_id = multilingual_id or MULTILINGUAL_IDS[_check_multilingual(multilingual)]
    target = _resolve_device(device)
    if target.type == "cpu" and dtype == torch.float16:
        log.warning("float16 on the CPU is slow and not supported by every operation; bfloat16 or float32 "
                    "is the better choice there")
    hub = {"local_files_only": local_files_only}

    scheduler = _load("SD 1.5 noise schedule", sd_id, DDPMScheduler.from_pretrained, sd_id,
                      subfolder="scheduler", **hub)
    noise_scheduler, sample_scheduler = make_schedulers(scheduler.config)
    tokenizer = _load_tokenizer("CLIP ViT-L/14 tokenizer", clip_id, **hub)
    multilingual_tokenizer = _load_tokenizer(f"{multilingual} tokenizer", multilingual_id, **hub)
    multilingual_tokenizer.model_max_length = MULTILINGUAL_TEXT_LENGTH

    log.info("loading sd15 weights (%s, %s, %s) as %s", sd_id, clip_id, multilingual_id, dtype)
    unet = _load("SD 1.5 UNet", sd_id, UNet2DConditionModel.from_pretrained, sd_id, subfolder="unet",
                 dtype=dtype, **hub)
    vae = _load("SD 1.5 VAE", sd_id, AutoencoderKL.from_pretrained, sd_id, subfolder="vae", dtype=dtype, **hub)
    clip = _load("CLIP ViT-L/14", clip_id, CLIPModel.from_pretrained, clip_id, dtype=dtype, **hub)
    encoder = _load(f"{multilingual} encoder", multilingual_id, XLMRobertaModel.from_pretrained,
                    multilingual_id, add_pooling_layer=False, dtype=dtype, **hub)

    _place((unet, vae, clip, encoder), device=target)
    return Backbone(
        preset="sd15", clip=clip, tokenizer=tokenizer, unet=unet, noise_scheduler=noise_scheduler,
        sample_scheduler=sample_scheduler, multilingual=encoder, multilingual_tokenizer=multilingual_tokenizer,
        image_size=unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1), vae=vae,
        dtype=dtype, english_attention_mask=False,  # as SD 1.5 was trained and diffusers' encode_prompt runs
        info={"source": "pretrained", "ids": {"unet": sd_id, "vae": sd_id, "scheduler": sd_id, "clip": clip_id,
                                              "tokenizer": clip_id, "multilingual": multilingual_id}},
    )


def build_sd15_backbone_from_configs(multilingual: str = "xlm-roberta-base", small: bool = False, *,
                                     dtype: torch.dtype = torch.float32,
                                     device: torch.device | str | None = None, seed: int = 0) -> Backbone:
    """An `sd15` Backbone with random weights from the in-code configs, for throughput runs and tests.

    The modules are created directly on `device` (default: the GPU when there is one), so the full
    preset (1.65B parameters, 6.6 GB in float32) never passes through host memory on a GPU machine; then
    cast to `dtype`. The weights depend only on `seed` (the global random state is left as it was), so
    the fingerprint is reproducible. `small=True` builds the scaled-down copy (see `sd15_configs`).

    Tokenizers: the English one is the real CLIP tokenizer (`clip_tokenizer_offline`); the multilingual
    one is the byte-level stand-in (`byte_level_multilingual_tokenizer`), since XLM-R's SentencePiece
    model cannot be had offline. Numbers measured with it are throughput, never quality.
    """
    target = _resolve_device(device)
    configs = sd15_configs(multilingual, small=small)
    cuda_devices = [target.index if target.index is not None else torch.cuda.current_device()] \
        if target.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        modules = sd15_architectures(multilingual, device=target, small=small, pooler=False)
    noise_scheduler, sample_scheduler = make_schedulers(configs["scheduler"])
    log.info("built sd15%s from configs with random weights (seed %d): %s", " (small)" if small else "", seed,
             {name: f"{count / 1e6:.1f}M" for name, count in parameter_counts(modules).items()})

    _place(modules.values(), dtype=dtype)
    return Backbone(
        preset="sd15", clip=modules["clip"], tokenizer=clip_tokenizer_offline(), unet=modules["unet"],
        noise_scheduler=noise_scheduler, sample_scheduler=sample_scheduler, multilingual=modules["multilingual"],
        multilingual_tokenizer=byte_level_multilingual_tokenizer(),
        image_size=configs["unet"]["sample_size"] * 2 ** (len(configs["vae"]["block_out_channels"]) - 1),
        vae=modules["vae"],
        info={"source": "configs", "weights": f"random (seed {seed})", "small": small,
              "architectures_of": {"unet": SD15_ID, "vae": SD15_ID, "clip": CLIP_ID,
                                   "multilingual": MULTILINGUAL_IDS[multilingual]},
              "multilingual_tokenizer": "byte-level stand-in (throughput only)"},
        dtype=dtype, english_attention_mask=False,
    )
