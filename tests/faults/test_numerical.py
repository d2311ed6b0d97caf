"""Numerical faults in a real method: a NaN or infinite loss term stops the run with the step and the
term named, and the last good checkpoint stays (the run resumes from it once the cause is fixed)."""

import dataclasses

import pytest
import torch

from xlcore.backbone import load_backbone
from xlcore.config import WorldConfig, apply_smoke
from xlcore.methods._base import build_method
from xlcore.registry import METHODS
from xlcore.train import NonFiniteLossError, Trainer
from xlcore.world import World


@pytest.mark.parametrize("poison", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, poison, ledger):
    world = World(apply_smoke(WorldConfig()))
    method = build_method("pea", load_backbone("toy"), apply_smoke(METHODS.get("pea").config_class()), language="de",
                          languages=world.languages)
    stage = method.stages[0]
    config = dataclasses.replace(method.train_config(stage), steps=6, checkpoint_every_steps=2, log_every=1,
                                 checkpoint_every_minutes=60.0)
    task = method.task(stage, world)
    honest_loss = task.loss
    calls = {"n": 0}

    def poisoned(batch):
        terms = honest_loss(batch)
        calls["n"] += 1
        if calls["n"] == 4:  # step index 3: after the checkpoint at step 2
            terms = {**terms, "loss": terms["loss"] * poison}
        return terms

    task.loss = poisoned
    with pytest.raises(NonFiniteLossError, match=rf"loss term 'loss' is {poison} at step 3; the last good checkpoint "
                                                 r"in .*checkpoint is kept") as caught:
        Trainer(task, config, tmp_path).fit()
    task.loss = honest_loss  # the cause fixed: the run resumes from the good checkpoint and finishes
    trainer = Trainer(task, config, tmp_path)
    assert trainer.load_checkpoint() and trainer.step == 2
    trainer.fit()
    assert trainer.step == 6 and all(torch.isfinite(p).all() for p in trainer.params)
    ledger.fault(f"{'NaN' if poison != poison else 'infinite'} loss injected at step 3 of PEA", True,
                 how=f"stopped: {str(caught.value)[:60]}...; resumed from step 2 once fixed")
