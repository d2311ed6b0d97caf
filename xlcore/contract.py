"""The types the layers hand each other, below all of them: what a method's `encode` returns
(`Conditioning`) and what an evaluator measures (`Measurement`, for a run described by `RunInfo`). Methods,
evaluators, cells and the demo import these from here, so none of them needs another's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Conditioning:
    """What `encode` returns: token states for the UNet's cross-attention, and a pooled embedding in
    the method's joint image-text space (None for methods without one, e.g. the diffusion adapters)."""

    token_states: torch.Tensor  # (B, L, D): what `method.unet` reads as encoder_hidden_states (D = the UNet's
    # cross_attention_dim, except for a method whose UNet is wrapped: the LLM connector hands its language
    # model's states, which its wrapped UNet turns into the context at every timestep)
    pooled: torch.Tensor | None  # (B, P), comparable with `method.encode_images`


@dataclass(frozen=True)
class Measurement:
    """Numbers measured under one protocol: `metrics` on `benchmark` in `language`."""

    language: str
    benchmark: str
    protocol: str
    metrics: dict[str, float]
    stage: str | None = None  # overrides the run's stage (cost is measured per training stage)
    # Per-prompt outcomes behind some metrics (name -> one 0/1 per prompt in prompt order, -1 where the
    # judgement does not apply), kept beside the table so cross-lingual readings can pair prompts.
    per_prompt: dict[str, list[int]] | None = None


@dataclass(frozen=True)
class RunInfo:
    """Who the measurements belong to: the results table's run columns."""

    run_id: str
    method: str
    stage: str
    config: Any
    seed: int = 0
    notes: str = ""
