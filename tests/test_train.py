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
    trainer.use_ema_weights()  # what train_method does after each stage
    assert all(torch.equal(v, weights(task)[k.removeprefix("model.")]) for k, v in ema.items())


def test_the_ema_warmup_is_diffusers_and_forgets_the_initial_weights(tmp_path):
    from diffusers.training_utils import EMAModel

    from xlcore.train import ema_decay_at

    reference = EMAModel([nn.Parameter(torch.zeros(1))], decay=0.999)  # no update_after_step, no power warmup
    assert [ema_decay_at(0.999, n, True) for n in (1, 2, 3, 10_000)] == \
        [reference.get_decay(n) for n in (1, 2, 3, 10_000)] == [0.0, 2 / 11, 3 / 12, 0.999]
    assert ema_decay_at(0.999, 2, False) == 0.999  # without warmup: the recorded runs' constant decay
    task = RegressionTask()
    trainer = Trainer(task, dataclasses.replace(CONFIG, steps=1, ema_decay=0.999, ema_warmup=True), tmp_path)
    initial = {k: v.clone() for k, v in trainer._trainable_state().items()}
    trainer.fit()
    ema, live = trainer.ema_state(), trainer._trainable_state()
    # the first update copies the weights: nothing of the initial weights is left in the average
    assert all(torch.equal(ema[k], live[k]) and not torch.equal(ema[k], initial[k]) for k in ema)


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


class PrecisionProbe(RegressionTask):
    """Records the dtype the model's forward computes in (what autocast decides)."""

    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def loss(self, batch):
        x, y = batch
        out = self.model(x).squeeze(-1)
        self.dtypes.add(out.dtype)
        return {"loss": ((out.float() - y) ** 2).mean()}


def test_each_stage_trains_in_its_own_precision_in_one_process(tmp_path):
    """A bf16 stage computes its loss under bf16 autocast, and a float32 stage after it in the same process
    is back in float32 (accelerate keeps one precision per process; the Trainer's autocast is per run)."""
    bf16, fp32 = PrecisionProbe(), PrecisionProbe()
    Trainer(bf16, dataclasses.replace(CONFIG, steps=2, mixed_precision="bf16"), tmp_path / "bf16").fit()
    Trainer(fp32, dataclasses.replace(CONFIG, steps=2), tmp_path / "fp32").fit()
    assert bf16.dtypes == {torch.bfloat16} and fp32.dtypes == {torch.float32}
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # weights stay float32


class NoDropoutRegression(RegressionTask):
    """RegressionTask without dropout: its loss is a mean over independent samples, so splitting a batch
    into micro-batches must not change the update."""

    def __init__(self):
        super().__init__()
        self.model[2] = nn.Identity()


@pytest.mark.parametrize("micro_batches", [2, 4])
def test_accumulated_micro_batches_give_the_update_of_the_whole_batch(tmp_path, micro_batches):
    config = dataclasses.replace(CONFIG, steps=6, max_grad_norm=100.0)
    whole, split = NoDropoutRegression(), NoDropoutRegression()
    history_whole = Trainer(whole, config, tmp_path / "whole").fit()
    history_split = Trainer(split, dataclasses.replace(config, grad_accumulation=micro_batches), tmp_path / "split").fit()
    for a, b in zip(history_whole, history_split):  # the same gradient norm: no second division by k
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    for name, value in weights(whole).items():
        assert torch.allclose(weights(split)[name], value, atol=1e-6), name


class _InfGradient(torch.autograd.Function):
    """Identity forward; an infinite gradient backward (what an fp16 overflow looks like)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class OverflowAt(NoDropoutRegression):
    """A loss small enough for fp16 at the scaler's initial 2^16 (x 1e-3), whose gradients overflow on the
    given optimizer steps (1-based) while the loss itself stays finite."""

    def __init__(self, overflow_steps=()):
        super().__init__()
        self.overflow_steps = set(overflow_steps)

    def loss(self, batch):
        self.calls += 1
        x, y = batch
        out = self.model(x).squeeze(-1)
        if self.calls in self.overflow_steps:
            out = _InfGradient.apply(out)
        return {"loss": 1e-3 * ((out.float() - y) ** 2).mean()}


def test_fp16_clips_the_unscaled_norm_and_skips_an_overflowing_step(tmp_path):
    """fp16 on the CPU: the loss is scaled by 2^16 for backward, but clipping and the logged norm see the
    unscaled gradient (the float32 run's, to fp16 precision); a step whose gradients overflow leaves the
    weights alone, is counted and backs the scale off; the next steps train again."""
    config = dataclasses.replace(CONFIG, steps=4, max_grad_norm=1e-4, checkpoint_every_steps=100)
    fp32_task = OverflowAt()
    reference = Trainer(fp32_task, dataclasses.replace(config, steps=1), tmp_path / "fp32").fit()
    task = OverflowAt(overflow_steps={3})
    trainer = Trainer(task, dataclasses.replace(config, mixed_precision="fp16"), tmp_path / "fp16")
    assert trainer.scaler.is_enabled() and trainer.scaler.get_scale() == 2.0 ** 16
    before = {}

    original = trainer.train_step

    def recording_step(*args, **kwargs):
        before[trainer.step] = weights(task)
        return original(*args, **kwargs)

    trainer.train_step = recording_step
    history = trainer.fit()
    assert history[0]["grad_norm"] == pytest.approx(reference[0]["grad_norm"], rel=2e-2)  # not x 65,536
    assert history[0]["grad_norm"] > 10 * config.max_grad_norm  # so clipping was active
    initial = weights(OverflowAt())
    update_fp16 = torch.cat([(before[1][k] - initial[k]).flatten() for k in initial])
    update_fp32 = torch.cat([(weights(fp32_task)[k] - initial[k]).flatten() for k in initial])
    # Clipped on the unscaled norm, the first update is the float32 run's (up to fp16 rounding); a clip on
    # the scaled norm would shrink the gradient 65,536 times more, below Adam's epsilon.
    assert torch.nn.functional.cosine_similarity(update_fp16, update_fp32, dim=0) > 0.99
    assert float(update_fp16.norm()) == pytest.approx(float(update_fp32.norm()), rel=0.05)
    assert history[2].get("skipped") == 1.0 and trainer.skipped_steps == 1
    assert all(torch.equal(before[2][k], before[3][k]) for k in before[2])  # step 3 changed nothing
    assert not all(torch.equal(before[3][k], v) for k, v in weights(task).items())  # step 4 trained
    assert trainer.scaler.get_scale() == 2.0 ** 15
    state = json.loads((tmp_path / "fp16" / "checkpoint" / "state.json").read_text())
    assert state["skipped_steps"] == 1 and state["grad_scaler"]["scale"] == 2.0 ** 15  # a resume keeps both


class TwoModuleTask(RegressionTask):
    """The regression model split in two named modules (as full fine-tuning's encoder and UNet)."""

    def trainable_modules(self):
        return {"first": self.model[0], "second": self.model[3]}


def test_lr_scale_sets_each_modules_learning_rate_and_zero_freezes_it(tmp_path):
    from xlcore.errors import ConfigError

    task = TwoModuleTask()
    before = weights(task)
    config = dataclasses.replace(CONFIG, steps=4, lr_scale={"second": 0.0})
    trainer = Trainer(task, config, tmp_path / "scaled")
    trainer.fit()
    after = weights(task)
    assert all(torch.equal(before[k], after[k]) for k in ("3.weight", "3.bias"))  # scale 0: never moves
    assert not torch.equal(before["0.weight"], after["0.weight"])
    rates = {g["lr_scale"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert rates[0.0] == 0.0 and rates[1.0] > 0
    half = Trainer(TwoModuleTask(), dataclasses.replace(CONFIG, lr_scale={"first": 0.5}), tmp_path / "half")
    half.train_step()
    by_scale = {g["lr_scale"]: g["lr"] for g in half.optimizer.param_groups}
    assert by_scale[0.5] == pytest.approx(0.5 * by_scale[1.0])
    with pytest.raises(ConfigError, match="lr_scale names \\['encoder'\\]"):
        Trainer(TwoModuleTask(), dataclasses.replace(CONFIG, lr_scale={"encoder": 2.0}), tmp_path / "bad")


def test_the_epoch_step_schedule_multiplies_the_rate_once_per_epoch_of_the_stages_data():
    """GlueGen's StepLR (gamma 0.5 stepped every epoch): with 10 items at batch 4 an epoch ends within step 2,
    so steps 0-2 train at lr, 3-4 at lr/2 (items 12-19 belong to the second epoch), 5-7 at lr/4."""
    from xlcore.errors import XlcoreError
    from xlcore.train import _lr_factor

    config = dataclasses.replace(CONFIG, schedule="epoch_step", decay_factor=0.5, batch_size=4, warmup_steps=0)
    assert [_lr_factor(config, step, 10) for step in range(8)] == [1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25]
    with pytest.raises(XlcoreError, match="dataset size"):
        _lr_factor(config, 3)


def test_a_budget_in_epochs_sets_the_steps_from_the_data(tmp_path):
    """GlueGen gives 4 epochs, not steps: the Trainer counts them on the stage's data (RegressionTask: 64 items)."""
    from xlcore.errors import ConfigError

    trainer = Trainer(RegressionTask(), dataclasses.replace(CONFIG, epochs=2.5, batch_size=16, steps=0), tmp_path / "e")
    assert trainer.config.steps == 10  # ceil(2.5 x 64 / 16)
    assert Trainer(RegressionTask(), dataclasses.replace(CONFIG, steps=3, epochs=2), tmp_path / "s").config.steps == 3
    with pytest.raises(ConfigError, match="epochs > 0"):
        Trainer(RegressionTask(), dataclasses.replace(CONFIG, steps=0), tmp_path / "none")
