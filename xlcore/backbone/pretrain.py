"""Pretraining the toy backbone: scorer, English CLIP, the two multilingual encoders, the decoder-only
language model (read by the LLM connector), then the UNet.

Each component trains with `xlcore.train.Trainer` in its own folder under `work_dir` (checkpoints, loss
log), so the whole job resumes after an interruption, and is exported as float16 safetensors into the
package's assets when it finishes. The UNet also exports its EMA weights at every checkpoint, so a long
run can be shipped (and continued later) at any point; `backbone.json` records how far each component
trained, with the data seed and the command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from diffusers import UNet2DConditionModel
from transformers import CLIPModel, PreTrainedTokenizerFast, Qwen2ForCausalLM, XLMRobertaForMaskedLM

from .. import provenance
from ..config import WorldConfig, option, to_dict
from ..errors import ConfigError
from ..train import TrainConfig, Trainer, write_json
from ..world import World
from . import toy
from .scorer import AttributeScorer

log = logging.getLogger(__name__)
COMPONENTS = ("scorer", "clip", "multilingual_unaligned", "multilingual", "language_model", "unet")


@dataclass(frozen=True)
class ToyPretrainConfig:
    """Budgets of every toy backbone component; `smoke` shrinks each to a few steps."""

    world: WorldConfig = option(WorldConfig, "The world the backbone is pretrained on (its seed is recorded).")
    components: tuple[str, ...] = option(lambda: COMPONENTS, "Which components to (re)train, in this order.")
    scorer: TrainConfig = option(
        lambda: TrainConfig(steps=800, batch_size=128, lr=2e-3, weight_decay=1e-4, warmup_steps=50,
                            checkpoint_every_steps=200),
        "Attribute scorer: cross-entropy on labelled renders of all shapes.")
    clip: TrainConfig = option(
        lambda: TrainConfig(steps=1500, batch_size=256, lr=1e-3, weight_decay=0.1, warmup_steps=100,
                            checkpoint_every_steps=250),
        "English CLIP: symmetric InfoNCE on the English image-text set.")
    multilingual_unaligned: TrainConfig = option(
        lambda: TrainConfig(steps=2000, batch_size=128, lr=5e-4, weight_decay=0.01, warmup_steps=100,
                            checkpoint_every_steps=500),
        "The unaligned multilingual encoder (`toy:unaligned`): masked language modelling on monolingual text "
        "of every language only, so nothing aligns its languages (bitext top-1 at chance).")
    multilingual: TrainConfig = option(
        lambda: TrainConfig(steps=2000, batch_size=128, lr=5e-4, weight_decay=0.01, warmup_steps=100,
                            checkpoint_every_steps=500),
        "The default multilingual encoder: the same masked language modelling plus XLM's translation language "
        "modelling on the encoder's own small parallel share (`World.encoder_parallel_text`), which partly "
        "aligns its languages as real multilingual encoders are partly aligned by their pretraining data.")
    whole_word_masking: bool = option(True, "Mask whole words in the aligned encoder's pretraining (the unaligned "
                                            "one keeps the recorded piece masking); see MaskedLanguageModelTask.")
    translation_ranking_weight: float = option(
        0.03, "Weight of LaBSE's translation ranking on the aligned encoder's TLM pairs (see "
              "MaskedLanguageModelTask): MLM + TLM alone left the toy encoder at chance; x 0.1 overshot XLM-R's "
              "published range (bitext top-1 91-95% at the last layer, benchmarks/README.md), so the knob came down.")
    tlm_share: float = option(0.5, "Share of each batch of the aligned encoder that is translation language "
                                   "modelling (the rest masked language modelling).")
    language_model: TrainConfig = option(
        lambda: TrainConfig(steps=1000, batch_size=128, lr=1e-3, weight_decay=0.01, warmup_steps=100,
                            checkpoint_every_steps=500),
        "The decoder-only language model (`toy:llm`, issue 26): next-token prediction on the same monolingual text, "
        "with the aligned encoder's recipe on its parallel share (translation pairs as one sequence, translation "
        "ranking x translation_ranking_weight); its losses flatten by step 500 (next-token 0.30 at step 1,000).",
        added=True)
    unet: TrainConfig = option(
        lambda: TrainConfig(steps=30000, batch_size=32, lr=5e-4, weight_decay=0.01, warmup_steps=200,
                            ema_decay=0.999, mixed_precision="bf16", checkpoint_every_steps=1000,
                            checkpoint_every_minutes=10.0),
        "UNet: v-prediction denoising on English image-text through the frozen CLIP text tower. bf16 autocast "
        "(fp32 master weights) measured 1.33x the samples/s of fp32 on a 2-core AVX512-BF16 CPU. Without EMA "
        "warmup the shipped UNet's EMA (1,709 steps) still held 18% of the random initialisation, and the same run continued to 3,000 steps scores 93% / 58% where it scored 33% / 18% "
        "(benchmarks/backbone_curve.py). A pretraining from scratch should add `--set unet.ema_warmup=true` (diffusers' "
        "warmup); the default stays as the shipped run trained, which the tests' small backbone is built with.")
    monolingual_per_language: int = option(50_000, "Sentences per language for masked language modelling.",
                                           smoke=64)


def _record(out_dir: Path, component: str, steps: int, config: ToyPretrainConfig, extra: dict | None = None) -> None:
    """Update backbone.json with how far `component` trained and how to reproduce it."""
    path = out_dir / "backbone.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    info.setdefault("components", {})[component] = {
        "steps": steps, "train_config": to_dict(getattr(config, component)), **(extra or {}),
    }
    info.update({
        "world": to_dict(config.world), "data_seed": config.world.seed, "reproduce": toy.REPRODUCE_COMMAND,
        "architectures": "xlcore.backbone.toy: clip_config, unet_config, multilingual_config, AttributeScorer",
        "git_commit": provenance.git_commit(), "hardware": provenance.hardware(), "updated": provenance.utc_now(),
    })
    write_json(path, info)


def tokenizers(world: World, out_dir: Path) -> tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast]:
    """Build the two tokenizers once and keep them in out_dir (later components and resumes reuse them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    english_path, multi_path = out_dir / "english_tokenizer.json", out_dir / "multilingual_tokenizer.json"
    if not english_path.exists():
        toy.build_english_tokenizer().backend_tokenizer.save(str(english_path))
    if not multi_path.exists():
        toy.build_multilingual_tokenizer(world).backend_tokenizer.save(str(multi_path))
    return toy.load_tokenizers(out_dir)


@dataclass
class _Job:
    """What every component's training gets."""

    component: str
    config: ToyPretrainConfig
    world: World
    english: PreTrainedTokenizerFast
    multilingual: PreTrainedTokenizerFast
    run_dir: Path
    out_dir: Path

    @property
    def train_config(self) -> TrainConfig:
        return getattr(self.config, self.component)


def _train_scorer(job: _Job) -> None:
    scorer = AttributeScorer()
    Trainer(toy.ScorerTask(scorer, job.world, size=200_000), job.train_config, job.run_dir).fit()
    toy.save_component(scorer, "scorer", job.out_dir)
    _record(job.out_dir, "scorer", job.train_config.steps, job.config)


def _train_clip(job: _Job) -> None:
    clip = CLIPModel(toy.clip_config(len(job.english)))
    Trainer(toy.ClipTask(clip, job.english, job.world), job.train_config, job.run_dir).fit()
    toy.save_component(clip, "clip", job.out_dir)
    _record(job.out_dir, "clip", job.train_config.steps, job.config)


def _train_multilingual(job: _Job) -> None:
    aligned = job.component == "multilingual"
    model = XLMRobertaForMaskedLM(toy.multilingual_config(len(job.multilingual)))
    task = toy.MaskedLanguageModelTask(
        model, job.multilingual, job.world, job.config.monolingual_per_language,
        parallel_per_language=job.world.config.n_encoder_parallel if aligned else 0, tlm_share=job.config.tlm_share,
        whole_word_masking=aligned and job.config.whole_word_masking,
        translation_ranking_weight=job.config.translation_ranking_weight if aligned else 0.0)
    Trainer(task, job.train_config, job.run_dir).fit()
    toy.save_component(model.roberta, job.component, job.out_dir)  # the MLM head is not part of the backbone
    objective = (f"MLM + TLM ({job.config.tlm_share:g} of each batch) on {job.world.config.n_encoder_parallel} "
                 f"encoder-only parallel pairs per language, {'whole-word' if job.config.whole_word_masking else 'piece'}"
                 f" masking, translation ranking x {job.config.translation_ranking_weight:g}") if aligned \
        else "MLM on monolingual text only"
    _record(job.out_dir, job.component, job.train_config.steps, job.config, {"objective": objective})


def _train_language_model(job: _Job) -> None:
    model = Qwen2ForCausalLM(toy.language_model_config(len(job.multilingual)))
    task = toy.CausalLanguageModelTask(
        model, job.multilingual, job.world, job.config.monolingual_per_language,
        parallel_per_language=job.world.config.n_encoder_parallel, tlm_share=job.config.tlm_share,
        translation_ranking_weight=job.config.translation_ranking_weight)
    Trainer(task, job.train_config, job.run_dir).fit()
    toy.save_component(model.model, "language_model", job.out_dir)  # the LM head is tied to the embeddings
    _record(job.out_dir, "language_model", job.train_config.steps, job.config, {
        "objective": f"next-token prediction; translation pairs as one sequence ({job.config.tlm_share:g} of each "
                     f"batch, {job.world.config.n_encoder_parallel} encoder-only pairs per language); translation "
                     f"ranking x {job.config.translation_ranking_weight:g}"})


def _train_unet(job: _Job) -> None:
    clip = toy.load_component(CLIPModel(toy.clip_config(len(job.english))), "clip", job.out_dir)
    unet = UNet2DConditionModel(**toy.unet_config())
    trainer = Trainer(toy.DiffusionTask(unet, clip, job.english, job.world), job.train_config, job.run_dir)

    def export(step: int) -> None:  # ship the EMA weights as they are now, at every checkpoint
        state = trainer.ema_state() or trainer._trainable_state()
        state = {k.removeprefix("unet."): v for k, v in state.items()}
        toy.save_component(unet, "unet", job.out_dir, state=state)
        # One snapshot per checkpoint, so the quality curve (quality against steps) can be measured afterwards
        # without slowing the training job: `benchmarks/backbone_curve.py` evaluates them.
        toy.save_component(unet, f"unet_step{step:06d}", job.run_dir / "snapshots", state=state)
        _record(job.out_dir, "unet", step, job.config, {"weights": "EMA" if trainer.ema is not None else "raw"})

    trainer.on_checkpoint = export
    info_path = job.out_dir / "backbone.json"
    shipped = json.loads(info_path.read_text()).get("components", {}).get("unet", {}) if info_path.exists() else {}
    if not trainer.checkpoint_candidates() and shipped.get("steps", 0) > 0:
        # The checkpoint is gone (a new machine) but the exported UNet survives: continue from it.
        weights = toy.load_component(UNet2DConditionModel(**toy.unet_config()), "unet", job.out_dir)
        trainer.warm_start({"unet": weights.state_dict()}, shipped["steps"])
    trainer.fit()


TRAIN_COMPONENT = {"scorer": _train_scorer, "clip": _train_clip, "multilingual_unaligned": _train_multilingual,
                   "multilingual": _train_multilingual, "language_model": _train_language_model, "unet": _train_unet}


def pretrain_toy_backbone(config: ToyPretrainConfig, work_dir: str | Path,
                          out_dir: str | Path = toy.ASSETS) -> Path:
    """Train the chosen components in order, resuming each from its checkpoint; returns out_dir."""
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    unknown = [c for c in config.components if c not in TRAIN_COMPONENT]
    if unknown:
        raise ConfigError(f"unknown component(s) {unknown}; components: {', '.join(COMPONENTS)}")
    world = World(config.world)
    english, multilingual = tokenizers(world, out_dir)
    for component in config.components:
        job = _Job(component, config, world, english, multilingual, work_dir / component, out_dir)
        log.info("pretraining %s for %d steps in %s", component, job.train_config.steps, job.run_dir)
        TRAIN_COMPONENT[component](job)
    return out_dir


def smoke_config() -> ToyPretrainConfig:
    """Every component for a couple of steps (tests)."""
    from ..config import apply_smoke

    return dataclasses.replace(apply_smoke(ToyPretrainConfig()), world=apply_smoke(WorldConfig()))
