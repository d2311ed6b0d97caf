"""A deterministic training job for tests/test_distributed.py: the same global batch on one process
(`python tests/distributed_job.py OUT`) or several (`torchrun --nproc_per_node 2 tests/distributed_job.py OUT`,
or `accelerate.debug_launcher(run, (OUT,))`, the CPU form of `notebook_launcher`)."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

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


def run(out: str) -> None:
    task = LinearRegression()
    trainer = Trainer(task, CONFIG, out)
    trainer.fit()
    if trainer.accelerator.is_main_process:
        state = {k: v.contiguous() for k, v in task.model.state_dict().items()}
        save_file(state, str(Path(out) / "final.safetensors"), metadata={"processes": str(trainer.world_size)})


if __name__ == "__main__":
    run(sys.argv[1])
