"""The one training loop: exact resume, deterministic batches, NaN guard, EMA, tied-weight checkpoints."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from xlcore.train import NonFiniteLossError, TrainConfig, Trainer, read_log, step_indices


class RegressionTask:
    """y = x @ w_true + noise: enough to see weights move and to compare runs bit for bit."""

    def __init__(self, poison_at: int | None = None, interrupt_at: int | None = None):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(64, generator=generator)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))
        torch.manual_seed(1)
        for p in self.model.parameters():
            nn.init.normal_(p, std=0.3)
        self.poison_at, self.interrupt_at, self.calls = poison_at, interrupt_at, 0

    def trainable_modules(self):
        return {"model": self.model}

    def dataset_size(self):
        return len(self.x)

    def batch(self, indices):
        return self.x[indices], self.y[indices]

    def loss(self, batch):
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt("simulated kill")
        x, y = batch
        loss = ((self.model(x).squeeze(-1) - y) ** 2).mean()
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        return {"loss": loss, "abs_error": (self.model(x).squeeze(-1) - y).abs().mean()}


CONFIG = TrainConfig(steps=12, batch_size=16, lr=0.05, warmup_steps=2, checkpoint_every_steps=4,
                     checkpoint_every_minutes=60.0, log_every=1)


def weights(task):
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def test_batches_are_a_function_of_the_step():
    assert step_indices(3, 16, 64, 0) == step_indices(3, 16, 64, 0)
    epoch = [i for s in range(4) for i in step_indices(s, 16, 64, 0)]
    assert sorted(epoch) == list(range(64))  # one epoch visits every item once
    assert step_indices(4, 16, 64, 0) != step_indices(0, 16, 64, 0)  # the next epoch is reshuffled
    assert len(step_indices(0, 10, 7, 0)) == 10  # a batch larger than the data wraps into the next epoch


def test_interrupted_run_resumes_to_bit_identical_weights(tmp_path):
    straight = RegressionTask()
    Trainer(straight, CONFIG, tmp_path / "straight").fit()

    interrupted = RegressionTask(interrupt_at=10)  # killed during step 10; the last checkpoint is step 8
    with pytest.raises(KeyboardInterrupt):
        Trainer(interrupted, CONFIG, tmp_path / "resumed").fit()
    before = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())["train_seconds"]
    resumed = RegressionTask()  # a fresh process: new model object, weights come from the checkpoint
    trainer = Trainer(resumed, CONFIG, tmp_path / "resumed")
    trainer.fit()
    assert trainer.step == 12
    assert 0 < before < trainer.train_seconds  # training time adds up over sessions
    for name, value in weights(straight).items():  # dropout included: the RNG state was checkpointed
        assert torch.equal(weights(resumed)[name], value), name
    assert [r["step"] for r in read_log(tmp_path / "resumed")] == list(range(1, 13))


def test_loss_goes_down_and_every_term_is_logged(tmp_path):
    history = Trainer(RegressionTask(), dataclasses.replace(CONFIG, steps=60), tmp_path).fit()
    first, last = history[:5], history[-5:]
    assert sum(r["loss"] for r in last) < sum(r["loss"] for r in first) / 4
    assert {"loss", "abs_error", "grad_norm", "lr", "step"} <= set(history[0])
    saved = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert saved["step"] == 60


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    task = RegressionTask(poison_at=7)  # steps 1-6 are fine; the checkpoint at step 4 survives
    with pytest.raises(NonFiniteLossError, match=r"loss term 'loss' is nan at step 6"):
        Trainer(task, CONFIG, tmp_path).fit()
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 4


def test_ema_tracks_the_weights(tmp_path):
    task = RegressionTask()
    trainer = Trainer(task, dataclasses.replace(CONFIG, ema_decay=0.5), tmp_path)
    trainer.fit()
    ema = trainer.ema_state()
    live = trainer._trainable_state()
    assert ema.keys() == live.keys()
    assert any(not torch.equal(ema[k], live[k]) for k in ema)
    assert all(torch.equal(v, weights(task)[k.removeprefix("model.")]) for k, v in live.items())


def test_a_task_without_trainable_parameters_is_refused(tmp_path):
    task = RegressionTask()
    task.model.requires_grad_(False)
    with pytest.raises(Exception, match="no trainable parameters"):
        Trainer(task, CONFIG, tmp_path)


def test_warm_start_continues_from_exported_weights_at_their_step(tmp_path):
    first = RegressionTask()
    Trainer(first, dataclasses.replace(CONFIG, steps=4), tmp_path / "a").fit()
    second = RegressionTask()
    trainer = Trainer(second, CONFIG, tmp_path / "b")
    trainer.warm_start({"model": weights(first)}, step=4)
    assert all(torch.equal(weights(second)[k], v) for k, v in weights(first).items())
    trainer.fit()
    assert trainer.step == 12 and read_log(tmp_path / "b")[0]["step"] == 5
    with pytest.raises(Exception, match="resume from it"):
        Trainer(RegressionTask(), CONFIG, tmp_path / "b").warm_start({"model": weights(first)}, step=4)


def test_stages_with_different_mixed_precision_run_in_one_process(tmp_path):
    Trainer(RegressionTask(), dataclasses.replace(CONFIG, steps=2), tmp_path / "fp32").fit()
    trainer = Trainer(RegressionTask(), dataclasses.replace(CONFIG, steps=2, mixed_precision="bf16"), tmp_path / "bf16")
    trainer.fit()
    assert trainer.accelerator.mixed_precision == "bf16"
