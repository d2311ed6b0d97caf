"""Step time with and without the feature cache, for TriKD and PEA on the toy backbone.

The uncached path renders the batch's images and runs the frozen encoders every step; the cached path
reads their outputs from memory-mapped arrays built once. Both time `Trainer.train_step`, the step
training runs (the stage's optimizer, precision and clipping).
Prints seconds per step, the speed-up (goal: at least 5x for TriKD, whose trainable part is small), the
one-off build time and after how many steps the build has paid for itself.

    .venv/bin/python benchmarks/feature_cache.py [--steps 10] [--cache-dir /tmp/xlcore_cache_bench]
    .venv/bin/python benchmarks/feature_cache.py --sd15 --steps 3 --items 64 --batch-size 16

`--sd15` runs TriKD on the full-size `sd15` architectures (CLIP ViT-L/14, XLM-R base) with random
weights, built from configs (6.6 GB of memory, no download): the paper-scale ratio, where the frozen
encoders are far larger than the trainable projector. Random weights are enough for timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.toy import load_toy_backbone  # noqa: E402
from xlcore.cache import FeatureCache  # noqa: E402
from xlcore.methods._base import build_method  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.train import Trainer, mixed_precision_beside  # noqa: E402
from xlcore.world import World  # noqa: E402

CASES = [("trikd", "trikd", None), ("pea", "adapter", "de")]


def seconds_per_step(task, config, steps: int) -> float:
    """Median seconds of `Trainer.train_step` over `steps` steps after a warm-up step (weights are
    restored afterwards, so both paths start from the same weights)."""
    with tempfile.TemporaryDirectory(prefix="xlcore-cache-bench-") as run_dir:
        trainer = Trainer(task, config, run_dir)
        saved = [p.detach().clone() for p in trainer.params]
        for module in task.trainable_modules().values():
            module.train()
        times = []
        for step in range(steps + 1):  # step 0 warms up
            start = time.perf_counter()
            trainer.train_step(step)
            if step:
                times.append(time.perf_counter() - start)
        with torch.no_grad():
            for param, value in zip(trainer.params, saved):
                param.copy_(value)
    return sorted(times)[len(times) // 2]  # median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per path (median reported)")
    parser.add_argument("--items", type=int, default=2048, help="training items (the cache covers them all)")
    parser.add_argument("--cache-dir", default="/tmp/xlcore_cache_bench", help="emptied before each method")
    parser.add_argument("--sd15", action="store_true", help="TriKD on the full-size sd15 architectures (random weights)")
    parser.add_argument("--batch-size", type=int, default=0, help="override the methods' batch size (0: theirs)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.sd15:
        from xlcore.backbone.sd15 import build_sd15_backbone_from_configs
        from xlcore.config import WorldConfig

        backbone, world, cases = build_sd15_backbone_from_configs(device="cpu"), World(WorldConfig(image_size=64)), CASES[:1]
    else:
        backbone, world, cases = load_toy_backbone(), World(), CASES
    print(f"backbone: {backbone.preset} ({'random weights from configs' if args.sd15 else 'shipped toy weights'}); "
          f"hardware: {hardware()}; torch threads: {torch.get_num_threads()}")
    print(f"{'method/stage':16s} {'batch':>5s} {'uncached s/step':>16s} {'cached s/step':>14s} {'speed-up':>9s} "
          f"{'build s':>8s} {'break-even steps':>17s}")
    for name, stage, language in cases:
        method = build_method(name, backbone, language=language)
        method.config = dataclasses.replace(method.config, train_items=args.items)
        config = method.train_config(stage)
        config = dataclasses.replace(config, batch_size=args.batch_size or config.batch_size,
                                     mixed_precision=mixed_precision_beside(config, backbone.dtype))
        batch_size = config.batch_size
        uncached = seconds_per_step(method.task(stage, world), config, args.steps)
        shutil.rmtree(args.cache_dir, ignore_errors=True)
        start = time.perf_counter()
        cached_task = method.task(stage, world, FeatureCache(args.cache_dir))
        build = time.perf_counter() - start
        cached = seconds_per_step(cached_task, config, args.steps)
        saved = uncached - cached
        break_even = f"{build / saved:.0f}" if saved > 0 else "never"
        print(f"{name + '/' + stage:16s} {batch_size:5d} {uncached:16.3f} {cached:14.3f} {uncached / cached:8.1f}x "
              f"{build:8.1f} {break_even:>17s}")
    shutil.rmtree(args.cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
