"""Cost of a method's training stages: measured on this machine, and extrapolated to its published budget.

Measured (DESIGN.md section 6), per stage, on the hardware the evaluation runs on:
- trainable parameters, and their share of the whole deployed system (`Method.system_parameter_count`);
- seconds per optimizer step (median of timed steps after a warm-up step) and samples per second, with
  the method's own optimizer and batch size, frozen features computed inside the step (no cache);
- FLOPs per step from `torch.utils.flop_counter`, split into the frozen feature extractors' forward
  (what a feature cache computes once per item) and the trainable part's forward and backward;
- peak memory: `torch.cuda.max_memory_allocated` on a GPU; on a CPU the process's peak resident set
  size, which includes everything loaded before (labelled as such).

Extrapolated, kept apart from the measured figures: GPU-hours and dollars for the method's published
training budget (declared by each method, `Method.published_budgets`, each with its source; most methods publish no step
count, and then nothing is extrapolated). GPU-hours come from FLOPs per sample at the published scale
divided by (peak FLOP/s x assumed model FLOPs utilisation) of the chosen GPU, or from the published
GPU-hours where the method reports them; dollars from the editable price table
(`assets/gpu_prices.json`, or the file named by XLCORE_PRICE_TABLE).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError, DataFormatError
from ..methods._base import Method
from ..provenance import hardware
from ..train import mixed_precision_beside
from .common import Measurement

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PRICES_FILE = ASSETS / "gpu_prices.json"
# FLOPs per sample of every stage on the full-size sd15 architectures, measured by benchmarks/sd15_cost.py.
SCALE_FLOPS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "sd15_cost.csv"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"not valid JSON ({err.msg})", line=err.lineno) from None


@dataclass(frozen=True)
class PriceTable:
    """Dollars per GPU-hour and peak FLOP/s per GPU, and the assumed utilisation (editable JSON)."""

    gpus: dict[str, dict[str, Any]]
    default_gpu: str
    mfu: float
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> "PriceTable":
        path = Path(path or os.environ.get("XLCORE_PRICE_TABLE") or PRICES_FILE)
        data = _read_json(path)
        try:
            table = cls(dict(data["gpus"]), str(data["default_gpu"]), float(data["mfu"]), str(path))
            for _name, entry in table.gpus.items():
                float(entry["dollars_per_hour"]), float(entry["peak_tflops"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(path, f"needs gpus.<name>.dollars_per_hour and .peak_tflops, default_gpu and mfu ({err})") from None
        if table.default_gpu not in table.gpus or not 0 < table.mfu <= 1:
            raise DataFormatError(path, "default_gpu must be one of gpus and mfu in (0, 1]")
        return table

    def gpu(self, name: str | None = None) -> tuple[str, dict[str, Any]]:
        name = name or self.default_gpu
        if name not in self.gpus:
            raise ConfigError(f"GPU {name!r} is not in the price table {self.source}; it has {', '.join(self.gpus)}")
        return name, self.gpus[name]


def published_budgets() -> dict[str, Mapping[str, Any]]:
    """'<method>/<stage>' -> the published training budget with its source (samples may be None), as each
    registered method declares it (`Method.published_budgets`; a variant shares its method's, and
    AltDiffusion's first two stages are AltCLIP's)."""
    from ..methods._base import describe
    from ..registry import METHODS

    return {f"{name}/{stage}": budget for name in METHODS.names()
            for stage, budget in describe(name).published_budgets.items()}


def flops_at_published_scale(path: str | Path = SCALE_FLOPS_FILE) -> dict[str, float]:
    """'<method>/<stage>' -> FLOPs per training sample on the sd15 architectures (empty if not measured)."""
    from ..results import ResultsStore

    if not Path(path).exists():
        return {}
    frame = ResultsStore(path).read()
    frame = frame[frame["benchmark"] == "cost/measured"]
    pivot = frame.pivot_table(index=["method", "stage"], columns="metric", values="value", aggfunc="last")
    return {f"{m}/{s}": row["flops_per_step"] / row["batch_size"] for (m, s), row in pivot.iterrows()}


@dataclass(frozen=True)
class StageCostMeasurement:
    """What one training stage costs on this machine (see the module docstring)."""

    method: str
    stage: str
    trainable_parameters: int
    system_parameters: int
    batch_size: int
    seconds_per_step: float
    feature_flops_per_step: int
    train_flops_per_step: int
    peak_memory_mb: float
    memory_kind: str
    hardware: str
    feature_seconds: float = math.nan  # of seconds_per_step: the frozen features' forward (a cache skips it)

    @property
    def train_seconds(self) -> float:
        """Seconds per step of the trainable part alone: the step with the frozen features cached."""
        return self.seconds_per_step - self.feature_seconds

    @property
    def flops_per_sample(self) -> float:
        return (self.feature_flops_per_step + self.train_flops_per_step) / self.batch_size

    @property
    def trainable_share(self) -> float:
        return 100.0 * self.trainable_parameters / self.system_parameters

    def as_metrics(self) -> dict[str, float]:
        timed = {} if math.isnan(self.seconds_per_step) else {
            "seconds_per_step": self.seconds_per_step, "samples_per_s": self.batch_size / self.seconds_per_step}
        return timed | {
            "trainable_parameters": self.trainable_parameters,
            "system_parameters": self.system_parameters,
            "trainable_share_pct": self.trainable_share,
            "batch_size": self.batch_size,
            "feature_flops_per_step": self.feature_flops_per_step,
            "train_flops_per_step": self.train_flops_per_step,
            "flops_per_step": self.feature_flops_per_step + self.train_flops_per_step,
            "peak_memory_mb": self.peak_memory_mb,
        }


def _peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated during the timed steps"
    # ru_maxrss is in KiB on Linux: the whole process's high-water mark, not this stage's alone.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS (includes everything loaded before)"


@dataclass(frozen=True)
class StepOptions:
    """How a measured step runs (benchmarks/throughput.py compares them). Defaults: the stage's own
    training setup (its configured precision, autocast beside a half-precision backbone), SDPA attention."""

    autocast_bf16: bool | None = None  # None: as training runs it (train.mixed_precision_beside); True: bf16; False: fp32
    gradient_checkpointing: bool = False  # on every UNet the step runs through (trainable or frozen)
    channels_last: bool = False
    compile_unet: bool = False  # torch.compile of the UNets' forward (the first steps pay for compiling)
    attention: str = "sdpa"  # 'sdpa' (diffusers' AttnProcessor2_0) or 'classic' (explicit softmax(QK^T)V)

    def label(self) -> str:
        parts = [{None: "stage default", True: "bf16", False: "fp32"}[self.autocast_bf16]]
        parts += [name for name, on in (("checkpointing", self.gradient_checkpointing),
                                        ("channels-last", self.channels_last), ("compile", self.compile_unet)) if on]
        return " + ".join(parts + ([] if self.attention == "sdpa" else ["classic attention"]))


@contextlib.contextmanager
def step_options_applied(method: Method, options: StepOptions):
    """Apply `options` to the UNets the method's steps run through; undo them afterwards."""
    unets = {id(u): u for u in (method.unet, method.backbone.unet) if hasattr(u, "set_attn_processor")}.values()
    if options.attention not in ("sdpa", "classic"):
        raise ConfigError(f"attention must be 'sdpa' or 'classic', got {options.attention!r}")
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    with contextlib.ExitStack() as undo:  # each change registers its own undo, run in reverse on exit
        for unet in unets:
            if options.gradient_checkpointing:
                unet.enable_gradient_checkpointing()
                undo.callback(unet.disable_gradient_checkpointing)
            if options.channels_last:
                unet.to(memory_format=torch.channels_last)
                undo.callback(unet.to, memory_format=torch.contiguous_format)
            if options.attention == "classic":
                unet.set_attn_processor(AttnProcessor())
                undo.callback(unet.set_attn_processor, AttnProcessor2_0())
            if options.compile_unet:
                unet.compile()
                undo.callback(setattr, unet, "_compiled_call_impl", None)  # nn.Module.compile's handle: eager again
        yield


class _PhaseMeter:
    """A `StepProfile` for `Trainer.train_step`: seconds and, when asked, FLOPs of each phase."""

    def __init__(self, device: torch.device, count_flops: bool = False):
        self.device, self.count_flops = device, count_flops
        self.seconds: dict[str, float] = {}
        self.flops: dict[str, int] = {}

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def phase(self, name: str):
        self._synchronize()
        start = time.perf_counter()
        with FlopCounterMode(display=False) if self.count_flops else contextlib.nullcontext() as counter:
            yield
        self._synchronize()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        if self.count_flops:
            self.flops[name] = self.flops.get(name, 0) + counter.get_total_flops()


def measure_stage_cost(method: Method, stage: str, corpus, *, steps: int = 3, batch_size: int | None = None,
                       seed: int = 0, options: StepOptions | None = None, warmup: int = 1) -> StageCostMeasurement:
    """Run a warm-up step of `stage`, count the FLOPs of the next, then time `steps` more optimizer steps.

    Each step is `Trainer.train_step`, the call training makes: the stage's optimizer, schedule,
    precision (as `train_method` sets it beside the backbone), accumulation, clipping and, under data
    parallelism, the gradient all-reduce; the frozen features are computed inside the step (no cache) and
    timed apart as its 'features' phase (`feature_seconds`). `steps=0` counts FLOPs only, without an
    optimizer update (its state can be larger than the model: the way to count the full-size sd15
    architectures on a machine without the memory to train them). The stage trains for real on the
    method's trainable weights, which are restored afterwards, so measuring leaves the method exactly as
    it was. `options` changes how the step runs (precision, checkpointing, memory layout, compilation,
    attention kernel); `warmup` steps run untimed first (compilation needs several).
    """
    from ..train import Trainer

    options = options or StepOptions()
    if steps < 0:
        raise ConfigError("measure_stage_cost needs steps >= 0")
    config = method.train_config(stage)
    precision = {None: mixed_precision_beside(config, method.backbone.dtype), True: "bf16", False: "no"}[options.autocast_bf16]
    config = dataclasses.replace(config, batch_size=batch_size or config.batch_size, seed=seed, mixed_precision=precision)
    task = method.task(stage, corpus)  # uncached: the frozen features are part of the measured step
    device = method.backbone.device
    times, feature_times = [], []
    with tempfile.TemporaryDirectory(prefix="xlcore-cost-") as run_dir:
        trainer = Trainer(task, config, run_dir)  # nothing is checkpointed: fit() is never called
        saved = [p.detach().clone() for p in trainer.params]
        for module in task.trainable_modules().values():
            module.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                    step_options_applied(method, options):
                torch.manual_seed(seed)
                for step in range(max(1, warmup)):  # one-off work (lazy caches, allocator growth, compiling) lands here
                    trainer.train_step(step, update=bool(steps))
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                first = max(1, warmup)
                counted = _PhaseMeter(device, count_flops=True)  # counting slows a step, so this one is not timed
                trainer.train_step(first, update=bool(steps), profile=counted)
                for step in range(first + 1, first + 1 + steps):
                    meter = _PhaseMeter(device)
                    meter._synchronize()
                    start = time.perf_counter()
                    trainer.train_step(step, profile=meter)
                    meter._synchronize()
                    times.append(time.perf_counter() - start)
                    feature_times.append(meter.seconds.get("features", 0.0))
        finally:
            with torch.no_grad():
                for param, value in zip(trainer.params, saved):
                    param.copy_(value)
            method.freeze()
    peak, memory_kind = _peak_memory_mb(device)
    return StageCostMeasurement(
        method=method.name, stage=stage, trainable_parameters=sum(p.numel() for p in method.trainable_parameters(stage).values()),
        system_parameters=method.system_parameter_count(), batch_size=config.batch_size,
        seconds_per_step=median(times), feature_flops_per_step=counted.flops.get("features", 0),
        train_flops_per_step=counted.flops.get("train", 0), peak_memory_mb=peak, memory_kind=memory_kind,
        hardware=hardware(), feature_seconds=median(feature_times))


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else math.nan


def extrapolate(budget: dict[str, Any] | None, *, flops_per_sample: float | None, prices: PriceTable,
                gpu: str | None = None) -> tuple[dict[str, float], str]:
    """GPU-hours and dollars for a published budget, and the protocol text saying how they were derived.

    `flops_per_sample` must be measured at the published scale (the sd15 preset) for the FLOPs route
    to mean anything; the toy preset passes None and then only published GPU-hours are priced."""
    if not budget:
        return {}, "no published budget on record"
    gpu_name, gpu_info = prices.gpu(gpu)
    dollars = float(gpu_info["dollars_per_hour"])
    metrics: dict[str, float] = {}
    how = []
    if budget.get("samples"):
        metrics["published_samples"] = float(budget["samples"])
        if flops_per_sample:
            seconds = budget["samples"] * flops_per_sample / (float(gpu_info["peak_tflops"]) * 1e12 * prices.mfu)
            metrics["extrapolated_gpu_hours"] = seconds / 3600
            metrics["extrapolated_dollars"] = metrics["extrapolated_gpu_hours"] * dollars
            how.append(f"published samples x measured FLOPs/sample / ({gpu_name} {gpu_info['peak_tflops']} TFLOP/s x MFU {prices.mfu:g})")
    if budget.get("reported_gpu_hours"):
        metrics["published_gpu_hours"] = float(budget["reported_gpu_hours"])
        metrics["published_gpu_hours_dollars"] = float(budget["reported_gpu_hours"]) * dollars
        how.append("published GPU-hours priced as " + gpu_name)
    how.append(f"${dollars:g}/GPU-hour from {Path(prices.source).name}; budget source: {budget.get('source', '?')}")
    return metrics, "; ".join(how)


def cost_measurements(method: Method, corpus, *, steps: int = 3, batch_size: int | None = None,
                      prices: PriceTable | None = None, budgets: dict[str, dict] | None = None,
                      scale_flops: dict[str, float] | None = None, gpu: str | None = None,
                      seed: int = 0) -> list[Measurement]:
    """Measured and extrapolated cost of every stage of `method`, as results-table measurements.

    Extrapolation needs FLOPs per sample of the architecture the published budget was spent on: measured
    here when the backbone is not the toy one, else looked up in `scale_flops` (default: the sd15 table
    that benchmarks/sd15_cost.py writes)."""
    prices = prices or PriceTable.load()
    budgets = published_budgets() if budgets is None else budgets
    at_scale = method.backbone.preset != "toy"
    scale_flops = (flops_at_published_scale() if scale_flops is None else scale_flops) if not at_scale else {}
    language = method.language or "all"
    out = []
    for stage in method.stages:
        measured = measure_stage_cost(method, stage, corpus, steps=steps, batch_size=batch_size, seed=seed)
        timing = (f"median of {steps} timed Trainer steps (the training step: precision, clipping, accumulation as "
                  "trained) after a warm-up and a FLOP-counted step" if steps else "not timed (FLOPs only)")
        out.append(Measurement(language, "cost/measured",
                               f"{method.backbone.preset} backbone on {measured.hardware}; batch {measured.batch_size}; "
                               f"{timing}, frozen features computed in the step; "
                               f"FLOPs by torch.utils.flop_counter; memory: {measured.memory_kind}",
                               measured.as_metrics(), stage=stage))
        key = f"{method.name}/{stage}"
        flops = measured.flops_per_sample if at_scale else scale_flops.get(key)
        extrapolated, how = extrapolate(budgets.get(key), flops_per_sample=flops, prices=prices, gpu=gpu)
        if flops and not at_scale and "extrapolated_gpu_hours" in extrapolated:
            how = f"FLOPs/sample of the sd15 architectures from {SCALE_FLOPS_FILE.name}; " + how
        if extrapolated:
            out.append(Measurement(language, "cost/extrapolated", how, extrapolated, stage=stage))
    return out
