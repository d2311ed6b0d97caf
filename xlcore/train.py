"""One training loop for everything that trains: backbone pretraining now, every method and stage later.

A task supplies its trainable parameters, a batch source and `loss(batch) -> {name: tensor}` with a
"loss" entry (open_clip's TrainingTask idea); the `Trainer` owns the rest: accelerate for devices and
processes, mixed precision (autocast, and a gradient scaler for fp16), gradient accumulation, the
optimizer and schedule, gradient clipping, an optional EMA of the weights, a NaN/inf guard, tqdm
progress, a JSON-lines log of every loss term, and checkpoints every N steps or minutes that a rerun
resumes from.

`Trainer.train_step` is the one optimizer step: training calls it in `fit`, and the cost measurement
and the benchmarks time that same call (`xlcore.evaluate.cost`), so what is measured is what trains.

Batches are a pure function of the step (an epoch's order is a permutation seeded by (seed, epoch)) and
checkpoints carry the torch random state, so a resumed run sees exactly the batches, noise and dropout
that an uninterrupted run would have seen, and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState, PartialState
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn
from tqdm.auto import tqdm

from .config import option, to_dict
from .errors import ConfigError, DataFormatError, XlcoreError
from .results import atomic_write_bytes, file_sha256, fsync_tree

log = logging.getLogger(__name__)


# Fields a resumed run may change: a longer budget, checkpoint and logging cadence.
RESUMABLE_CHANGES = {"steps", "checkpoint_every_steps", "checkpoint_every_minutes", "log_every"}


class NonFiniteLossError(XlcoreError, FloatingPointError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


class TrainingTask(Protocol):
    """What the trainer needs from whatever it trains."""

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Modules whose parameters train (all of their parameters that require grad)."""

    def batch(self, indices: Sequence[int]) -> Any:
        """The batch made of the given dataset indices."""

    def dataset_size(self) -> int:
        """How many items one epoch has."""

    def loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """Named loss terms; the trainer minimises the entry "loss"."""

    # Optional: `inputs(batch)`, what frozen encoders compute from a batch (no gradients, outside
    # autocast, timed apart by the cost measurement); `frozen_modules()`, modules the loss runs through
    # without training them (moved to the device with the trainable ones).


class StepProfile(Protocol):
    """What `Trainer.train_step` reports its phases to (the cost measurement times and counts them)."""

    def phase(self, name: str) -> contextlib.AbstractContextManager:
        """A context around phase `name`: 'features' (the frozen inputs) or 'train' (forward and backward)."""


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@dataclass(frozen=True)
class TrainConfig:
    """How to train: budget, optimizer, schedule, checkpoints."""

    steps: int = option(1000, "Optimizer steps to train for; 0: `epochs` epochs of the stage's data.", smoke=4)
    epochs: float = option(0.0, "With steps 0: train this many epochs of the stage's data (steps = ceil(epochs x "
                                "items / batch_size), known once the data is), for papers that give epochs and not "
                                "steps (GlueGen's 4).", added=True)
    batch_size: int = option(64, "Samples per optimizer step (before accumulation is split).", smoke=8)
    grad_accumulation: int = option(
        1, "Split each step's batch into this many micro-batches (same update as the whole batch at once, "
           "for losses that average over samples; reach a paper's global batch on fewer or smaller GPUs).")
    optimizer: str = option("adamw", "'adamw' or 'lamb' (timm's LAMB, as mCLIP used).")
    lr: float = option(1e-3, "Peak learning rate.")
    weight_decay: float = option(0.01, "Decoupled weight decay.")
    lr_scale: dict[str, float] = option(
        lambda: {}, "Learning-rate multiplier per trainable module, by the task's module name (e.g. {'unet': 0.1}: "
        "that module trains at a tenth of lr); modules not named train at lr.", added=True)
    betas: tuple[float, ...] = option(lambda: (0.9, 0.98), "Adam betas.")
    schedule: str = option("cosine", "'cosine' (to 0), 'linear' (to 0: polynomial decay of power 1), 'constant', "
                                     "'inverse_sqrt' after warmup, or 'epoch_step' (PyTorch's StepLR stepped once per "
                                     "epoch of the stage's data: lr times decay_factor after every epoch).")
    decay_factor: float = option(0.5, "What 'epoch_step' multiplies the learning rate by after each epoch (StepLR's "
                                      "gamma).", added=True)
    warmup_steps: int = option(100, "Linear warmup steps.", smoke=1)
    max_grad_norm: float = option(1.0, "Clip the global gradient norm to this (0 disables).")
    ema_decay: float = option(0.0, "Keep an exponential moving average of the weights (0 disables).")
    ema_warmup: bool = option(
        False, "Warm the EMA's decay up as diffusers' EMAModel does: min(ema_decay, (1 + k) / (10 + k)) at update "
               "k + 1 (0 at the first), so the average forgets the initial weights; without it an EMA of decay d "
               "still holds d^n of them after n updates (0.999: 18% after 1,709).", added=True)
    mixed_precision: str = option(
        "no", "'no', 'bf16' or 'fp16': autocast in that dtype around the loss; fp16 adds a gradient scaler "
              "(unscaled before clipping, overflowing steps skipped and counted). Weights stay float32.")
    seed: int = option(0, "Seed of batch order and of the task's randomness.")
    checkpoint_every_steps: int = option(500, "Checkpoint every this many steps.", smoke=2)
    checkpoint_every_minutes: float = option(5.0, "And at least every this many minutes.")
    log_every: int = option(10, "Log loss terms every this many steps.", smoke=1)


def place_task_modules(task: TrainingTask, device: torch.device) -> None:
    """Move a task's trainable modules, and the frozen ones its loss runs through (a teacher, a frozen
    encoder), to `device`."""
    frozen = task.frozen_modules() if hasattr(task, "frozen_modules") else {}
    for module in [*task.trainable_modules().values(), *frozen.values()]:
        module.to(device)


HALF_PRECISION = {torch.bfloat16: "bf16", torch.float16: "fp16"}
AUTOCAST_DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def mixed_precision_beside(config: TrainConfig, frozen_dtype: torch.dtype) -> str:
    """The mixed precision a stage trains under next to a frozen backbone held in `frozen_dtype`.

    Trainable modules keep float32 weights. Beside a half-precision backbone (sd15 on a GPU), a stage
    configured 'no' would feed float32 activations into half-precision frozen layers (a CLIP projection,
    the frozen UNet's attention) and fail with a dtype mismatch; autocast in the backbone's dtype is what
    makes the two meet, so such a stage runs under it; for the same reason a stage set to the other half
    precision (PEA's fp16 beside a bfloat16 backbone) runs in the backbone's. A float32 backbone (the toy
    preset, a CPU) keeps the configured setting."""
    if frozen_dtype in HALF_PRECISION and config.mixed_precision != HALF_PRECISION[frozen_dtype]:
        return HALF_PRECISION[frozen_dtype]
    return config.mixed_precision


def step_indices(step: int, batch_size: int, dataset_size: int, seed: int) -> list[int]:
    """Dataset indices of global batch `step`: epochs are permutations seeded by (seed, epoch)."""
    start = step * batch_size
    indices: list[int] = []
    while len(indices) < batch_size:
        epoch, offset = divmod(start + len(indices), dataset_size)
        order = np.random.default_rng([seed, epoch]).permutation(dataset_size)
        take = min(batch_size - len(indices), dataset_size - offset)
        indices.extend(int(i) for i in order[offset:offset + take])
    return indices


def _lr_factor(config: TrainConfig, step: int, dataset_size: int = 0) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "epoch_step":
        if dataset_size <= 0:
            raise XlcoreError("the 'epoch_step' schedule needs the stage's dataset size")
        return config.decay_factor ** (step * config.batch_size // dataset_size)
    if config.schedule == "inverse_sqrt":
        return math.sqrt(max(config.warmup_steps, 1) / (step + 1))
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "linear":
        return 1.0 - progress
    raise XlcoreError(f"unknown schedule {config.schedule!r}; use cosine, linear, constant, inverse_sqrt or epoch_step")


def make_optimizer(config: TrainConfig, modules: dict[str, nn.Module]) -> torch.optim.Optimizer:
    """AdamW or LAMB over the trainable parameters of `modules`: weight decay on matrices only, and each
    module's learning rate scaled by `config.lr_scale` (1 where it names none)."""
    unknown = set(config.lr_scale) - set(modules)
    if unknown:
        raise ConfigError(f"lr_scale names {sorted(unknown)}, but the task trains {sorted(modules)}")
    groups = []
    for name, module in modules.items():
        params = [p for p in module.parameters() if p.requires_grad]
        scale = float(config.lr_scale.get(name, 1.0))
        groups += [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay, "lr_scale": scale},
                   # biases, norms, scalars: no weight decay
                   {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr_scale": scale}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))
    if config.optimizer == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, lr=config.lr, betas=tuple(config.betas))
    raise XlcoreError(f"unknown optimizer {config.optimizer!r}; use adamw or lamb")


def process_state() -> PartialState:
    """accelerate's process state (rank, world size), set up the one way every part of xlcore uses.

    cpu=True on a machine without a GPU makes a torchrun / `accelerate launch` run multi-CPU (gloo).
    The state is created once per process and then shared, so whoever asks first decides: a plain
    `PartialState()` first would pin a CPU launch to one process and every rank would train alone."""
    return PartialState(cpu=not torch.cuda.is_available())


class Trainer:
    """Train `task` under `config`, checkpointing into `run_dir` and resuming from it."""

    def __init__(self, task: TrainingTask, config: TrainConfig, run_dir: str | Path,
                 on_checkpoint: Callable[[int], None] | None = None):
        if config.steps <= 0:  # a budget given in epochs: its step count follows from the data
            if config.epochs <= 0:
                raise ConfigError("a stage needs steps > 0, or steps 0 and epochs > 0")
            config = replace(config, steps=max(1, math.ceil(config.epochs * task.dataset_size() / config.batch_size)))
        self.task, self.config, self.run_dir = task, config, Path(run_dir)
        self.on_checkpoint = on_checkpoint
        # Stages of one job (the toy backbone's components, a method's stages) run one after another, each
        # with its own settings, so accelerate's per-process accelerator state is rebuilt for each (the
        # distributed state is kept). Accelerate places modules and tells ranks apart; precision and
        # accumulation are the Trainer's own (`train_step`): accelerate's accumulation divides the loss in
        # `backward` as well, and its fp16 scaler is never unscaled unless the optimizer is prepared.
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
        process_state()  # the process state first (see there), then the accelerator on top of it
        self.accelerator = Accelerator(mixed_precision="no", cpu=not torch.cuda.is_available())
        self.device = self.accelerator.device
        if config.mixed_precision not in AUTOCAST_DTYPES:
            raise ConfigError(f"mixed_precision must be one of {', '.join(AUTOCAST_DTYPES)}, got {config.mixed_precision!r}")
        if config.grad_accumulation < 1:
            raise ConfigError(f"grad_accumulation must be at least 1, got {config.grad_accumulation}")
        self.autocast_dtype = AUTOCAST_DTYPES[config.mixed_precision]
        # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.mixed_precision == "fp16")
        self.skipped_steps = 0  # optimizer steps skipped because the fp16 gradients overflowed
        # Data parallel (`accelerate launch`, `torchrun`, `accelerate.notebook_launcher`): every process
        # takes its slice of the same global batch and gradients are averaged over processes before each
        # optimizer step (what DDP does), so a run with N processes follows the single-process run with the
        # same global batch. Losses that couple the samples of a batch (the contrastive stages) gather
        # every process's rows first (`xlcore.distributed.gather_rows`); random draws (noise, dropout)
        # differ per process. Only the main process writes checkpoints and logs.
        self.world_size = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        if self.world_size > 1 and config.batch_size % self.world_size:
            raise ConfigError(f"batch_size {config.batch_size} does not split over {self.world_size} processes")
        self.modules = task.trainable_modules()
        place_task_modules(task, self.device)
        self.params = [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]
        if not self.params:
            raise XlcoreError("the task has no trainable parameters")
        self.optimizer = make_optimizer(config, self.modules)
        self.ema = [p.detach().clone() for p in self.params] if config.ema_decay > 0 else None
        self.step = 0
        self.train_seconds = 0.0  # wall time spent training, summed over every session of the run
        self._session_start: float | None = None
        self.checkpoint_dir = self.run_dir / "checkpoint"
        self.log_path = self.run_dir / "train_log.jsonl"

    # ----------------------------------------------------------------------------------------------
    # Checkpoints: weights as safetensors, optimizer state with torch.save (loaded weights_only=True)

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{key}": t.detach().cpu().clone()  # a copy: on the CPU .cpu() would alias the weights
                for name, module in self.modules.items() for key, t in module.state_dict().items()}

    def save_checkpoint(self) -> None:
        """Write a complete checkpoint beside the last one, then swap; the one before is kept as
        `checkpoint.prev`. A crash at any point leaves a complete checkpoint to resume from, and a
        checkpoint damaged later on disk (its files' SHA-256s are in state.json) falls back to the previous.
        Under data parallelism the main process writes it and the others wait."""
        if self.world_size > 1:
            if self.accelerator.is_main_process:
                self._write_checkpoint()
            self.accelerator.wait_for_everyone()
        else:
            self._write_checkpoint()
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step)

    def _write_checkpoint(self) -> None:
        tmp = self.run_dir / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, module in self.modules.items():  # save_model handles tied weights (e.g. an MLM head)
            save_model(module, str(tmp / f"trainable-{name}.safetensors"))
        if self.ema is not None:
            save_file({f"ema.{i}": t.cpu().contiguous() for i, t in enumerate(self.ema)}, str(tmp / "ema.safetensors"))
        # The optimizer state is nested dicts of tensors; torch.save writes it and it is read back with
        # weights_only=True, which refuses anything but tensors and plain containers (no pickled code).
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        files = {path.name: file_sha256(path) for path in sorted(tmp.iterdir())}
        state = {"step": self.step, "config": to_dict(self.config), "train_seconds": self.elapsed(), "files": files,
                 "skipped_steps": self.skipped_steps, "grad_scaler": self.scaler.state_dict()}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        fsync_tree(tmp)
        previous = self.run_dir / "checkpoint.prev"
        shutil.rmtree(previous, ignore_errors=True)
        if self.checkpoint_dir.exists():
            self.checkpoint_dir.rename(previous)
        tmp.rename(self.checkpoint_dir)
        fsync_tree(self.run_dir, files=False)
        log.info("checkpoint at step %d -> %s", self.step, self.checkpoint_dir)

    def checkpoint_candidates(self) -> list[Path]:
        """Checkpoints to resume from, newest first (`checkpoint.old` is the name older versions used)."""
        names = ("checkpoint", "checkpoint.prev", "checkpoint.old")
        return [self.run_dir / name for name in names if (self.run_dir / name / "state.json").exists()]

    def load_checkpoint(self) -> bool:
        """Resume from the newest readable checkpoint; a damaged one is reported and the previous one used."""
        candidates = self.checkpoint_candidates()
        if not candidates:
            return False
        problems = []
        for directory in candidates:
            try:
                self._load_from(directory)
            except DataFormatError as err:
                problems.append(str(err))
                log.warning("cannot resume from %s: %s", directory.name, err)
                continue
            if problems:
                log.warning("resumed from the previous checkpoint %s at step %d instead", directory, self.step)
            return True
        raise DataFormatError(self.run_dir, "no readable checkpoint (" + "; ".join(problems) + "); delete the run "
                              "folder to start over")

    def _load_from(self, directory: Path) -> None:
        try:
            state = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError) as err:
            raise DataFormatError(directory / "state.json", f"unreadable ({err})") from None
        for name, digest in state.get("files", {}).items():  # checkpoints before checksums: not verified
            path = directory / name
            if not path.exists():
                raise DataFormatError(path, "missing from the checkpoint")
            if file_sha256(path) != digest:
                raise DataFormatError(path, "checksum mismatch: the file changed after it was written (corrupt)")
        saved = {k: v for k, v in state.get("config", {}).items() if k not in RESUMABLE_CHANGES}
        current = {k: v for k, v in to_dict(self.config).items() if k not in RESUMABLE_CHANGES}
        if saved and saved != current:
            changed = sorted(k for k in current if saved.get(k) != current[k])
            raise ConfigError(f"{directory} was written with a different training config ({', '.join(changed)}); "
                              "use another run folder or delete this one to start over")
        try:
            for name, module in self.modules.items():
                load_model(module, str(directory / f"trainable-{name}.safetensors"))
            optimizer_state = torch.load(directory / "optimizer.pt", weights_only=True)
        except Exception as err:  # safetensors and torch raise their own types for truncated files
            raise DataFormatError(directory, f"unreadable checkpoint ({type(err).__name__}: {err})") from None
        try:
            self.optimizer.load_state_dict(optimizer_state)
        except ValueError as err:  # a different grouping of the parameters (before per-module learning rates)
            raise DataFormatError(directory / "optimizer.pt", f"its optimizer state does not fit this run's parameter "
                                  f"groups ({err}); it was written by an older version: delete the run folder to "
                                  "train again") from None
        if self.ema is not None and (directory / "ema.safetensors").exists():
            ema = load_file(str(directory / "ema.safetensors"))
            self.ema = [ema[f"ema.{i}"].to(p.device) for i, p in enumerate(self.params)]
        if (directory / "rng.safetensors").exists():
            torch.set_rng_state(load_file(str(directory / "rng.safetensors"))["torch_rng"])
        else:  # checkpoints written before the random state was saved: reseed, resume stays close
            log.warning("%s has no random state; reseeding from the step", directory)
            torch.manual_seed(self.config.seed * 1_000_003 + int(state["step"]))
        if state.get("grad_scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["grad_scaler"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.step = int(state["step"])
        # Checkpoints written before training time was recorded do not know it: NaN (unknown), never 0.
        self.train_seconds = float(state.get("train_seconds", math.nan))
        log.info("resumed from %s at step %d", directory, self.step)

    def warm_start(self, weights: dict[str, dict[str, torch.Tensor]], step: int) -> None:
        """Start from given weights at `step` (fresh optimizer state), when no checkpoint exists.

        Used to continue a run whose checkpoint is gone but whose exported weights survive (the toy
        UNet is shipped in-progress and continued in later sessions).
        """
        if self.checkpoint_candidates():
            raise XlcoreError(f"{self.checkpoint_dir} exists; resume from it instead of warm-starting")
        for name, state in weights.items():
            self.modules[name].load_state_dict(state)
        if self.ema is not None:
            self.ema = [p.detach().clone() for p in self.params]
        self.step = step
        log.info("warm start at step %d from exported weights (optimizer state starts fresh)", step)

    def elapsed(self) -> float:
        """Training wall time of the whole run so far: earlier sessions (from the checkpoint) plus this one."""
        if self._session_start is None:
            return self.train_seconds
        return self.train_seconds + time.monotonic() - self._session_start

    def use_ema_weights(self) -> None:
        """Put the EMA weights into the trained modules (what a run with EMA evaluates and ships, as
        diffusers' training scripts copy the EMA UNet in before saving); the checkpoint keeps both."""
        if self.ema is not None:
            with torch.no_grad():
                for p, e in zip(self.params, self.ema):
                    p.copy_(e)

    def ema_state(self) -> dict[str, torch.Tensor] | None:
        """The EMA weights in the layout of `_trainable_state()` (None without EMA)."""
        if self.ema is None:
            return None
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, e in zip(self.params, self.ema):
                p.copy_(e)
            state = self._trainable_state()
            for p, b in zip(self.params, backup):
                p.copy_(b)
        return state

    # ----------------------------------------------------------------------------------------------

    def _micro_batches(self, indices: list[int]) -> Iterator[list[int]]:
        size = math.ceil(len(indices) / self.config.grad_accumulation)
        for start in range(0, len(indices), size):
            yield indices[start:start + size]

    def _average_over_processes(self, terms: dict[str, float]) -> dict[str, float]:
        """All-reduce the gradients (mean over processes, as DDP) and the logged loss terms."""
        import torch.distributed as dist

        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world_size)
        names = sorted(terms)
        values = torch.tensor([terms[n] for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return {n: float(v) / self.world_size for n, v in zip(names, values)}

    def train_step(self, step: int | None = None, *, update: bool = True,
                   profile: StepProfile | None = None) -> dict[str, float]:
        """One optimizer step on global batch `step` (default: the run's next), returning its loss terms.

        The batch is split into `grad_accumulation` micro-batches; each one's loss is weighted by its share
        of the batch before `backward`, once, so k micro-batches give the update of the whole batch at once
        (for losses that average over samples). Under data parallelism each process takes its slice of the
        global batch and gradients are averaged over processes. With fp16 the loss is scaled, gradients are
        unscaled before clipping, and a step whose gradients overflowed is skipped (and counted) by the
        scaler. `update=False` stops before the optimizer (FLOP counting without optimizer state). Does
        not advance `self.step`: `fit` does, so the cost measurement can time any step without moving the run.
        """
        config = self.config
        step = self.step if step is None else step
        for group in self.optimizer.param_groups:
            # .get: a checkpoint written before per-module scales existed restores groups without one
            group["lr"] = config.lr * group.get("lr_scale", 1.0) * _lr_factor(config, step, self.task.dataset_size())
        indices = step_indices(step, config.batch_size, self.task.dataset_size(), config.seed)
        if self.world_size > 1:  # this process's contiguous slice of the global batch
            share = config.batch_size // self.world_size
            indices = indices[self.rank * share:(self.rank + 1) * share]
        phase = profile.phase if profile is not None else _no_phase
        terms_sum: dict[str, float] = {}
        for micro in self._micro_batches(indices):
            weight = len(micro) / len(indices)
            batch = to_device(self.task.batch(micro), self.device)
            with phase("features"):  # the frozen encoders' part: no gradients, outside autocast
                inputs = self.task.inputs(batch) if hasattr(self.task, "inputs") else batch
            with phase("train"):
                with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                    terms = self.task.loss(inputs)
                for name, value in terms.items():
                    if not torch.isfinite(value).all():
                        raise NonFiniteLossError(
                            f"loss term {name!r} is {value.item()} at step {step}; the last good "
                            f"checkpoint in {self.checkpoint_dir} is kept (lower the learning rate or check the data)"
                        )
                    terms_sum[name] = terms_sum.get(name, 0.0) + float(value.detach()) * weight
                self.scaler.scale(terms["loss"] * weight).backward()
        if self.world_size > 1:
            terms_sum = self._average_over_processes(terms_sum)
        if not update:
            self.optimizer.zero_grad(set_to_none=True)
            return terms_sum
        self.scaler.unscale_(self.optimizer)  # a no-op without fp16: clipping sees the true gradient norm
        if config.max_grad_norm > 0:
            terms_sum["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, config.max_grad_norm))
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        self.scaler.step(self.optimizer)  # skips the update when unscale_ found an inf or NaN gradient
        self.scaler.update()
        skipped = self.scaler.is_enabled() and self.scaler.get_scale() < scale  # the scale backs off on overflow
        self.optimizer.zero_grad(set_to_none=True)
        if skipped:
            self.skipped_steps += 1
            terms_sum["skipped"] = 1.0
            log.warning("step %d: fp16 gradients overflowed; update skipped (%d so far), loss scale now %g",
                        step, self.skipped_steps, self.scaler.get_scale())
        elif self.ema is not None:
            with torch.no_grad():
                decay = ema_decay_at(config.ema_decay, step + 1, config.ema_warmup)
                torch._foreach_lerp_(self.ema, [p.detach() for p in self.params], 1 - decay)
        return terms_sum

    def fit(self) -> list[dict[str, float]]:
        """Train until `config.steps`, resuming if a checkpoint exists; returns the logged history."""
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.load_checkpoint() and self.step == 0:
            torch.manual_seed(config.seed)  # task randomness (noise, dropout); a resume restores its state
        if self.world_size > 1:  # each process its own draws (the same draws everywhere would correlate them)
            torch.manual_seed(config.seed * 1_000_003 + self.step * 1009 + self.rank)
        history: list[dict[str, float]] = []
        last_checkpoint = self._session_start = time.monotonic()
        for module in self.modules.values():
            module.train()
        bar = tqdm(total=config.steps, initial=self.step, desc=getattr(self.task, "description", type(self.task).__name__), unit="step",
                   dynamic_ncols=True)
        with open(self.log_path, "a") as log_file:
            while self.step < config.steps:
                lr = config.lr * _lr_factor(config, self.step, self.task.dataset_size())
                terms = self.train_step()
                self.step += 1
                bar.update(1)
                if self.step % config.log_every == 0 or self.step == config.steps:
                    record = {"step": self.step, "lr": lr, **terms}
                    history.append(record)
                    if self.accelerator.is_main_process:
                        log_file.write(json.dumps(record) + "\n")
                        log_file.flush()
                    bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items()})
                due = (self.step % config.checkpoint_every_steps == 0
                       or time.monotonic() - last_checkpoint > 60 * config.checkpoint_every_minutes)
                if due or self.step == config.steps:
                    self.save_checkpoint()
                    last_checkpoint = time.monotonic()
        bar.close()
        self.train_seconds, self._session_start = self.elapsed(), None
        for module in self.modules.values():
            module.eval()
        if self.skipped_steps:
            log.warning("%s: %d of %d steps skipped (fp16 overflow)", self.run_dir, self.skipped_steps, self.step)
        return history


def ema_decay_at(decay: float, update: int, warmup: bool) -> float:
    """The EMA's decay at its `update`-th update (1-based): `decay`, or with warmup diffusers' EMAModel.get_decay
    (no update_after_step, no power warmup): 0 at the first update, then min(decay, (1 + k) / (10 + k)), k = update - 1."""
    if not warmup:
        return decay
    k = update - 1
    return 0.0 if k <= 0 else min(decay, (1 + k) / (10 + k))


@contextlib.contextmanager
def _no_phase(name: str) -> Iterator[None]:
    yield


def read_log(run_dir: str | Path) -> list[dict[str, float]]:
    """The JSON-lines training log of a run (for loss curves), one record per step.

    Steps logged after the last checkpoint of an interrupted run are logged again when it resumes;
    the later record wins.
    """
    path = Path(run_dir) / "train_log.jsonl"
    if not path.exists():
        return []
    records: dict[int, dict[str, float]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataFormatError(path, "not a JSON object", line=number) from None
        records[int(record["step"])] = record
    return [records[step] for step in sorted(records)]


def write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
