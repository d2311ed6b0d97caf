"""Evaluation to exact protocols (DESIGN.md section 6). One entry point per evaluation, each returning
`Measurement`s that `write_measurements` turns into results-table rows:

- `evaluate_retrieval(system, sets)`: recall@1/5/10 both ways and mean recall, all-captions and
  first-caption protocols, on the world's test split (`world_retrieval_set`) or a real benchmark
  (`benchmark_retrieval_set` over `xlcore.data` loaders);
- `evaluate_generation(system, world, config)`: compositional accuracy, world FID (and Inception FID
  where available), CLIP score in three conventions, cross-lingual consistency, culture accuracy;
- `cost_measurements(method, world)`: measured step time, FLOPs, memory, trainable share, and GPU-hours
  and dollars extrapolated to the published budget.

`evaluate_system` runs the first two for one system over a set of languages (what the study calls).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..config import GenerationEvalConfig
from .common import EnglishBackbone, Measurement, RunInfo, reads_language, write_measurements
from .cost import cost_measurements
from .generation import GenerationResult, evaluate_generation
from .retrieval import RetrievalSet, benchmark_retrieval_set, evaluate_retrieval, world_retrieval_set

log = logging.getLogger(__name__)

__all__ = ["EnglishBackbone", "GenerationEvalConfig", "GenerationResult", "Measurement", "RetrievalSet", "RunInfo",
           "benchmark_retrieval_set", "cost_measurements", "evaluate_generation", "evaluate_retrieval",
           "evaluate_system", "world_retrieval_set", "write_measurements"]


def evaluate_system(system, world, config: GenerationEvalConfig, *, captions_per_image: int = 2,
                    cache_dir: str | Path | None = None, progress: bool = True, prompts=None,
                    retrieval_sets: Sequence[RetrievalSet] | None = None, clip_scorer=None
                    ) -> tuple[list[Measurement], GenerationResult]:
    """Retrieval (if the system has a joint space) and generation in the languages of `config` it reads:
    on the world's test split and prompts, or on real ones (`retrieval_sets`, a prompt set `prompts`, a
    CLIP score model `clip_scorer`; see `real_evaluation`)."""
    languages: Sequence[str] = [lang for lang in config.languages if reads_language(system, lang)]
    if retrieval_sets is None:
        retrieval_sets = [world_retrieval_set(world, lang, captions_per_image) for lang in languages]
    else:
        retrieval_sets = [s for s in retrieval_sets if s.language in languages]
    measurements = evaluate_retrieval(system, retrieval_sets, progress=progress)
    if not getattr(system, "draws", True):  # a retrieval model (mCLIP as published): nothing conditions the UNet
        log.info("%s does not condition the UNet: retrieval only", getattr(system, "name", system))
        return measurements, GenerationResult([])
    generation = evaluate_generation(system, prompts if prompts is not None else world, config, cache_dir=cache_dir,
                                     progress=progress, clip_scorer=clip_scorer)
    return measurements + generation.measurements, generation
