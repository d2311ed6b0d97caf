"""The main job (`make study`): everything the toy study has so far, end to end, offline.

Steps run in order and each writes tidy rows to the preset's results table. A step whose run id already
has rows is skipped, so a rerun after an interruption continues where it stopped and never duplicates
rows. Later parts of the study (backbone quality, methods, evaluation, analysis) add steps here.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .config import StudyConfig, config_hash
from .results import ResultRow, ResultsStore
from .world import World
from .world.figures import sample_grid

log = logging.getLogger(__name__)

RETRIEVAL_PROTOCOL = "t2i+i2t, one caption per image, cosine, pessimistic ties"


@dataclass
class StudyContext:
    """What every step gets: the config, the world, the results table and where figures go."""

    config: StudyConfig
    world: World
    results: ResultsStore
    figures_dir: Path
    written: list[Path]


def world_statistics(ctx: StudyContext) -> list[ResultRow]:
    """Measure the world: regime sizes, caption variety and length per language, render speed."""
    world, config = ctx.world, ctx.config
    run_id = f"world-{config_hash(config.world)}"
    if run_id in ctx.results.run_ids():
        log.info("world statistics for %s already recorded; skipping", run_id)
        return []
    rows: list[ResultRow] = []
    probe = min(1000, config.world.n_per_language)
    for lang in tqdm(world.languages, desc="world statistics", unit="lang"):
        texts = world.monolingual_text(lang, size=probe)
        captions = [texts[i]["text"] for i in range(len(texts))]
        metrics = {
            "monolingual_items": config.world.n_monolingual,
            "distinct_captions_per_probe": len(set(captions)),
            "mean_caption_chars": float(np.mean([len(c) for c in captions])),
        }
        if lang == "en":
            metrics["image_text_items"] = config.world.n_english
        else:
            metrics["image_text_items"] = config.world.n_per_language
            metrics["parallel_pairs"] = config.world.n_parallel
            metrics["culture_prompts"] = len(world.culture_prompts(lang))
            own = world.language_image_text(lang, size=probe)
            metrics["culture_share_measured"] = float(
                np.mean([own.item(i).scene.culture_language == lang for i in range(len(own))])
            )
        rows += ctx.results.make_rows(
            run_id=run_id, config=config, seed=config.world.seed, method="none", stage="data", language=lang,
            benchmark="polyglot-shapes", metrics=metrics, protocol=f"probe={probe} monolingual captions",
        )
    test = world.retrieval_test()
    rows += ctx.results.make_rows(
        run_id=run_id, config=config, seed=config.world.seed, method="none", stage="data", language="all",
        benchmark="polyglot-shapes/retrieval-test",
        metrics={"images": len(test), "distinct_descriptions": len({test.item(i).scene.key() for i in range(len(test))})},
    )
    english = world.english_image_text()
    n = min(500, len(english))
    start = time.perf_counter()
    for i in range(n):
        world.render(english.item(i))
    rate = n / (time.perf_counter() - start)
    rows += ctx.results.make_rows(
        run_id=run_id, config=config, seed=config.world.seed, method="none", stage="data", language="en",
        benchmark="polyglot-shapes", metrics={"render_images_per_s": rate},
        protocol=f"{n} renders, {config.world.image_size}px, supersample {config.world.supersample}, 1 process",
        notes="measured on this machine",
    )
    return rows


def backbone_quality(ctx: StudyContext) -> list[ResultRow]:
    """Measure the shipped toy backbone against its quality bar and draw English generations."""
    if ctx.config.preset != "toy":
        log.info("backbone quality bar is defined for the toy preset only; skipping for %s", ctx.config.preset)
        return []
    from .backbone import quality
    from .backbone.figures import generation_grid
    from .backbone.toy import load_toy_backbone

    config, world = ctx.config, ctx.world
    backbone = load_toy_backbone(config.toy_backbone_dir) if config.toy_backbone_dir else load_toy_backbone()
    # Keyed by what the measurement depends on, so unrelated study settings do not trigger a rerun.
    measured = {"world": config.world, "seed": config.seed, "sampling_steps": config.sampling_steps,
                "guidance_scales": list(config.guidance_scales)}
    run_id = f"backbone-{backbone.fingerprint()}-{config_hash(measured)}"
    figure = ctx.figures_dir / "toy_backbone_generations"
    if run_id in ctx.results.run_ids():
        log.info("backbone quality of %s already recorded; skipping", run_id)
        return []
    common = dict(run_id=run_id, config=config, seed=config.seed, method="english-backbone", stage="pretrained",
                  language="en", notes=f"unet steps {backbone.info.get('components', {}).get('unet', {}).get('steps', '?')}")
    rows = ctx.results.make_rows(benchmark="polyglot-shapes/scorer-test", metrics=quality.scorer_accuracy(backbone, world),
                                 protocol="retrieval-test renders + culture prompts, scorer heads", **common)
    retrieval = quality.english_retrieval(backbone, world)
    rows += ctx.results.make_rows(benchmark="polyglot-shapes/retrieval-test", metrics=retrieval.as_metrics(),
                                  protocol=RETRIEVAL_PROTOCOL, **common)
    generation = quality.english_generation(backbone, world, config.guidance_scales, steps=config.sampling_steps,
                                            seed=config.seed)
    for scale, metrics in generation.items():
        rows += ctx.results.make_rows(
            benchmark="polyglot-shapes/generation-prompts", metrics=metrics,
            protocol=f"DDIM {config.sampling_steps} steps (trailing), guidance {scale:g}, scorer-judged", **common)
    best = max(generation, key=lambda s: generation[s].get("single_shape_colour", 0.0))
    ctx.written += generation_grid(backbone, world, figure, guidance_scale=best, steps=config.sampling_steps)
    return rows


@dataclass(frozen=True)
class MethodRunConfig:
    """Everything one method's training depends on (its hash keys the training run)."""

    preset: str
    method: str
    language: str
    method_config: Any
    world: Any
    seed: int
    feature_cache: bool


@dataclass(frozen=True)
class EvaluationRunConfig:
    """Everything one evaluation depends on: the trained system (by its training run id) and the protocol."""

    system: str  # the training run id, or the English backbone's fingerprint
    generation: Any
    retrieval_captions_per_image: int


def method_runs(config: StudyConfig, world: World) -> list[tuple[str, str | None]]:
    """(method, language or None) pairs of the study's method step."""
    from .registry import METHODS

    names = config.methods or tuple(METHODS.names())
    runs = []
    for name in names:
        if METHODS.get(name).per_language:
            runs += [(name, world.check_language(lang)) for lang in config.method_languages]
        else:
            runs.append((name, None))
    return runs


def _method_run(ctx: StudyContext, backbone, name: str, language: str | None):
    """The method (untrained), its training run config, id and folder."""
    from .config import apply_smoke
    from .methods._base import build_method
    from .registry import METHODS

    config = ctx.config
    method_config = METHODS.get(name).config_class()
    method = build_method(name, backbone, apply_smoke(method_config) if config.smoke else method_config,
                          language=language, languages=ctx.world.languages, seed=config.seed)
    run = MethodRunConfig(config.preset, name, language or "all", method.config, config.world, config.seed,
                          config.feature_cache)
    run_id = f"method-{name}-{language or 'all'}-{backbone.fingerprint()[:8]}-{config_hash(run)}"
    return method, run, run_id, config.run_root / name / (language or "all")


def _toy_backbone(config: StudyConfig):
    from .backbone.toy import load_toy_backbone

    return load_toy_backbone(config.toy_backbone_dir) if config.toy_backbone_dir else load_toy_backbone()


def train_methods(ctx: StudyContext) -> list[ResultRow]:
    """Train every method (resumable, per-stage checkpoints) and record what its training cost.

    Rows go to the table one run at a time, so an interruption loses at most the run in progress, and
    its training resumes from its last checkpoint.
    """
    from .cache import FeatureCache
    from .evaluate import RunInfo, cost_measurements, write_measurements
    from .evaluate.common import Measurement
    from .experiment import train_method

    config, world = ctx.config, ctx.world
    if config.preset != "toy":
        log.info("the method step trains on the built-in world (toy preset); skipping for %s", config.preset)
        return []
    backbone = _toy_backbone(config)
    cache = FeatureCache(config.run_root / "feature_cache") if config.feature_cache else None
    for name, language in tqdm(method_runs(config, world), desc="methods: train", unit="run"):
        method, run, run_id, run_dir = _method_run(ctx, backbone, name, language)
        if run_id in ctx.results.run_ids():
            log.info("%s already recorded; skipping", run_id)
            continue
        ctx.results.save_config(run)
        costs = train_method(method, world, run_dir, cache=cache)
        measurements = [Measurement(
            language or "all", "cost/training",
            f"feature cache {'on' if cost.feature_cache else 'off'}; wall time summed over the sessions that trained "
            "it (checkpoint writes included)",
            {"trainable_parameters": cost.trainable_parameters, "train_steps": cost.steps}
            | ({} if math.isnan(cost.seconds) else {"train_seconds": cost.seconds}),  # NaN: an old checkpoint
            stage=cost.stage) for cost in costs]
        measurements += cost_measurements(method, world, steps=config.cost_timed_steps)
        write_measurements(measurements, RunInfo(run_id, name, "final", run, config.seed, method.label), ctx.results)
    return []


def evaluate_methods(ctx: StudyContext) -> list[ResultRow]:
    """Evaluate the English backbone and every trained method: world retrieval and generation, in English
    and the study's target languages, under one protocol (`xlcore.evaluate`)."""
    import dataclasses

    from .evaluate import EnglishBackbone, RunInfo, evaluate_system, write_measurements
    from .methods._base import load_method

    config, world = ctx.config, ctx.world
    if config.preset != "toy":
        log.info("the evaluation step runs on the built-in world (toy preset); skipping for %s", config.preset)
        return []
    backbone = _toy_backbone(config)
    generation = dataclasses.replace(config.evaluation, languages=("en",) + tuple(config.method_languages),
                                     seed=config.seed)
    cache_dir = config.run_root / "generation_cache"
    systems = [(None, None)] + method_runs(config, world)
    for name, language in tqdm(systems, desc="methods: evaluate", unit="system"):
        if name is None:
            trained_id, label = f"backbone-{backbone.fingerprint()}", "english-backbone"
        else:
            method, _, trained_id, run_dir = _method_run(ctx, backbone, name, language)
            label = name
        run = EvaluationRunConfig(trained_id, generation, config.retrieval_captions_per_image)
        run_id = f"eval-{label}-{language or 'all'}-{config_hash(run)}"
        if run_id in ctx.results.run_ids():
            log.info("%s already recorded; skipping", run_id)
            continue
        if name is None:
            system, notes, stage = EnglishBackbone(backbone), "", "pretrained"
        elif not (run_dir / "method").exists():
            log.warning("%s has not been trained (no %s); skipping its evaluation", trained_id, run_dir / "method")
            continue
        else:
            system, notes, stage = load_method(run_dir / "method", backbone), method.label, "final"
        ctx.results.save_config(run)
        languages = dataclasses.replace(generation, languages=("en", language) if language else generation.languages)
        measurements, _ = evaluate_system(system, world, languages, captions_per_image=config.retrieval_captions_per_image,
                                          cache_dir=cache_dir)
        write_measurements(measurements, RunInfo(run_id, label, stage, run, config.seed, notes), ctx.results)
    return []


def world_figure(ctx: StudyContext) -> list[ResultRow]:
    """Write the sample grid (images with their captions in every language) to figures/."""
    ctx.written += sample_grid(ctx.world, ctx.figures_dir / "world_samples")
    return []


STEPS: list[tuple[str, Callable[[StudyContext], list[ResultRow]]]] = [
    ("world statistics", world_statistics),
    ("world sample grid", world_figure),
    ("toy backbone quality", backbone_quality),
    ("methods: train", train_methods),
    ("methods: evaluate", evaluate_methods),
]


def run_study(config: StudyConfig) -> StudyContext:
    """Run every step of the study for `config`; returns what was written."""
    results = ResultsStore(config.results_path)
    results.save_config(config)
    ctx = StudyContext(config, World(config.world), results, Path(config.figures_dir), [])
    for name, step in tqdm(STEPS, desc=f"study ({config.preset})", unit="step"):
        log.info("study step: %s", name)
        rows = step(ctx)
        if rows:
            results.append(rows)
    ctx.written.insert(0, results.path)
    return ctx
