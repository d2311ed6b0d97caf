"""Train a method through all its stages.

`train_method` runs every stage of a method with the one `Trainer` (each stage checkpoints into
`<run_dir>/<stage>/` and resumes from there), then saves the trained method (`<run_dir>/method/`) and
returns per-stage costs measured on this machine. Measuring what it learned is `xlcore.evaluate`'s job.

A stage that another method runs identically (`Method.stage_identity`: AltDiffusion's first two stages are
AltCLIP's) is trained once: with a `stage_store`, a finished stage is kept there under a key of everything it
depends on, and a later method whose stage has the same key starts from that copy (the Trainer finds it
finished), its measured training time included, so its cost is still what training it from nothing costs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .cache import FeatureCache
from .config import config_hash, to_dict
from .results import file_lock
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
    shared_from: str = ""  # the stage store's entry it was taken from ("" where this run trained it)


def shared_stage_key(method: Method, stage: str, configs: Mapping[str, TrainConfig],
                     context: Mapping[str, Any]) -> str | None:
    """The stage store's key of `stage` (None: not shareable): the method's `stage_identity`, the training
    configs of this stage and of every stage before it, the seed and `context` (backbone, data)."""
    identity = method.stage_identity(stage)
    if identity is None:
        return None
    stages = method.stages[:method.stages.index(stage) + 1]
    return f"{stage}-" + config_hash({"identity": identity, "seed": method.seed, **context,
                                      "train_configs": [to_dict(configs[s]) for s in stages]})


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link where the file system allows (checkpoint files are written new and swapped in, never
    changed in place, so sharing them is safe and costs no space), a copy otherwise."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _place_checkpoint(stage_dir: Path, destination: Path) -> None:
    """A finished stage's last checkpoint (only it: not the previous one, nor the logs) into `destination`,
    whole or not at all (into this process's own temporary sibling, then renamed)."""
    partial = destination.with_name(f"{destination.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    shutil.copytree(stage_dir / "checkpoint", partial / "checkpoint", copy_function=_link_or_copy)
    partial.replace(destination)


def train_method(method: Method, corpus, run_dir: str | Path, *, cache: FeatureCache | None = None,
                 train_configs: dict[str, TrainConfig] | None = None, stage_store: str | Path | None = None,
                 store_context: Mapping[str, Any] | None = None) -> list[StageCost]:
    """Train every stage of `method` on `corpus` (the world or a real corpus) in order (resuming finished or
    interrupted stages, taking shared ones from `stage_store`: see the module docstring; `store_context`
    names the backbone and the data, which the key must hold), then save it."""
    run_dir = Path(run_dir)
    configs = {stage: (train_configs or {}).get(stage) or method.train_config(stage) for stage in method.stages}
    state = process_state()
    if stage_store is not None and state.num_processes > 1:
        # Under data parallelism every process would have to agree on taking or storing a stage (one checks the
        # store, all train); one job per process group is the data-parallel case, where nothing is shared.
        log.info("%s: the stage store is not used under data parallelism", method.name)
        stage_store = None
    costs = []
    for stage in method.stages:
        config = configs[stage]
        precision = mixed_precision_beside(config, method.backbone.dtype)
        if precision != config.mixed_precision:
            log.info("%s/%s: %s autocast beside the %s backbone", method.name, stage, precision, method.backbone.dtype)
            config = dataclasses.replace(config, mixed_precision=precision)
        key = shared_stage_key(method, stage, configs, store_context or {}) if stage_store is not None else None
        shared = Path(stage_store) / key if key is not None else None
        taken = ""
        # A shareable stage is trained under its store entry's lock: a second worker wanting the same stage
        # waits for the first and takes its copy instead of training it again.
        with file_lock(shared.with_name(shared.name + ".lock")) if shared is not None else contextlib.nullcontext():
            if shared is not None and (shared / "checkpoint").exists() and not (run_dir / stage).exists():
                _place_checkpoint(shared, run_dir / stage)
                log.info("%s/%s: the same stage was trained before; taken from %s", method.name, stage, shared)
                taken = shared.name
            task = method.task(stage, corpus, cache)
            trainer = Trainer(task, config, run_dir / stage)
            trainer.fit()
            if shared is not None and not shared.exists():
                _place_checkpoint(run_dir / stage, shared)
        trainer.use_ema_weights()  # a stage with ema_decay > 0 goes on, and is evaluated, with its EMA
        costs.append(StageCost(stage, trainer.step, trainer.train_seconds,
                               sum(p.numel() for p in method.trainable_parameters(stage).values()), cache is not None,
                               taken))
        if stage not in method.trained_stages:
            method.trained_stages.append(stage)
    method.freeze()
    if state.is_main_process:  # under data parallelism every process holds the same weights: one writes
        method.save(run_dir / "method")
    state.wait_for_everyone()
    return costs
