"""FLOPs (and, on a GPU, step time) of every method's training stages on the full-size sd15 architectures.

The architectures are built from the configs in `xlcore.backbone.sd15` with random weights (no download;
FLOPs and throughput do not depend on the weights), the world renders at 512 px so the VAE latents are
SD 1.5's 64x64, and every stage is measured by `xlcore.evaluate.cost.measure_stage_cost`, the same code
the study uses on the toy backbone. These FLOPs per sample are what the study extrapolates the published
training budgets with (`cost/extrapolated` rows), so they are written as tidy rows to
`benchmarks/results/sd15_cost.csv` and committed.

    .venv/bin/python benchmarks/sd15_cost.py                  # CPU: FLOPs only, batch 1 (about 15 min, 20 GB)
    .venv/bin/python benchmarks/sd15_cost.py --steps 5 --batch-size 8   # a GPU: also seconds per step

Caveats, printed with the numbers: captions are the toy world's (shorter than web captions, so the text
encoders' share is a little low); translate needs NLLB's weights and is skipped without them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.sd15 import build_sd15_backbone_from_configs  # noqa: E402
from xlcore.config import WorldConfig  # noqa: E402
from xlcore.errors import MissingWeightsError  # noqa: E402
from xlcore.evaluate.common import RunInfo, write_measurements  # noqa: E402
from xlcore.evaluate.cost import cost_measurements  # noqa: E402
from xlcore.methods._base import build_method  # noqa: E402
from xlcore.registry import METHODS  # noqa: E402
from xlcore.results import ResultsStore  # noqa: E402
from xlcore.world import World  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sd15_cost.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per stage (default: 0 on CPU, 5 on GPU)")
    parser.add_argument("--batch-size", type=int, default=1, help="samples per step (FLOPs are reported per step)")
    parser.add_argument("--methods", nargs="*", default=None, help="registered method names (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results table to append to")
    parser.add_argument("--seed", type=int, default=0, help="which items the measured steps draw (batch 1: IAP's "
                        "step must draw an item with an English caption, or it trains nothing)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = args.steps if args.steps is not None else (5 if device == "cuda" else 0)
    backbone = build_sd15_backbone_from_configs(device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    world = World(WorldConfig(image_size=512, supersample=1))
    store = ResultsStore(args.out)
    print(f"sd15 architectures, random weights, {device}; batch {args.batch_size}; timed steps {steps}")
    print(f"{'method/stage':24s} {'trainable':>12s} {'share %':>8s} {'TFLOPs/sample':>14s} {'of which frozen':>16s} {'s/step':>8s}")
    for name in args.methods or METHODS.names():
        cls = METHODS.get(name)
        try:
            method = build_method(name, backbone, language="de" if cls.per_language else None)
        except MissingWeightsError as err:
            print(f"{name:24s} skipped: {err}")
            continue
        if not method.stages:
            continue  # nothing trains (the untrained baseline, the translation oracle)
        start = time.perf_counter()
        measurements = cost_measurements(method, world, steps=steps, batch_size=args.batch_size, seed=args.seed)
        run = RunInfo(run_id=f"sd15-cost-{name}-{device}", method=name, stage="", config={"preset": "sd15", "device": device,
                      "batch_size": args.batch_size, "steps": steps, "seed": args.seed}, notes="random weights; toy-world captions at 512 px")
        write_measurements(measurements, run, store)
        for m in measurements:
            if m.benchmark != "cost/measured":
                continue
            metrics = m.metrics
            total = metrics["flops_per_step"] / args.batch_size / 1e12
            frozen = metrics["feature_flops_per_step"] / args.batch_size / 1e12
            seconds = metrics.get("seconds_per_step", float("nan"))
            print(f"{name + '/' + m.stage:24s} {metrics['trainable_parameters'] / 1e6:11.2f}M "
                  f"{metrics['trainable_share_pct']:8.2f} {total:14.3f} {frozen:16.3f} {seconds:8.3f}")
        del method
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
