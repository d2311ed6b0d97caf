"""Data-parallel training over webdataset shards for tests/test_real_data.py: `torchrun --nproc_per_node 2
tests/sharding_job.py SHARDS OUT`. Each rank writes the captions of the samples it read, step by step,
to OUT/rank<r>.jsonl."""

import json
import sys
from pathlib import Path

import torch

from xlcore.data.sources import WebDatasetImageText
from xlcore.distributed import end_processes
from xlcore.train import TrainConfig, Trainer, process_state


class PixelMeanTask:
    """A tiny task over a real source: predicts each image's mean pixel from its caption length; records
    which samples each optimizer step saw (for the sharding and resume tests)."""

    def __init__(self, dataset, log_path=None):
        self.dataset, self.log_path = dataset, log_path
        with torch.random.fork_rng():
            torch.manual_seed(0)  # the same initial weights in every instance (as a method's seed gives)
            self.model = torch.nn.Linear(1, 1)

    def trainable_modules(self):
        return {"model": self.model}

    def dataset_size(self):
        return len(self.dataset)

    def batch(self, indices):
        samples = [self.dataset[i] for i in indices]
        if self.log_path:
            with open(self.log_path, "a") as handle:
                handle.write(json.dumps([s["caption"] for s in samples]) + "\n")
        x = torch.tensor([[len(s["caption"]) / 50] for s in samples])
        y = torch.stack([s["pixel_values"].mean() for s in samples])
        return x, y

    def loss(self, batch):
        x, y = batch
        return {"loss": ((self.model(x).squeeze(-1) - y) ** 2).mean()}


def main(shards: str, out: str) -> None:
    rank = process_state().process_index
    task = PixelMeanTask(WebDatasetImageText(shards, "en"), Path(out) / f"rank{rank}.jsonl")
    config = TrainConfig(steps=6, batch_size=4, lr=0.05, warmup_steps=0, checkpoint_every_steps=100, log_every=1)
    Trainer(task, config, Path(out) / "run").fit()
    end_processes()


if __name__ == "__main__":
    main(*sys.argv[1:])
