"""Generation quality of a system (a method, or the English backbone) on parallel prompts: the world's,
or real captions from benchmark files (`xlcore.evaluate.prompt_sets`: Multi30K, XM3600, CoCo-CroLa concepts).

One entry point, `evaluate_generation`, draws images for the same prompts in every language with the
same seeds (image i of every language starts from the same noise: seed = 100,003 * config.seed + prompt
index), then measures per language:

- compositional accuracy (world prompts only): the attribute scorer judges each image against the scene its
  prompt asked for, per attribute (shape, colour, size, position, relation) and GenEval style (`all`:
  the image counts only if everything asked is right) (`evaluate.compositional`);
- world FID: Frechet distance of the scorer's 256-d features against clean renders of the same prompts
  (`fid_scorer256`; a world metric), and Inception FID (`fid_inception2048`) where its weights exist,
  against the world's renders or a real prompt set's own images;
- CLIP score against the English caption of each prompt under three conventions (`evaluate.clip_score`);
- cross-lingual consistency (CoCo-CroLa style): cosine similarity between the CLIP image embeddings of
  the system's image for prompt i in language X and the untouched English pipeline's image for the
  English prompt i with the same seed;
- culture-concept accuracy (toy world, non-English): the scorer judges images drawn from prompts that
  name the language's own concept, which the English backbone never saw;
- CoCo-CroLa's correctness, self-consistency and inverse specificity (`evaluate.concepts`) on the
  world's shapes or a real concept list, several samples per concept.

Every protocol choice (sampler, steps, guidance, negative prompt, seeds, feature extractor, CLIP model
and convention, caption language, reference set) is written into the measurement's protocol text.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..backbone import quality
from ..backbone.pipeline import with_sampler
from ..config import GenerationEvalConfig, config_hash
from ..errors import ConfigError, MissingWeightsError
from .clip_score import ClipScorer, ToyClipScorer
from .common import EnglishBackbone, Measurement, reads_language
from .compositional import GENEVAL_TASKS, geneval_overall, judge, summarise
from .concepts import CocoCrolaFeatures, measure_concepts
from .fid import CleanInception, ScorerFeatures, frechet_distance
from .prompt_sets import WorldPrompts

log = logging.getLogger(__name__)

SEED_STRIDE = 100_003  # prompt i of evaluation seed s starts from noise seeded s * SEED_STRIDE + i


@dataclass
class GenerationResult:
    """The measurements, and the images per language (for figures and the demo)."""

    measurements: list[Measurement]
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    culture_images: dict[str, torch.Tensor] = field(default_factory=dict)


def seeds_for(prompts: Sequence, seed: int) -> list[int]:
    return [seed * SEED_STRIDE + p.index for p in prompts]


def _sampling_protocol(config: GenerationEvalConfig) -> str:
    sampler = {"ddim": "DDIM", "dpm++": "DPM-Solver++ 2M"}.get(config.sampler, config.sampler)
    return (f"{sampler} {config.steps} steps (trailing), {config.precision}, guidance {config.guidance_scale:g} with the "
            f"system's own empty prompt, seeds {config.seed}*{SEED_STRIDE}+prompt index, same in every language")


def draw(system, texts: Sequence[str], lang: str, seeds: Sequence[int], config: GenerationEvalConfig) -> torch.Tensor:
    """Images in [0, 1] for `texts` in `lang` through `system`'s encoder and UNet."""
    if config.precision not in ("bf16", "fp32"):
        raise ConfigError(f"precision must be 'bf16' or 'fp32', got {config.precision!r}")
    device = system.backbone.device
    backbone = with_sampler(system.backbone, config.sampler)
    out = []
    for start in range(0, len(texts), config.batch_size):
        chunk = list(texts[start:start + config.batch_size])
        states = system.encode(chunk, lang).token_states
        negative = system.negative_prompt_embeds(1, lang)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            images = quality.generate(backbone, states, seeds[start:start + len(chunk)], config.guidance_scale,
                                      config.steps, batch_size=config.batch_size, unet=system.unet, negative=negative)
        out.append(images.float())
    return torch.cat(out)


def prompt_set(source):
    """A prompt set (`xlcore.evaluate.prompt_sets`) as it is, or the world's prompts for a world."""
    return source if hasattr(source, "references") and hasattr(source, "prompts") else WorldPrompts(source)


def english_reference(backbone, source, config: GenerationEvalConfig, cache_dir: str | Path | None = None
                      ) -> torch.Tensor:
    """The untouched English pipeline's images of the first n prompts (consistency's reference), kept in
    `cache_dir` keyed by everything they depend on, so every method of a study shares one drawing."""
    prompts_of = prompt_set(source)
    prompts = prompts_of.prompts(config.n_prompts)
    key = {"backbone": backbone.fingerprint(), **prompts_of.descriptor(), "n": len(prompts), "seed": config.seed,
           "steps": config.steps, "guidance": config.guidance_scale, "precision": config.precision,
           **({"sampler": config.sampler} if config.sampler != "ddim" else {})}
    path = Path(cache_dir) / f"english_reference-{config_hash(key)}.pt" if cache_dir else None
    if path is not None and path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception as err:  # a torn or corrupt file is redrawn, not trusted
            log.warning("redrawing the English reference: %s is unreadable (%s)", path, err)
    images = draw(EnglishBackbone(backbone), [p.captions["en"] for p in prompts], "en", seeds_for(prompts, config.seed),
                  config)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save((images * 255).round().to(torch.uint8).float().div(255), tmp)
        tmp.replace(path)
        images = torch.load(path, weights_only=True)  # the cached copy is 8-bit: use the same numbers every time
    return images


def concept_features(backbone, clip_scorer: ClipScorer):
    """The feature extractor of CoCo-CroLa's scores: CoCo-CroLa's own CLIP vision tower on a real preset
    where its weights are on the machine, otherwise the CLIP score's image tower; returns (embed, name)."""
    if backbone.preset != "toy":
        try:
            features = CocoCrolaFeatures(device=backbone.device)
            return features, features.name
        except MissingWeightsError as err:
            log.warning("CoCo-CroLa's scores with %s instead of its own extractor: %s", clip_scorer.name, err)
    return clip_scorer.encode_images, f"{clip_scorer.name} image embeddings"


def evaluate_generation(system, source, config: GenerationEvalConfig | None = None, *,
                        clip_scorer: ClipScorer | None = None, reference: torch.Tensor | None = None,
                        cache_dir: str | Path | None = None, progress: bool = True) -> GenerationResult:
    """Draw and measure (see the module docstring) on `source`'s prompts (a world or a prompt set);
    `reference` (or `cache_dir`) supplies the English pipeline's images for consistency, which are drawn
    when neither is given."""
    config = config or GenerationEvalConfig()
    backbone = system.backbone
    prompts_of = prompt_set(source)
    prompts = prompts_of.prompts(config.n_prompts)
    seeds = seeds_for(prompts, config.seed)
    scenes = [p.scene for p in prompts]
    english_captions = [p.captions["en"] for p in prompts] if "en" in prompts_of.languages else None
    clip_scorer = clip_scorer or ToyClipScorer(backbone)
    scorer = backbone.scorer if prompts_of.scored else None
    real = prompts_of.references(prompts)
    reference_digest = hashlib.sha256(real.numpy().tobytes()).hexdigest()[:12] if real is not None else ""
    inception = None
    if config.inception_fid and real is not None and (backbone.preset != "toy" or not prompts_of.scored):
        try:
            inception = CleanInception()
        except MissingWeightsError as err:
            log.warning("no Inception FID: %s", err)
    if config.consistency and reference is None and english_captions is not None:
        reference = english_reference(backbone, prompts_of, config, cache_dir)
    languages = [lang for lang in config.languages if lang in prompts_of.languages and reads_language(system, lang)]
    skipped = sorted(set(config.languages) - set(languages))
    if skipped:
        log.info("%s does not read %s; skipped", getattr(system, "name", system), ", ".join(skipped))
    sampling = _sampling_protocol(config)
    result = GenerationResult([])
    bench = prompts_of.name
    for lang in tqdm(languages, desc=f"generation ({getattr(system, 'name', 'system')})", unit="lang", disable=not progress):
        images = draw(system, [p.captions[lang] for p in prompts], lang, seeds, config)
        result.images[lang] = images
        n = f"{len(prompts)} prompts"
        if scorer is not None:
            judged = judge(scorer.predict(images), scenes)
            summary = summarise(judged)
            overall = geneval_overall(summary)
            if overall is not None:
                summary["overall"] = overall
            result.measurements.append(Measurement(
                lang, bench, f"{n}; {sampling}; world attribute scorer; 'all': every asked attribute right, slot-based, "
                "pooled over prompts (GenEval's '% correct images'); 'geneval_*': GenEval's task groups judged as GenEval "
                "does (two objects in any order); 'overall': their unweighted mean (GenEval's headline); exact averages",
                {f"compositional_{k}": v for k, v in summary.items()},
                per_prompt={f"compositional_{k}": [-1 if v != v else int(v) for v in values.tolist()]
                            for k, values in judged.items() if k in ("all", *GENEVAL_TASKS)}))
            result.measurements.append(Measurement(
                lang, bench, f"{n}; {sampling}; Frechet distance of the world scorer's 256-d penultimate features (resize: "
                f"area to 32 px) against clean renders of the same prompts (sha256 {reference_digest}; list in "
                f"assets/fid_reference_toy.csv); torchmetrics; a world metric, not comparable with published FID",
                {"fid_scorer256": frechet_distance(ScorerFeatures(scorer), real, images)}))
        if inception is not None:
            result.measurements.append(Measurement(
                lang, bench, f"{n}; {sampling}; Inception-v3 (torch-fidelity weights) pool 2048, clean-fid 'clean' resize "
                f"to 299, against {prompts_of.reference_note}; torchmetrics",
                {"fid_inception2048": frechet_distance(inception, real, images, batch_size=32)}))
        if english_captions is not None:
            scores = clip_scorer.scores(images, english_captions)
            result.measurements.append(Measurement(
                lang, bench, f"{n}; {sampling}; CLIP {clip_scorer.name} against the English caption of each prompt; "
                "raw_cos = mean cosine (AltDiffusion's convention), torchmetrics = max(100*mean cos, 0) computed by "
                "torchmetrics' CLIPScore, heim = mean of max(100*cos, 0) per image (HELM's English CLIPScorer), "
                "100cos = 100*mean cos", {f"clip_score_{k}": v for k, v in scores.items()}))
        if reference is not None:
            if len(reference) < len(images):
                raise ValueError(f"the English reference has {len(reference)} images for {len(images)} prompts")
            cos = clip_scorer.image_cosines(images, reference[:len(images)])
            result.measurements.append(Measurement(
                lang, bench, f"{n}; {sampling}; cosine of {clip_scorer.name} image embeddings between this image and the "
                "untouched English pipeline's image for the English prompt with the same seed (CoCo-CroLa style)",
                {"consistency_clip_cos": float(cos.double().mean())}))
        if lang != "en" and scorer is not None and config.n_culture_prompts:
            culture = prompts_of.culture_prompts(lang)[:config.n_culture_prompts]
            if culture:
                images = draw(system, [p.captions[lang] for p in culture], lang, seeds_for(culture, config.seed), config)
                result.culture_images[lang] = images
                summary = summarise(judge(scorer.predict(images), [p.scene for p in culture]))
                result.measurements.append(Measurement(
                    lang, "polyglot-shapes/culture-prompts",
                    f"{len(culture)} prompts naming {lang}'s own concept (never in English data); {sampling}; world "
                    "attribute scorer: 'shape' = the concept drawn, 'all' = every asked attribute right",
                    {f"culture_{k}": v for k, v in summary.items()}))
    concepts = prompts_of.concept_prompts(config.concept_samples) if config.concept_samples else []
    if concepts and languages:
        embed, extractor = concept_features(backbone, clip_scorer)
        source = "en" if "en" in prompts_of.languages else None
        own_english = reads_language(system, "en")

        def draw_concepts(texts, lang, indices, drawer=system):
            return draw(drawer, texts, lang, [config.seed * SEED_STRIDE + i for i in indices], config)

        def draw_english_pipeline(texts, lang, indices):  # the English model a per-language adapter plugs into
            return draw_concepts(texts, lang, indices, drawer=EnglishBackbone(backbone))

        scores = measure_concepts(draw_concepts, concepts, languages, embed, source,
                                  draw_source=None if own_english else draw_english_pipeline)
        against = ("the system's own English images" if own_english else
                   "the English pipeline's images: the system reads no English, it plugs into that pipeline")
        named = "CoCo-CroLa concept list" if not prompts_of.scored else "the world's shapes, each language's culture concept in it alone"
        for lang, values in scores.items():
            result.measurements.append(Measurement(
                lang, f"{bench}/concepts" if prompts_of.scored else bench,
                f"{len({p.concept for p in concepts if lang in p.captions})} concepts ({named}), {config.concept_samples} "
                f"samples each; {sampling}; features: {extractor}; CoCo-CroLa's correctness (against {against}), "
                "self-consistency, inverse specificity (against one image of every concept; lower is more specific)",
                {f"cococrola_{k}": v for k, v in values.items()}))
    return result
