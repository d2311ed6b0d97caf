"""The collectives of data-parallel training (GPUs, or CPU processes with gloo), below every layer that
uses them: the methods' contrastive losses gather rows, the Trainer averages gradients, launchers end the
process group. Training a run on several processes is `xlcore.cell.train_run` (`xlcore train` under
`accelerate launch`, `torchrun` or `accelerate.notebook_launcher`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


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
