"""Deterministic training jobs for tests/test_distributed.py: the same global batch on one process
(`python tests/distributed_job.py OUT [TASK]`) or several (`torchrun --nproc_per_node 2
tests/distributed_job.py OUT [TASK]`, or `accelerate.debug_launcher(run, (OUT,))`, the CPU form of
`notebook_launcher`). TASK: `regression` (default; samples independent) or `contrastive` (the loss
couples every sample of the global batch)."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from xlcore.distributed import end_processes
from xlcore.losses import symmetric_info_nce
from xlcore.train import TrainConfig, Trainer

CONFIG = TrainConfig(steps=6, batch_size=16, lr=0.05, warmup_steps=0, checkpoint_every_steps=3, log_every=1,
                     checkpoint_every_minutes=60.0, mixed_precision="no", max_grad_norm=1.0)

class LinearRegression:
    """No dropout, no noise: the only difference between process counts is how the batch is split."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(128, 8, generator=generator)
        self.y = self.x @ torch.randn(8, 2, generator=generator)
        self.model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
        with torch.no_grad():
            for p in self.model.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)

    def trainable_modules(self):
        return {"model": self.model}

    def dataset_size(self):
        return len(self.x)

    def batch(self, indices):
        return self.x[indices], self.y[indices]

    def loss(self, batch):
        x, y = batch
        return {"loss": ((self.model(x) - y) ** 2).mean()}

class Contrastive(LinearRegression):
    """Two towers and a learnable temperature under CLIP's symmetric InfoNCE: every sample is a negative
    for every other one of the global batch, so a process that saw only its slice would step elsewhere."""

    def __init__(self):
        super().__init__()
        self.other = nn.Linear(2, 16)
        self.log_scale = nn.Parameter(torch.tensor(2.0))
        self.model[-1] = nn.Linear(16, 16)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in [*self.model[-1].parameters(), *self.other.parameters()]:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)

    def trainable_modules(self):
        return {"model": self.model, "other": self.other, "scale": nn.ParameterList([self.log_scale])}

    def loss(self, batch):
        x, y = batch
        return {"loss": symmetric_info_nce(self.model(x), self.other(y), self.log_scale.exp())}

TASKS = {"regression": LinearRegression, "contrastive": Contrastive}

def run(out: str, task: str = "regression") -> None:
    task = TASKS[task]()
    trainer = Trainer(task, CONFIG, out)
    trainer.fit()
    if trainer.accelerator.is_main_process:
        state = {f"{name}.{k}": v.contiguous() for name, module in task.trainable_modules().items()
                 for k, v in module.state_dict().items()}
        save_file(state, str(Path(out) / "final.safetensors"), metadata={"processes": str(trainer.world_size)})
    end_processes()

if __name__ == "__main__":
    run(*sys.argv[1:])
