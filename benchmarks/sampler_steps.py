"""Sampler and step count against the study's DDIM 25: time per image and the scorer's judgement.

Evaluation sampling is a large share of a toy seed's CPU time. This measures, on the shipped toy
backbone's English pipeline (the untouched reference every method is compared with), what fewer steps
or a multistep solver (DPM-Solver++ 2M from diffusers, trailing spacing like the study's DDIM) cost in
the world scorer's compositional judgement: per setting, seconds per image, the pooled `all` and
GenEval's overall, the share of prompts judged as under DDIM 25, and the binomial standard error of
`all` (the noise any difference must exceed).

    .venv/bin/python benchmarks/sampler_steps.py --out benchmarks/results/sampler_steps_cpu
    .venv/bin/python benchmarks/sampler_steps.py --prompts 20 --settings ddim:25,dpm++:10   # quick

Nothing here changes the study's sampler: the numbers are what a change would rest on.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.pipeline import SAMPLERS, with_sampler  # noqa: E402
from xlcore.backbone.quality import generate  # noqa: E402
from xlcore.backbone.toy import load_toy_backbone  # noqa: E402
from xlcore.evaluate.compositional import geneval_overall, judge, summarise  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.world import World  # noqa: E402

def parse_settings(text: str) -> list[tuple[str, int]]:
    settings = []
    for part in text.split(","):
        name, _, steps = part.partition(":")
        if name not in SAMPLERS or not steps.isdigit():
            raise SystemExit(f"bad setting {part!r}: use sampler:steps with sampler in {', '.join(SAMPLERS)}")
        settings.append((name, int(steps)))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=200, help="the world's first n generation prompts")
    parser.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale (the study's)")
    parser.add_argument("--settings", default="ddim:25,ddim:15,ddim:10,dpm++:20,dpm++:15,dpm++:10",
                        help="comma-separated sampler:steps; the first is the reference")
    parser.add_argument("--out", default="", help="folder for results.json")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    backbone, world = load_toy_backbone(), World()
    prompts = list(world.generation_prompts())[:args.prompts]
    scenes = [p.scene for p in prompts]
    states, _ = backbone.encode_english([p.captions["en"] for p in prompts])
    seeds = list(range(len(prompts)))
    rows, reference = [], None
    settings = parse_settings(args.settings)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # warm-up, untimed: the first call pays for kernel setup
        generate(backbone, states[:2], seeds[:2], args.guidance, 2)
    for name, steps in settings:
        sampler_backbone = with_sampler(backbone, name)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            images = generate(sampler_backbone, states, seeds, args.guidance, steps)
        seconds = time.perf_counter() - start
        judged = judge(backbone.scorer.predict(images.float()), scenes)
        summary = summarise(judged)
        reference = judged["all"] if reference is None else reference
        agreement = 100.0 * int((judged["all"] == reference).sum()) / len(prompts)
        share = summary["all"] / 100
        rows.append({"sampler": name, "steps": steps, "seconds_per_image": seconds / len(prompts),
                     "compositional_all": summary["all"], "compositional_overall": geneval_overall(summary),
                     "agreement_with_reference_pct": agreement,
                     "standard_error_all": 100 * math.sqrt(share * (1 - share) / len(prompts))})
        print(f"{name:6s} {steps:3d} steps: {seconds / len(prompts):.3f} s/image, all {summary['all']:.1f} "
              f"(± {rows[-1]['standard_error_all']:.1f}), overall {rows[-1]['compositional_overall']:.1f}, "
              f"same judgement as {rows[0]['sampler']} {rows[0]['steps']} on {agreement:.1f}% of prompts", flush=True)
    base = rows[0]["seconds_per_image"]
    for row in rows:
        row["time_ratio_to_reference"] = row["seconds_per_image"] / base
    print("time ratios to the reference: " + ", ".join(f"{r['sampler']} {r['steps']}: {r['time_ratio_to_reference']:.2f}"
                                                        for r in rows))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"hardware": hardware(), "prompts": len(prompts), "guidance": args.guidance,
                   "precision": "bf16 autocast (the study's)", "rows": rows}
        (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
