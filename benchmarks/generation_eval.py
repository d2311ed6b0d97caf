"""Wall time of the generation evaluation at the protocol's full size: 200 prompts x 6 languages.

Runs `xlcore.evaluate.evaluate_generation` exactly as the study does (every metric: compositional
accuracy, world FID, CLIP score in three conventions, consistency, culture prompts) for one system on
the shipped toy backbone, and prints how long each part took and the images per second.

    .venv/bin/python benchmarks/generation_eval.py                       # translate_oracle, bf16, 200 x 6
    .venv/bin/python benchmarks/generation_eval.py --precision fp32 --prompts 50

The default system is the exact-translation oracle because it reads all six languages at the cost of
a table lookup, so the time is the evaluation's, not an encoder's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.toy import load_toy_backbone  # noqa: E402
from xlcore.config import GenerationEvalConfig  # noqa: E402
from xlcore.evaluate.generation import english_reference, evaluate_generation  # noqa: E402
from xlcore.methods._base import build_method  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.world import World  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", default="translate_oracle", help="registered method to evaluate (untrained weights)")
    parser.add_argument("--prompts", type=int, default=200, help="prompts per language")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    args = parser.parse_args()
    backbone, world = load_toy_backbone(), World()
    config = dataclasses.replace(GenerationEvalConfig(), n_prompts=args.prompts, precision=args.precision)
    system = build_method(args.system, backbone, languages=world.languages)
    print(f"{args.system} on the toy backbone; {hardware()}; torch threads {torch.get_num_threads()}")
    print(f"{config.n_prompts} prompts x {len(config.languages)} languages, {config.n_culture_prompts} culture prompts "
          f"x {len(world.target_languages)}, DDIM {config.steps} steps, guidance {config.guidance_scale:g}, {config.precision}")
    start = time.perf_counter()
    reference = english_reference(backbone, world, config)
    reference_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate_generation(system, world, config, reference=reference)
    seconds = time.perf_counter() - start
    images = sum(len(v) for v in result.images.values()) + sum(len(v) for v in result.culture_images.values())
    print(f"English reference: {len(reference)} images in {reference_seconds:.0f} s")
    print(f"evaluation: {images} images and every metric in {seconds:.0f} s ({seconds / images:.3f} s per image)")
    print(f"total: {(seconds + reference_seconds) / 60:.1f} min")
    for m in result.measurements:
        if m.language in ("en", "de"):
            print(f"  {m.language} {m.benchmark}: " + ", ".join(f"{k}={v:.3g}" for k, v in m.metrics.items()))


if __name__ == "__main__":
    main()
