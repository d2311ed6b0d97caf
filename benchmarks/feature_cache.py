"""Step time with and without the feature cache, for TriKD and PEA on the toy backbone.

The uncached path renders the batch's images and runs the frozen encoders every step; the cached path
reads their outputs from memory-mapped arrays built once. Both run the same `loss` and optimizer step.
Prints seconds per step, the speed-up (goal: at least 5x for TriKD, whose trainable part is small), the
one-off build time and after how many steps the build has paid for itself.

    .venv/bin/python benchmarks/feature_cache.py [--steps 10] [--cache-dir /tmp/xlcore_cache_bench]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.toy import load_toy_backbone  # noqa: E402
from xlcore.cache import FeatureCache  # noqa: E402
from xlcore.methods._base import build_method  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.train import step_indices  # noqa: E402
from xlcore.world import World  # noqa: E402

CASES = [("trikd", "trikd", None), ("pea", "adapter", "de")]


def seconds_per_step(task, params, batch_size: int, steps: int) -> float:
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    for module in task.trainable_modules().values():
        module.train()
    times = []
    for step in range(steps + 1):  # step 0 warms up
        start = time.perf_counter()
        batch = task.batch(step_indices(step, batch_size, task.dataset_size(), seed=0))
        loss = task.loss(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]  # median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per path (median reported)")
    parser.add_argument("--items", type=int, default=2048, help="training items (the cache covers them all)")
    parser.add_argument("--cache-dir", default="/tmp/xlcore_cache_bench", help="emptied before each method")
    args = parser.parse_args()
    torch.manual_seed(0)
    backbone, world = load_toy_backbone(), World()
    print(f"hardware: {hardware()}; torch threads: {torch.get_num_threads()}")
    print(f"{'method/stage':16s} {'batch':>5s} {'uncached s/step':>16s} {'cached s/step':>14s} {'speed-up':>9s} "
          f"{'build s':>8s} {'break-even steps':>17s}")
    for name, stage, language in CASES:
        method = build_method(name, backbone, language=language)
        method.config = dataclasses.replace(method.config, train_items=args.items)
        batch_size = method.train_config(stage).batch_size
        params = list(method.trainable_parameters(stage).values())
        uncached = seconds_per_step(method.task(stage, world), params, batch_size, args.steps)
        shutil.rmtree(args.cache_dir, ignore_errors=True)
        start = time.perf_counter()
        cached_task = method.task(stage, world, FeatureCache(args.cache_dir))
        build = time.perf_counter() - start
        cached = seconds_per_step(cached_task, params, batch_size, args.steps)
        saved = uncached - cached
        break_even = f"{build / saved:.0f}" if saved > 0 else "never"
        print(f"{name + '/' + stage:16s} {batch_size:5d} {uncached:16.3f} {cached:14.3f} {uncached / cached:8.1f}x "
              f"{build:8.1f} {break_even:>17s}")
    shutil.rmtree(args.cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
