"""Train a method through all its stages.

`train_method` runs every stage of a method with the one `Trainer` (each stage checkpoints into
`<run_dir>/<stage>/` and resumes from there), then saves the trained method (`<run_dir>/method/`) and
returns per-stage costs measured on this machine. Measuring what it learned is `xlcore.evaluate`'s job.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from .cache import FeatureCache
from .methods._base import Method
from .train import Trainer, TrainConfig, mixed_precision_beside, process_state

log = logging.getLogger(__name__)


@dataclass
class StageCost:
    stage: str
    steps: int  # optimizer steps of the stage
    seconds: float  # training wall time of the stage, summed over every session that trained it
    trainable_parameters: int
    feature_cache: bool


def train_method(method: Method, corpus, run_dir: str | Path, *, cache: FeatureCache | None = None,
                 train_configs: dict[str, TrainConfig] | None = None) -> list[StageCost]:
    """Train every stage of `method` on `corpus` (the world or a real corpus) in order (resuming finished or
    interrupted stages), then save it."""
    run_dir = Path(run_dir)
    costs = []
    for stage in method.stages:
        config = (train_configs or {}).get(stage) or method.train_config(stage)
        precision = mixed_precision_beside(config, method.backbone.dtype)
        if precision != config.mixed_precision:
            log.info("%s/%s: %s autocast beside the %s backbone", method.name, stage, precision, method.backbone.dtype)
            config = dataclasses.replace(config, mixed_precision=precision)
        task = method.task(stage, corpus, cache)
        trainer = Trainer(task, config, run_dir / stage)
        trainer.fit()
        trainer.use_ema_weights()  # a stage with ema_decay > 0 goes on, and is evaluated, with its EMA
        costs.append(StageCost(stage, trainer.step, trainer.train_seconds,
                               sum(p.numel() for p in method.trainable_parameters(stage).values()), cache is not None))
        if stage not in method.trained_stages:
            method.trained_stages.append(stage)
    method.freeze()
    state = process_state()
    if state.is_main_process:  # under data parallelism every process holds the same weights: one writes
        method.save(run_dir / "method")
    state.wait_for_everyone()
    return costs
