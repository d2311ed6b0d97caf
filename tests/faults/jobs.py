"""Work that the fault tests kill from outside (run as `python tests/faults/jobs.py <job> <folder>`).

- `train`: a real method (PEA, German, smoke sizes) on the one Trainer, checkpointing every 2 steps; it
  prints "checkpoint <step>" as each lands, and saves the method at the end.
- `results`: appends batches of 50 rows to a results table forever, printing "appended <batch>" after each.
- `checkpoints`: a small trainer that writes a checkpoint at every step forever, printing "checkpoint <step>".
"""

import dataclasses
import sys
from pathlib import Path

TRAIN_STEPS = 24


def train(folder: Path) -> None:
    from xlcore.backbone import load_backbone
    from xlcore.config import WorldConfig, apply_smoke
    from xlcore.experiment import train_method
    from xlcore.methods._base import build_method
    from xlcore.registry import METHODS
    from xlcore.world import World

    world = World(apply_smoke(WorldConfig()))
    method = build_method("pea", load_backbone("toy"), apply_smoke(METHODS.get("pea").config_class()), language="de",
                          languages=world.languages, seed=0)
    stage = method.stages[0]
    config = dataclasses.replace(method.train_config(stage), steps=TRAIN_STEPS, checkpoint_every_steps=2,
                                 checkpoint_every_minutes=60.0, log_every=1)
    # Each checkpoint is announced once it is complete (the Trainer's hook runs after the swap).
    from xlcore import train as train_module

    original = train_module.Trainer.save_checkpoint

    def announced(self):
        original(self)
        print(f"checkpoint {self.step}", flush=True)

    train_module.Trainer.save_checkpoint = announced
    train_method(method, world, folder, train_configs={stage: config})
    print("finished", flush=True)


def results(folder: Path) -> None:
    from xlcore.results import ResultsStore

    store = ResultsStore(folder / "results.csv")
    batch = len(store.run_ids())  # a restarted job continues the numbering
    while True:
        rows = [store.make_rows(run_id=f"batch-{batch}", config={"batch": batch}, seed=0, method="none", stage="data",
                                language="en", benchmark="fault", metrics={f"m{i}": float(i) for i in range(50)})]
        store.append(rows[0])
        print(f"appended {batch}", flush=True)
        batch += 1


class LinearTask:
    """A small regression task, big enough (256 x 256 weights) that a kill often lands mid-write."""

    def __init__(self):
        import torch
        from torch import nn

        torch.manual_seed(0)
        self.model = nn.Linear(256, 256)
        self.x = torch.randn(64, 256)

    def trainable_modules(self):
        return {"model": self.model}

    def dataset_size(self):
        return 64

    def batch(self, indices):
        return self.x[indices]

    def loss(self, x):
        return {"loss": (self.model(x) - x).pow(2).mean()}


def checkpoint_trainer(folder: Path, steps: int = 10**9, every: int = 1):
    """The Trainer of the `checkpoints` job (the tests build the same one to resume), checkpointing every
    `every` steps."""
    from xlcore.train import TrainConfig, Trainer

    return Trainer(LinearTask(), TrainConfig(steps=steps, batch_size=8, lr=1e-3, warmup_steps=0, log_every=1000,
                                             checkpoint_every_steps=every, checkpoint_every_minutes=60.0), folder)


def checkpoints(folder: Path) -> None:
    trainer = checkpoint_trainer(folder)
    trainer.on_checkpoint = lambda step: print(f"checkpoint {step}", flush=True)
    trainer.fit()


if __name__ == "__main__":
    {"train": train, "results": results, "checkpoints": checkpoints}[sys.argv[1]](Path(sys.argv[2]))
