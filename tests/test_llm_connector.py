"""The LLM connector (issue 26) beyond what the registry table checks: the context is recomputed at every
timestep, padding cannot leak into it, the X2I recipe reads text only and distils the frozen UNet, and the
connector at ELLA's dimensions has ELLA's parameter count."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from xlcore.config import apply_smoke
from xlcore.errors import ConfigError
from xlcore.methods._base import build_method, default_config
from xlcore.methods.llm_connector import TimestepAwareConnector


def connector_method(backbone, **changes):
    config = dataclasses.replace(apply_smoke(default_config("ella", backbone.preset)), **changes)
    return build_method("ella", backbone, config)


def test_the_context_follows_the_timestep_and_ignores_padding(smoke_backbone):
    method = connector_method(smoke_backbone)
    with torch.no_grad():  # the AdaLN modulations start at zero: give them weights so the timestep matters
        for block in method.connector.blocks:
            block.norm_latents.modulation.weight.normal_(0, 0.1)
    states = method.encode(["ein roter Kreis", ""], "de").token_states
    padding = states.abs().amax(-1) == 0
    assert padding[0].any() and not padding[0].all()
    early = method.connector(states, padding, torch.tensor(10))
    late = method.connector(states, padding, torch.tensor(900))
    assert early.shape == (2, method.config.latents, smoke_backbone.unet.config.cross_attention_dim)
    assert not torch.allclose(early, late)
    noisy = states.clone()
    noisy[padding] = torch.randn_like(noisy[padding])  # whatever stands at padding never reaches the context
    assert torch.equal(method.connector(noisy, padding, torch.tensor(10)), early)
    cut = method.connector(states[:1, ~padding[0]], None, torch.tensor(10))  # upstream cuts a prompt to its length
    assert torch.allclose(cut[0], early[0], atol=1e-5)


def test_the_wrapped_unet_is_the_backbones_own_and_draws(smoke_backbone):
    method = connector_method(smoke_backbone)
    assert method.unet.inner is smoke_backbone.unet
    assert not any(p is q for p in method.trainable_parameters().values() for q in smoke_backbone.unet.parameters())
    states = method.encode(["ein roter Kreis"], "de").token_states
    sample = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = method.unet(sample, torch.tensor(500), encoder_hidden_states=states).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()


def test_x2i_reads_english_text_only_and_distils_the_frozen_unet(smoke_backbone, small_world):
    method = connector_method(smoke_backbone, recipe="x2i", teacher_sample_steps=2)
    data = method.stage_data("connector", small_world)
    assert set(data.features.values()) == {"multilingual:text", "clip_text:text"}  # no image feature
    assert "pixel_values" not in data.dataset[0]
    task = method.task("connector", small_world)
    terms = task.loss(task.inputs(task.batch(list(range(4)))))
    assert torch.isfinite(terms["loss"]) and terms["loss"] > 0
    terms["loss"].backward()  # the connector learns, through the frozen UNet, which stays frozen
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.connector.parameters())
    assert all(p.grad is None for p in smoke_backbone.unet.parameters())
    with pytest.raises(ConfigError, match="recipe must be one of ella, x2i"):
        connector_method(smoke_backbone, recipe="glue")


def test_the_connector_at_ellas_dimensions_has_ellas_parameter_count():
    with torch.device("meta"):
        connector = TimestepAwareConnector(2048, 768, 64, 6, 8, 320)
    assert sum(p.numel() for p in connector.parameters()) == 66_820_608
