"""Training one method's run on several processes (GPUs, or CPU processes with gloo).

From a shell, under `accelerate launch` (or `torchrun`):

    accelerate launch --multi_gpu --num_processes 4 -m xlcore train --method altdiffusion --preset sd15 --seed 0

From a notebook, with `accelerate.notebook_launcher`:

    from accelerate import notebook_launcher
    from xlcore.distributed import train_run
    notebook_launcher(train_run, ("altdiffusion", "sd15", "de", 0), num_processes=4)

Every process builds the same method; the Trainer splits each global batch over the processes and
averages gradients (see `xlcore.train.Trainer`), the main process writes checkpoints and the trained
weights into the same folder the sweep uses. The sweep's cell then finds the finished run, records its
cost and evaluates it. The frozen-feature cache is used only with one process (the processes would
write it at once); build it first with a one-process run, or train without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def data_parallel_size() -> int:
    """How many processes share each batch (1 outside a data-parallel launch)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def end_processes() -> None:
    """Leave the process group once the work is done: waits for every process, then tears the group down.
    A process that exits with gloo's threads still running can abort ('terminate called without an active
    exception') after its work finished, and the launcher then reports the whole run as failed."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """The rows of every process's slice of the batch, in process order, as one tensor (`rows` itself
    with one process). Differentiable: the gradient reaching each process's own rows is summed over the
    processes (a reduce-scatter, done with all-reduce, which gloo supports), so once the Trainer averages
    gradients the step is the one-process step on the whole batch. Every process must call it with the
    same shape (the Trainer splits batches evenly)."""
    return rows if data_parallel_size() == 1 else _GatherRows.apply(rows)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, rows.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), len(rows)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def train_run(method: str, preset: str = "toy", language: str = "de", seed: int = 0,
              output_dir: str | Path = "papermill_runs", budget: float = 1.0, smoke: bool = False,
              overrides: dict | None = None, config_file: str | Path = "") -> Path:
    """Train (or resume) the run of `method` that the sweep's cell (method, language, seed) would train;
    returns its folder. Safe to call in every process of a data-parallel launch."""
    from .cache import FeatureCache
    from .cell import Cell, CellRun
    from .experiment import train_method
    from .train import process_state

    state = process_state()
    run = CellRun(Cell(preset, method, language, seed), smoke=smoke, output_dir=output_dir, budget=budget,
                  config_file=config_file, overrides=overrides)
    if run.method is None or not run.method.stages:
        log.info("%s trains nothing", method)
        return run.dir
    cache = None
    if run.study.feature_cache and state.num_processes == 1:
        cache = FeatureCache(run.output_dir / preset / "feature_cache")
    configs = {stage: run.budgeted(run.method.train_config(stage)) for stage in run.method.stages}
    if state.is_main_process:
        log.info("training %s on %d process(es) into %s", method, state.num_processes, run.train_dir)
    train_method(run.method, run.world, run.train_dir, cache=cache, train_configs=configs)
    return run.train_dir
