"""The main job (`make study`): everything the toy study has so far, end to end, offline.

Steps run in order and each writes tidy rows to the preset's results table. A step whose run id already
has rows is skipped, so a rerun after an interruption continues where it stopped and never duplicates
rows. Later parts of the study (backbone quality, methods, evaluation, analysis) add steps here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .config import StudyConfig, config_hash
from .errors import XlcoreError
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


def sweep_methods(ctx: StudyContext) -> list[ResultRow]:
    """Train and evaluate every method through its notebook (`xlcore.sweep`): the grid of the study's
    methods x English and its target languages x its seed, plus the English backbone's reference cell.
    Each cell appends its own rows; finished cells are skipped, so a rerun continues where it stopped."""
    from .sweep import SweepConfig, run_sweep, summary

    config = ctx.config
    if config.preset != "toy":
        log.info("the study's sweep runs on the built-in world (toy preset); use `xlcore sweep` for %s", config.preset)
        return []
    # The cells run with the study's own resolved settings (method settings included), handed over whole.
    sweep = SweepConfig(preset=config.preset, methods=tuple(config.method_names),
                        languages=("en",) + tuple(config.method_languages), seeds=tuple(config.seeds),
                        curve_budgets=tuple(config.curve_budgets), curve_seeds=tuple(config.curve_seeds),
                        n_prompts=config.evaluation.n_prompts, smoke=config.smoke, output_dir=config.output_dir)
    outcomes = run_sweep(sweep, study=config)
    report = summary(outcomes)
    log.info("sweep: %s", report)
    if any(o.status == "failed" for o in outcomes):
        raise XlcoreError(f"some cells of the sweep failed (the others finished and are recorded):\n{report}")
    return []


def analysis(ctx: StudyContext) -> list[ResultRow]:
    """Tables (Markdown, LaTeX) and figures (PNG, SVG) drawn from the results table (`xlcore.analysis`)."""
    from .analysis import write_analysis

    ctx.written += write_analysis(ctx.config.results_path, ctx.figures_dir)
    return []


def side_by_side(ctx: StudyContext) -> list[ResultRow]:
    """One prompt in six languages through every trained method (figures/side_by_side). Drawn only where
    every method's training run is on this machine, so a fresh clone keeps the committed figure."""
    from .analysis import side_by_side_grid, trained_everywhere
    from .plotting import save_figure

    config = ctx.config
    if config.preset != "toy" or not trained_everywhere(config.output_dir, config.preset, config.seed,
                                                         tuple(config.method_languages)):
        log.info("side-by-side grid: not every method's training run is here; keeping the committed figure")
        return []
    figure = side_by_side_grid(config.output_dir, config.preset, config.seed, steps=config.sampling_steps)
    ctx.written += save_figure(figure, ctx.figures_dir / "side_by_side")
    return []


def world_figure(ctx: StudyContext) -> list[ResultRow]:
    """Write the sample grid (images with their captions in every language) to figures/."""
    ctx.written += sample_grid(ctx.world, ctx.figures_dir / "world_samples")
    return []


STEPS: list[tuple[str, Callable[[StudyContext], list[ResultRow]]]] = [
    ("world statistics", world_statistics),
    ("world sample grid", world_figure),
    ("toy backbone quality", backbone_quality),
    ("methods: train and evaluate (papermill sweep)", sweep_methods),
    ("analysis: tables and figures", analysis),
    ("side-by-side image grid", side_by_side),
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
