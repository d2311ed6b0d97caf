"""Stages two methods run identically are trained once (issue 21): AltDiffusion's first two stages are
AltCLIP's. The shared copy must be exactly what AltDiffusion would have trained itself, its cost must be the
measured cost of training it, and nothing may be shared when a setting the stage reads differs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from xlcore.config import apply_smoke
from xlcore.experiment import shared_stage_key, train_method
from xlcore.methods._base import build_method, default_config


def method(name, backbone, **changes):
    config = dataclasses.replace(apply_smoke(default_config(name, backbone.preset)), **changes)
    return build_method(name, backbone, config, seed=3)


def student(m) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.student.state_dict().items()}


def test_altdiffusion_takes_altclips_stages_exactly_as_it_would_train_them(smoke_backbone, small_world, tmp_path):
    store = tmp_path / "shared_stages"
    altclip = method("altclip", smoke_backbone)
    costs = {c.stage: c for c in train_method(altclip, small_world, tmp_path / "altclip", stage_store=store)}
    assert sorted(p.name.split("-")[0] for p in store.iterdir() if p.is_dir()) == ["contrastive", "teacher"]
    assert not any(c.shared_from for c in costs.values())

    shared = method("altdiffusion", smoke_backbone, quality_stage=False)
    shared_costs = {c.stage: c for c in train_method(shared, small_world, tmp_path / "altdiffusion", stage_store=store)}
    assert shared_costs["teacher"].shared_from.startswith("teacher-") and shared_costs["contrastive"].shared_from
    assert not shared_costs["concept"].shared_from
    for stage in ("teacher", "contrastive"):  # the measured time of training it, as its last checkpoint recorded it
        # (each run also counts the writing of that checkpoint after it, a few milliseconds here)
        assert shared_costs[stage].seconds == pytest.approx(costs[stage].seconds, abs=0.5)
        assert shared_costs[stage].seconds > 0 and shared_costs[stage].steps == costs[stage].steps
    assert not (store / next(iter(p.name for p in store.iterdir() if p.is_dir())) / "checkpoint.prev").exists()

    alone = method("altdiffusion", smoke_backbone, quality_stage=False)
    train_method(alone, small_world, tmp_path / "alone")  # no store: every stage trained here
    for key, value in student(alone).items():  # the same student, so the same concept stage after it
        assert torch.equal(value, student(shared)[key]), key
    assert torch.equal(alone.unet_copy.state_dict()["up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"],
                       shared.unet_copy.state_dict()["up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"])


def test_nothing_is_shared_when_the_stage_reads_other_settings(smoke_backbone):
    configs = lambda m: {s: m.train_config(s) for s in m.stages}  # noqa: E731
    base = method("altclip", smoke_backbone)
    key = shared_stage_key(base, "contrastive", configs(base), {"backbone": "b"})
    assert key == shared_stage_key(method("altdiffusion", smoke_backbone), "contrastive",
                                   configs(method("altdiffusion", smoke_backbone)), {"backbone": "b"})
    assert key != shared_stage_key(base, "contrastive", configs(base), {"backbone": "other"})
    dropout = method("altclip", smoke_backbone, teacher_dropout=0.0)
    assert key != shared_stage_key(dropout, "contrastive", configs(dropout), {"backbone": "b"})
    shorter = {**configs(base), "teacher": dataclasses.replace(base.train_config("teacher"), steps=1)}
    assert key != shared_stage_key(base, "contrastive", shorter, {"backbone": "b"})  # a stage before it differs
    assert shared_stage_key(method("altdiffusion", smoke_backbone), "concept", {}, {}) is None
    seeded = build_method("altclip", smoke_backbone, apply_smoke(default_config("altclip", "toy")), seed=4)
    assert key != shared_stage_key(seeded, "contrastive", configs(seeded), {"backbone": "b"})
