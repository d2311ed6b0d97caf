"""The frozen bundle every method builds on (DESIGN.md section 3).

A `Backbone` holds the English CLIP (its text tower gives the token states that condition the UNet and
a pooled embedding in the joint image-text space; its image tower embeds images), the UNet with its
noise schedulers, an optional VAE, the multilingual encoder with its tokenizer and, on the toy preset,
the world's attribute scorer. Everything is frozen and put in eval mode when the bundle is built;
`fingerprint()` hashes every weight so that later code can prove nothing changed and can key caches.
"""

from __future__ import annotations

import dataclasses

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

# OpenAI CLIP's pixel normalisation; the toy CLIP is trained with the same constants so both presets
# share one preprocessing path.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_normalise(pixels: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (B, 3, H, W) -> CLIP's normalised input."""
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def clip_pixels(images: torch.Tensor, size: int, device: torch.device | str) -> torch.Tensor:
    """Square images in [0, 1] as an external CLIP tower's input: bicubic resize to `size`, clamped to [0, 1]
    (bicubic overshoots), OpenAI normalisation; what open_clip's and Hugging Face's processors do for square
    images."""
    pixels = images.float().to(device)
    if pixels.shape[-1] != size:
        pixels = nn.functional.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return clip_normalise(pixels)


def warn_if_cut(tokenizer, texts: list[str], tokens, max_length: int) -> None:
    """Log which texts the encoder reads only in part (the tokenizer truncates silently). Only rows
    that fill every position can have been cut, so only those are tokenized again."""
    full = tokens["attention_mask"].bool().all(dim=1).nonzero().flatten().tolist()
    if not full:
        return
    cut = [texts[i] for i in full if len(tokenizer(texts[i], truncation=False, verbose=False)["input_ids"]) > max_length]
    if cut:
        log.warning("%d of %d texts are longer than the text encoder reads (%d tokens) and were cut, e.g. %r",
                    len(cut), len(texts), max_length, cut[0][:80])


def module_fingerprint(modules: dict[str, nn.Module]) -> str:
    """SHA-256 (16 hex digits) over every parameter and buffer (name, dtype, shape, bytes) of `modules`."""
    digest = hashlib.sha256()
    for name, module in sorted(modules.items()):
        for key, tensor in sorted(module.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}.{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


@dataclass

class Backbone:
    """The frozen models of one preset. Build with `load_backbone(preset)`."""

    preset: str
    clip: nn.Module  # transformers CLIPModel
    tokenizer: Any  # English tokenizer (transformers tokenizer API)
    unet: nn.Module  # diffusers UNet2DConditionModel
    noise_scheduler: Any  # training scheduler (DDPM)
    sample_scheduler: Any  # sampling scheduler (DDIM)
    multilingual: nn.Module  # transformers XLMRobertaModel
    multilingual_tokenizer: Any
    image_size: int  # pixel side of generated images
    vae: nn.Module | None = None  # diffusers AutoencoderKL, or None for pixel-space diffusion
    scorer: nn.Module | None = None  # world attribute scorer (toy preset)
    dtype: torch.dtype = torch.float32
    info: dict[str, Any] = field(default_factory=dict)  # provenance: ids, data seed, reproduce command
    # Whether the English text tower reads the attention mask. Stable Diffusion 1.5 was trained on, and
    # diffusers' pipeline computes, unmasked CLIP states over all 77 padded positions (the padding
    # positions' states differ with a mask, and the UNet attends to them); the toy CLIP and UNet were
    # pretrained on masked states (xlcore/backbone/toy.py), so the toy keeps the mask.
    english_attention_mask: bool = True

    def __post_init__(self) -> None:
        self.freeze()

    def with_multilingual(self, encoder: nn.Module, tokenizer: Any, source: str) -> "Backbone":
        """The same bundle with another multilingual encoder and tokenizer (a method that reads the encoder
        its paper used); the other modules are shared, not copied."""
        ids = {**self.info.get("ids", {}), "multilingual": source}
        return dataclasses.replace(self, multilingual=encoder, multilingual_tokenizer=tokenizer,
                                   info={**self.info, "ids": ids})

    def named_modules_dict(self) -> dict[str, nn.Module]:
        """The bundle's neural modules by name (the scorer is an evaluator, listed when present)."""
        modules = {"clip": self.clip, "unet": self.unet, "multilingual": self.multilingual}
        if self.vae is not None:
            modules["vae"] = self.vae
        if self.scorer is not None:
            modules["scorer"] = self.scorer
        return modules

    def freeze(self) -> "Backbone":
        for module in self.named_modules_dict().values():
            module.requires_grad_(False)
            module.eval()
        return self

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Backbone":
        """Move (and cast) every module; the scorer stays float32 since it is an evaluator."""
        for name, module in self.named_modules_dict().items():
            cast = {} if dtype is None or name == "scorer" else {"dtype": dtype}
            module.to(device=device, **cast)
        if dtype is not None:
            self.dtype = dtype
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def fingerprint(self, modules: tuple[str, ...] | None = None) -> str:
        """SHA-256 over every parameter and buffer (name, dtype, shape, bytes) of the chosen modules."""
        chosen = {name: m for name, m in self.named_modules_dict().items() if modules is None or name in modules}
        return module_fingerprint(chosen)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per module, the CLIP towers and text projection separately."""
        counts = {name: sum(p.numel() for p in m.parameters()) for name, m in self.named_modules_dict().items()}
        counts["clip.text"] = sum(p.numel() for p in self.clip.text_model.parameters())
        counts["clip.vision"] = sum(p.numel() for p in self.clip.vision_model.parameters())
        return counts

    # ----------------------------------------------------------------------------------------------
    # Encoders (all without gradients: the backbone is frozen)

    def tokenize_english(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(list(texts), padding="max_length", truncation=True,
                                max_length=self.tokenizer.model_max_length, return_tensors="pt")
        warn_if_cut(self.tokenizer, texts, tokens, self.tokenizer.model_max_length)
        return tokens.to(self.device)

    @torch.no_grad()
    def english_text_outputs(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The English text tower's outputs: `states` (B, L, D), the last hidden states after the final
        layer norm, which is what Stable Diffusion 1.5 conditions on (unmasked on sd15, as diffusers'
        `encode_prompt`: see `english_attention_mask`); `pooler` (B, D), the EOS state
        (AltCLIP's teacher target); `pooled` (B, P), the pooler output projected into the joint space."""
        tokens = self.tokenize_english(texts)
        mask = tokens.get("attention_mask") if self.english_attention_mask else None
        out = self.clip.text_model(input_ids=tokens["input_ids"], attention_mask=mask)
        return {"states": out.last_hidden_state, "pooler": out.pooler_output,
                "pooled": self.clip.text_projection(out.pooler_output)}

    def encode_english(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states for the UNet's cross-attention (B, L, D) and the projected pooled embedding (B, P)."""
        out = self.english_text_outputs(texts)
        return out["states"], out["pooled"]

    @torch.no_grad()
    def diffusion_input(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the UNet diffuses for images in [0, 1]: pixels in [-1, 1] (toy), or VAE latents (sd15).

        The latent is the posterior mean (not a sample), so it is a pure function of the image and can
        be cached; the sampled latent differs from it by the VAE's small posterior noise. Images reach the
        VAE at the backbone's resolution (`image_size`).
        """
        x = pixel_values.to(self.device, torch.float32) * 2 - 1
        if self.vae is None:
            return x
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            # The VAE sees images at the resolution the model was trained at (512 for SD 1.5): smaller ones
            # (the world's renders) are upsampled, as a real corpus's images are resized when read.
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                          align_corners=False, antialias=True)
        latents = self.vae.encode(x.to(self.dtype)).latent_dist.mean
        return latents * self.vae.config.scaling_factor

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings (B, P) for images in [0, 1], resized to the image tower's input."""
        size = self.clip.config.vision_config.image_size
        pixels = pixel_values.to(self.device, torch.float32)
        if pixels.shape[-1] != size:
            pixels = nn.functional.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)
        pixels = clip_normalise(pixels).to(self.dtype)
        out = self.clip.vision_model(pixel_values=pixels)
        return self.clip.visual_projection(out.pooler_output)

    def tokenize_multilingual(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        max_length = max_length or self.multilingual_tokenizer.model_max_length
        tokens = self.multilingual_tokenizer(list(texts), padding="max_length", truncation=True,
                                             max_length=max_length, return_tensors="pt")
        warn_if_cut(self.multilingual_tokenizer, texts, tokens, max_length)
        return tokens.to(self.device)

    @torch.no_grad()
    def encode_multilingual(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The multilingual encoder's last hidden states (B, L, H) and attention mask (B, L)."""
        tokens = self.tokenize_multilingual(texts)
        out = self.multilingual(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return out.last_hidden_state, tokens["attention_mask"]
