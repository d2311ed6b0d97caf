"""Training throughput of every method's stages against plain full-UNet fine-tuning, measured in one run.

    .venv/bin/python benchmarks/throughput.py --out OUT                     # sd15 at 512 px (a GPU box)
    .venv/bin/python benchmarks/throughput.py --preset toy --out OUT        # the toy backbone
    .venv/bin/python benchmarks/throughput.py --small --resolution 64 --steps 1 --out OUT   # CPU check of the sd15 path

The sd15 architectures (SD 1.5 UNet, VAE, CLIP ViT-L/14, XLM-R base) are built from the in-code configs
with random weights, which cost the same time as real ones. Each stage's optimizer step (frozen features
computed inside it, as without a cache) is timed with `xlcore.evaluate.cost.measure_stage_cost`: median of
`--steps` CUDA-synchronised steps after `--warmup` untimed ones; FLOPs per step from
torch.utils.flop_counter; peak memory from the CUDA allocator (on a CPU: the process's peak RSS, which
is not per stage). The reference row is what diffusers' `train_text_to_image` example does: frozen CLIP
text encoder and VAE, the whole UNet trained with AdamW. Every row prints its speed relative to it.

Variants (`--variants`): `default` (bf16 autocast on a GPU, SDPA attention, frozen parts in the backbone's
dtype: bf16 on a GPU), `fp32`, `checkpointing` (gradient checkpointing in every UNet the step runs
through), `channels-last`, `classic-attention` (no SDPA), `compile` (torch.compile of the UNets); the
"cache on" column is the step without the frozen features' forward, i.e. with the feature cache.
On a GPU, `--max-batch` also searches the largest batch that fits in 24 GB and in 80 GB (doubling,
then three bisection steps), with gradient checkpointing.

Outputs in OUT: throughput.csv (tidy rows for the results table), throughput.md (the table), device.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.config import WorldConfig  # noqa: E402
from xlcore.errors import MissingWeightsError  # noqa: E402
from xlcore.evaluate.common import Measurement, RunInfo, write_measurements  # noqa: E402
from xlcore.evaluate.cost import PriceTable, StepOptions, measure_stage_cost, published_budgets  # noqa: E402
from xlcore.methods._base import SingleStageMethod, StageData, build_method  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.registry import METHODS  # noqa: E402
from xlcore.results import ResultsStore  # noqa: E402
from xlcore.train import TrainConfig  # noqa: E402
from xlcore.world import World  # noqa: E402

log = logging.getLogger("throughput")

VARIANTS = {
    "default": StepOptions(),
    "fp32": StepOptions(autocast_bf16=False),
    "checkpointing": StepOptions(gradient_checkpointing=True),
    "channels-last": StepOptions(channels_last=True),
    "classic-attention": StepOptions(attention="classic"),
    "compile": StepOptions(compile_unet=True),
}
REFERENCE = "reference"


@dataclass(frozen=True)
class ReferenceConfig:
    """diffusers' train_text_to_image defaults that matter for speed (AdamW, bf16, the whole UNet)."""

    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        steps=1, batch_size=8, optimizer="adamw", lr=1e-5, weight_decay=0.01, mixed_precision="bf16"))


class UNetFinetuneReference(SingleStageMethod):
    """Plain full-UNet fine-tuning on English image-text: frozen CLIP text encoder and VAE, the UNet
    trained with the denoising loss (diffusers' train_text_to_image). A yardstick, not a study method."""

    name = "reference (full-UNet fine-tuning, diffusers train_text_to_image)"
    config_class = ReferenceConfig
    stage_name = "unet"
    uses_unet_gradients = True

    def build(self) -> None:
        self.unet_copy = self.trainable_copy(self.backbone.unet)

    @property
    def unet(self):
        return self.unet_copy

    def modules(self):
        return {"unet": self.unet_copy}

    def stage_data(self, stage, world) -> StageData:
        return StageData(world.english_image_text(256), {"x0": "diffusion_input", "text": "clip_text:caption"})

    def loss(self, batch, stage):
        loss, _, _ = self.denoise(self.unet_copy, batch["x0"], batch["text.states"].to(self.backbone.dtype))
        return {"loss": loss}

    def _encode(self, texts, lang):
        raise NotImplementedError("the reference only trains")


def card_peak_tflops(prices: PriceTable) -> tuple[str, float]:
    """The card's dense bf16 peak from the price table (by name), or NaN on a CPU or an unknown card."""
    if not torch.cuda.is_available():
        return "cpu", math.nan
    name = torch.cuda.get_device_name(0)
    for key, info in prices.gpus.items():
        if key.split("-")[0].lower() in name.lower():
            return key, float(info["peak_tflops"])
    return name, math.nan


@contextlib.contextmanager
def memory_cap(gigabytes: float):
    """Limit this process's CUDA allocations to `gigabytes` (a smaller card, simulated)."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gigabytes * 2**30 / total))
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def fits(method, stage, world, batch: int, options: StepOptions) -> bool:
    try:
        measure_stage_cost(method, stage, world, steps=1, batch_size=batch, options=options, warmup=1)
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        torch.cuda.empty_cache()


def largest_batch(method, stage, world, cap_gb: float, options: StepOptions, start: int = 8, limit: int = 512,
                  bisections: int = 3) -> int:
    """Largest batch that trains within `cap_gb` (0 if even 1 does not): doubling from `start`, then a few
    bisection steps between the last size that fit and the first that did not."""
    with memory_cap(cap_gb):
        if not fits(method, stage, world, 1, options):
            return 0
        good, bad = 1, start
        while bad <= limit and fits(method, stage, world, bad, options):
            good, bad = bad, bad * 2
        if bad > limit:
            return good
        for _ in range(bisections):
            if bad - good <= 1:
                break
            middle = (good + bad) // 2
            good, bad = (middle, bad) if fits(method, stage, world, middle, options) else (good, middle)
        return good


def methods_to_measure(backbone, names):
    yield REFERENCE, UNetFinetuneReference(backbone)
    for name in names or METHODS.names():
        cls = METHODS.get(name)
        try:
            method = build_method(name, backbone, language="de" if cls.per_language else None)
        except MissingWeightsError as err:
            log.warning("%s skipped: %s", name, err)
            continue
        if method.stages:
            yield name, method


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("sd15", "toy"), default="sd15")
    parser.add_argument("--small", action="store_true", help="sd15's scaled-down configs (CPU checks of this script)")
    parser.add_argument("--resolution", type=int, default=512, help="image side in pixels (sd15: latents are 1/8)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 5 on a GPU, 2 on a CPU)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile needs more: 3)")
    parser.add_argument("--methods", nargs="*", default=None, help="registered methods (default: every trainable one)")
    parser.add_argument("--variants", nargs="*", default=None,
                        help=f"of {', '.join(VARIANTS)} (default: all for the reference, default + checkpointing "
                             "for the methods; on a CPU default only)")
    parser.add_argument("--max-batch", action="store_true", help="GPU: largest batch in 24 GB and 80 GB per stage")
    parser.add_argument("--deadline", type=float, default=math.inf, help="seconds after which no new row starts")
    parser.add_argument("--out", type=Path, required=True, help="folder for throughput.csv, throughput.md, device.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    cuda = torch.cuda.is_available()
    steps = args.steps if args.steps is not None else (5 if cuda else 2)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.preset == "sd15":
        from xlcore.backbone.sd15 import build_sd15_backbone_from_configs

        backbone = build_sd15_backbone_from_configs(small=args.small, dtype=torch.bfloat16 if cuda else torch.float32)
        world = World(WorldConfig(image_size=args.resolution, supersample=1))
    else:
        from xlcore.backbone import load_backbone

        backbone = load_backbone("toy")
        world = World(WorldConfig())
        args.resolution = world.config.image_size  # the toy world's own size
    prices = PriceTable.load()
    card, peak_tflops = card_peak_tflops(prices)
    budgets = published_budgets()
    args.out.mkdir(parents=True, exist_ok=True)
    device = {"hardware": hardware(), "card": card, "peak_bf16_tflops": peak_tflops, "torch": torch.__version__,
              "preset": args.preset + (" (small configs)" if args.small else ""), "resolution": args.resolution,
              "batch_size": args.batch_size, "frozen_dtype": str(backbone.dtype).replace("torch.", ""),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "timed_steps": steps, "warmup": args.warmup}
    (args.out / "device.json").write_text(json.dumps(device, indent=2) + "\n")
    store = ResultsStore(args.out / "throughput.csv")
    rows: list[dict] = []
    reference_speed = math.nan
    for name, method in methods_to_measure(backbone, args.methods):
        wanted = args.variants or (list(VARIANTS) if name == REFERENCE else ["default", "checkpointing"])
        if not cuda and args.variants is None:
            wanted = ["default"]  # on a CPU the GPU options only cost time
        for stage in method.stages:
            for variant in wanted:
                if time.monotonic() - started > args.deadline:
                    log.warning("deadline reached: %s/%s (%s) and later rows not measured", name, stage, variant)
                    break
                options = VARIANTS[variant]
                warmup = max(args.warmup, 3) if options.compile_unet else args.warmup
                try:
                    measured = measure_stage_cost(method, stage, world, steps=steps, batch_size=args.batch_size,
                                                  options=options, warmup=warmup)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    rows.append({"row": f"{name}/{stage}", "variant": variant, "failed": "out of memory"})
                    continue
                except Exception as error:  # one broken row must not cost the rest of a short GPU lease
                    log.exception("%s/%s (%s) failed", name, stage, variant)
                    rows.append({"row": f"{name}/{stage}", "variant": variant,
                                 "failed": f"failed: {type(error).__name__}"})
                    continue
                speed = args.batch_size / measured.seconds_per_step
                if name == REFERENCE and variant == "default":
                    reference_speed = speed
                flops = measured.feature_flops_per_step + measured.train_flops_per_step
                row = {"row": f"{name}/{stage}", "variant": variant, "method": name, "stage": stage,
                       "trainable_parameters": measured.trainable_parameters, "seconds_per_step": measured.seconds_per_step,
                       "samples_per_s": speed, "samples_per_s_cached": args.batch_size / measured.train_seconds,
                       "ratio_to_reference": speed / reference_speed, "tflops_per_step": flops / 1e12,
                       "mfu_pct": 100 * flops / measured.seconds_per_step / (peak_tflops * 1e12),
                       "peak_memory_gb": measured.peak_memory_mb / 1024, "memory_kind": measured.memory_kind}
                budget = budgets.get(f"{name}/{stage}") or {}
                if cuda and variant == "default" and budget.get("samples"):
                    hours = budget["samples"] / speed / 3600
                    dollars = hours * float(prices.gpus.get(card, {}).get("dollars_per_hour", math.nan))
                    row |= {"published_samples": float(budget["samples"]), "measured_gpu_hours": hours,
                            "measured_dollars": dollars}
                # The batch search probes many sizes: only while at most half the deadline is spent.
                searching = time.monotonic() - started < args.deadline / 2
                if cuda and args.max_batch and searching and variant == "checkpointing" and name != REFERENCE:
                    row["max_batch_24gb"] = largest_batch(method, stage, world, 24, options)
                    row["max_batch_80gb"] = largest_batch(method, stage, world, 80, options)
                rows.append(row)
                (args.out / "throughput.md").write_text(markdown(rows, device) + "\n")  # kept if a timeout ends the run
                print(f"{row['row']:40s} {variant:18s} {speed:8.2f} samples/s  x{row['ratio_to_reference']:.2f} of reference  "
                      f"{row['peak_memory_gb']:.1f} GB", flush=True)
                metrics = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                write_measurements([Measurement("all", f"throughput/{args.preset}",
                                                f"{device['hardware']}; {device['preset']} at {args.resolution} px, batch "
                                                f"{args.batch_size}; {variant} ({options.label()}); median of {steps} "
                                                f"steps after {warmup} warm-up; memory: {measured.memory_kind}",
                                                metrics, stage=stage)],
                                   RunInfo(f"throughput-{args.preset}-{device['date']}-{card}", name if name != REFERENCE
                                           else "reference_unet_finetune", "", device), store)
        del method
        if cuda:
            torch.cuda.empty_cache()
    table = markdown(rows, device)
    (args.out / "throughput.md").write_text(table + "\n")
    print()
    print(table)
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    return 0


def markdown(rows: list[dict], device: dict) -> str:
    def fmt(value, spec):
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    lines = [f"Measured on {device['hardware']} ({device['date']}, torch {device['torch']}); {device['preset']} at "
             f"{device['resolution']} px, batch {device['batch_size']}, frozen parts in {device['frozen_dtype']}; "
             f"median of {device['timed_steps']} steps. MFU against {device['card']}'s dense bf16 peak "
             f"({fmt(device['peak_bf16_tflops'], '.0f')} TFLOP/s). Peak memory: "
             f"{rows[0].get('memory_kind', '-') if rows else '-'}.", "",
             "| method/stage | variant | trainable | samples/s | cache on | x reference | TFLOPs/step | MFU % | "
             "peak GB | max batch 24 GB | max batch 80 GB | GPU-h at published budget | $ |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r.get("failed"):
            lines.append(f"| {r['row']} | {r['variant']} | {r['failed']} | | | | | | | | | | |")
            continue
        lines.append(
            f"| {r['row']} | {r['variant']} | {r['trainable_parameters'] / 1e6:,.1f}M | {r['samples_per_s']:.2f} | "
            f"{r['samples_per_s_cached']:.2f} | {r['ratio_to_reference']:.2f} | {r['tflops_per_step']:.3g} | "
            f"{fmt(r['mfu_pct'], '.1f')} | {r['peak_memory_gb']:.1f} | {fmt(r.get('max_batch_24gb'), 'd')} | "
            f"{fmt(r.get('max_batch_80gb'), 'd')} | {fmt(r.get('measured_gpu_hours'), ',.0f')} | "
            f"{fmt(r.get('measured_dollars'), ',.0f')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
