"""The frozen backbones: the `Backbone` bundle and the loaders of each preset."""

from __future__ import annotations

from .base import Backbone

__all__ = ["Backbone", "load_backbone"]


def load_backbone(preset: str, **kwargs) -> Backbone:
    """The frozen backbone of `preset`: the shipped toy backbone, or Stable Diffusion 1.5 from the local
    Hugging Face cache (a missing weight raises MissingWeightsError naming the id)."""
    from ..errors import ConfigError

    if preset == "toy":
        from .toy import load_toy_backbone

        return load_toy_backbone(**kwargs)
    if preset == "sd15":
        from .sd15 import load_sd15_backbone

        return load_sd15_backbone(**kwargs)
    raise ConfigError(f"unknown preset {preset!r}; presets with a backbone: sd15, toy")
