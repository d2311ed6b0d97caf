"""One cell of the study's grid: train a method (or reuse its training) and evaluate it in one language.

A method notebook (`notebooks/methods/<method>.ipynb`) is a thin driver of `CellRun`; the sweep executes
it with papermill once per (method, language, seed). Layout under `<output_dir>/<preset>/<method>/`:

    <language>/<seed>/              the cell: executed notebook, config.json (the resolved settings), params.json,
                                    results.csv (its rows), done.json
    <all | language>/<seed>/train/  the training run: per-stage checkpoints, train logs, method/ (weights)

Methods trained once for all languages (TriKD, AltCLIP/AltDiffusion, MuLan, full fine-tuning, the toy
translator) share `all/<seed>/train/`: the first cell to get there trains (under a file lock, so parallel
workers never train the same run twice) and records the training cost; the others wait, then load it.
Per-language methods (IAP, PEA) train in their own cell. Rows reach the results table in one atomic
append per cell, after which `done.json` marks the cell finished; a rerun skips it, and an interrupted
cell resumes from its training checkpoints without duplicating rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import StudyConfig, config_hash, to_dict
from .errors import ConfigError
from .results import ResultRow, ResultsStore, atomic_write_bytes, file_lock, file_sha256
from .data.datafile import data_identity
from .settings import method_config, read_study_config, resolve_study, write_study_config

log = logging.getLogger(__name__)

ENGLISH_BACKBONE = "english-backbone"  # the untouched English pipeline, evaluated like a method


@dataclass(frozen=True)
class Cell:
    """One (method, language, seed) of a preset's grid, trained at `budget`, a share of each stage's steps (a
    learning-curve point below 1: an independent shorter run with its own schedule, not a snapshot)."""

    preset: str
    method: str
    language: str
    seed: int
    budget: float = 1.0

    @property
    def key(self) -> str:
        return f"{self.method}/{self.language}/{self.seed}{self.budget_suffix}"

    @property
    def budget_suffix(self) -> str:
        """'' at the full budget (the folders runs had before budgets existed), else '-b<share>'."""
        return "" if self.budget == 1.0 else f"-b{self.budget:g}"


def cell_dir(output_dir: str | Path, cell: Cell) -> Path:
    return Path(output_dir) / cell.preset / cell.method / cell.language / f"{cell.seed}{cell.budget_suffix}"


def train_dir(output_dir: str | Path, cell: Cell, per_language: bool) -> Path:
    scope = cell.language if per_language else "all"
    return Path(output_dir) / cell.preset / cell.method / scope / f"{cell.seed}{cell.budget_suffix}" / "train"


TRAINING_ID_FILE = "training_id"


def claim_train_dir(directory: Path, training_id: str, same_run: Callable[[dict], bool] = lambda meta: False) -> None:
    """Make `directory` the home of training run `training_id` (call it under the folder's lock).

    A train folder is keyed by method, scope, seed and budget only, so a run with other settings (another
    encoder, learning rate or backbone) would otherwise resume the old run's checkpoints as its own. The
    folder names its run in `training_id`; a folder holding another run is moved aside to
    `train-<its id>` (nothing is lost, and going back to those settings moves it back). A folder written
    before the file existed is kept only if its saved method's `method.json` passes `same_run` (its settings,
    seed and backbone are this run's); otherwise it moves aside to `train-unrecorded`."""
    marker = directory / TRAINING_ID_FILE
    if directory.exists() and any(p.name != TRAINING_ID_FILE for p in directory.iterdir()):
        held = marker.read_text().strip() if marker.exists() else None
        if held == training_id:
            return
        if held is None:
            meta_path = directory / "method" / "method.json"
            if meta_path.exists() and same_run(json.loads(meta_path.read_text())):
                atomic_write_bytes(marker, (training_id + "\n").encode())
                return
            held = "unrecorded"
        aside = directory.with_name(f"{directory.name}-{held}")
        suffix = 1
        while aside.exists():  # an unrecorded folder moved aside before
            suffix += 1
            aside = directory.with_name(f"{directory.name}-{held}-{suffix}")
        directory.rename(aside)
        log.warning("%s held training run %s (other settings); moved to %s", directory, held, aside)
    earlier = directory.with_name(f"{directory.name}-{training_id}")
    if earlier.exists() and not directory.exists():
        earlier.rename(directory)
        log.info("%s: taking back the run these settings trained before", directory)
        return
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, (training_id + "\n").encode())


@dataclass(frozen=True)
class TrainingRunConfig:
    """Everything a training run depends on (its hash keys the training rows)."""

    preset: str
    method: str
    scope: str  # 'all' or the language of a per-language method
    seed: int
    method_config: Any
    world: Any
    budget: float
    feature_cache: bool
    # The data file a real-data run trains on (its path and content hash); None for the built-in world,
    # and then left out of the run's identity, so runs recorded before real data existed keep their ids.
    data: Any = field(default=None, metadata={"added": True})
    # The weights of a method's own encoder (`multilingual_encoder`: toy:llm, toy:unaligned), which are not the
    # backbone's, so retraining them changes the run; None for a method reading the backbone's encoder.
    encoder: Any = field(default=None, metadata={"added": True})


@dataclass(frozen=True)
class EvaluationCellConfig:
    """Everything a cell's evaluation depends on."""

    trained: str  # the training run id (or the backbone fingerprint)
    language: str
    generation: Any
    retrieval_captions_per_image: int
    # The data file whose evaluation section (real prompts, retrieval benchmarks, CLIP model) the cell uses;
    # None for the world's, and then left out of the id (the cells recorded before it keep theirs).
    data: Any = field(default=None, metadata={"added": True})


def own_encoder_identity(config: Any, preset: str, toy_backbone_dir: str = "") -> str | None:
    """What names a method's own encoder's weights: on the toy its component file's hash; on a real preset
    its Hugging Face id or folder (the weights in a cache are not hashed). None when it reads the backbone's."""
    spec = getattr(config, "multilingual_encoder", "")
    if not spec:
        return None
    if preset == "toy":
        from .backbone.toy import ASSETS, TOY_ENCODERS

        path = Path(toy_backbone_dir or ASSETS) / f"{TOY_ENCODERS.get(spec, (spec,))[0]}.safetensors"
        return f"{spec}:{file_sha256(path)[:16]}" if path.exists() else spec
    return spec


def cell_identity(cell: Cell, study: StudyConfig, backbone_fingerprint: str, *, budget: float = 1.0,
                  n_prompts: int | None = None) -> tuple[TrainingRunConfig | None, str, EvaluationCellConfig, str]:
    """(training config, training run id, evaluation config, cell run id) of a cell, without building any
    model: the sweep uses it to skip cells whose rows are already in the results table."""
    from .registry import METHODS

    generation = study.evaluation
    if n_prompts is not None:
        generation = dataclasses.replace(generation, n_prompts=n_prompts)
    generation = dataclasses.replace(generation, languages=(cell.language,), seed=cell.seed)
    training = None
    point = "" if budget == 1.0 else f"-b{budget:g}"  # a learning-curve point says so in its ids (`run_budget`)
    if cell.method == ENGLISH_BACKBONE:
        training_id = f"backbone-{backbone_fingerprint}"
    else:
        cls = METHODS.get(cell.method)
        if cls.per_language and cell.language == "en":
            raise ConfigError(f"{cell.method} adapts the English model to one other language; 'en' is not a cell")
        config = method_config(study, cell.method)
        training = TrainingRunConfig(cell.preset, cell.method, cell.language if cls.per_language else "all", cell.seed,
                                     config, study.world, budget, study.feature_cache, data_identity(study),
                                     own_encoder_identity(config, cell.preset, study.toy_backbone_dir))
        training_id = (f"train-{cell.method}-{training.scope}-s{cell.seed}{point}-{backbone_fingerprint[:8]}-"
                       f"{config_hash(training)}")
    evaluation = EvaluationCellConfig(training_id, cell.language, generation, study.retrieval_captions_per_image,
                                      data_identity(study))
    cell_id = f"cell-{cell.method}-{cell.language}-s{cell.seed}{point}-{config_hash(evaluation)}"
    return training, training_id, evaluation, cell_id


def check_parameters(**values: tuple[Any, type | tuple[type, ...]]) -> None:
    """Refuse a notebook parameter of the wrong type (papermill injects whatever it is given; a seed of
    "0" or a budget of "half" must stop here with its name, not deep inside training)."""
    for name, (value, expected) in values.items():
        types = expected if isinstance(expected, tuple) else (expected,)
        wrong_bool = isinstance(value, bool) and bool not in types  # True is an int to Python, not a seed
        if wrong_bool or not isinstance(value, types):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"notebook parameter {name!r} must be {names}, got {type(value).__name__} {value!r}")


class CellRun:
    """What a method notebook does, step by step (each step is one notebook cell).

    The cell's settings are one resolved tree (`xlcore.settings`): `study`, or the `config_file` the sweep
    wrote, or the preset's; `overrides` and `smoke` apply on top. The tree the cell runs with is written
    to its folder as `config.json`. `data_file` trains on a data file's corpora instead of the world."""

    def __init__(self, cell: Cell, *, smoke: bool = False, output_dir: str | Path = "papermill_runs",
                 budget: float = 1.0, n_prompts: int | None = None, study: StudyConfig | None = None,
                 config_file: str | Path = "", data_file: str | Path = "", overrides: dict[str, Any] | None = None):
        from .backbone import load_backbone
        from .data.datafile import corpus_for
        from .registry import METHODS
        from .world import World

        check_parameters(preset=(cell.preset, str), method=(cell.method, str), language=(cell.language, str),
                         seed=(cell.seed, int), smoke=(smoke, bool), output_dir=(output_dir, (str, Path)),
                         budget=(budget, (int, float)), n_prompts=(n_prompts, (int, type(None))),
                         config_file=(config_file, (str, Path)), data_file=(data_file, (str, Path)),
                         overrides=(overrides, (dict, type(None))))
        if budget != 1.0 and cell.budget not in (1.0, budget):
            raise ConfigError(f"the cell is at budget {cell.budget:g}, the run asked for {budget:g}")
        budget = budget if budget != 1.0 else cell.budget
        if not 0 < budget <= 1:
            raise ConfigError(f"budget is the share of each stage's steps to train, in (0, 1]; got {budget}")
        cell = dataclasses.replace(cell, budget=budget)  # its folders say which budget they hold
        self.cell, self.output_dir, self.budget = cell, Path(output_dir), budget
        if study is None and config_file:
            study = read_study_config(config_file)
        if study is not None and study.preset != cell.preset:
            raise ConfigError(f"the cell is on preset {cell.preset!r}, its settings on {study.preset!r}")
        if data_file:  # train on a data file's corpora (the same as the override data=FILE)
            overrides = {**(overrides or {}), "data": str(Path(data_file).expanduser().resolve())}
        self.study = resolve_study(cell.preset, smoke=smoke, overrides=overrides, base=study)
        self.smoke = self.study.smoke
        self.world = World(self.study.world)  # the evaluation prompts and probes
        self.backbone = load_backbone(cell.preset, **({"directory": self.study.toy_backbone_dir}
                                                      if cell.preset == "toy" and self.study.toy_backbone_dir else {}))
        if cell.preset == "toy":  # the toy loads on the CPU; on a GPU machine the whole cell runs on the GPU
            from .train import process_state

            self.backbone.to(process_state().device)
        # What the method trains on: the data file's corpus, or the world (the data contract, xlcore.data.corpus)
        self.corpus = corpus_for(self.study, image_size=self.backbone.image_size, output_dir=self.output_dir)
        self.corpus.check_language(cell.language)
        self.results = ResultsStore(self.output_dir / cell.preset / "results.csv")
        self.dir = cell_dir(self.output_dir, cell)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_study_config(self.study, self.dir / "config.json")
        self.backbone_fingerprint = self.backbone.fingerprint()  # hashes every weight: once per cell (GBs on sd15)
        identity = cell_identity(cell, self.study, self.backbone_fingerprint, budget=budget, n_prompts=n_prompts)
        self.training, self.training_id, self.evaluation, self.run_id = identity
        self.generation = self.evaluation.generation
        self.method = None
        if cell.method != ENGLISH_BACKBONE:
            from .methods._base import build_method

            cls = METHODS.get(cell.method)
            self.method = build_method(cell.method, self.backbone, self.training.method_config,
                                       language=cell.language if cls.per_language else None,
                                       languages=self.corpus.languages, seed=cell.seed)
            self.per_language = cls.per_language
            self.train_dir = train_dir(self.output_dir, cell, cls.per_language)
        self.rows: list[ResultRow] = []
        atomic_write_bytes(self.dir / "params.json", (json.dumps(
            {"cell": dataclasses.asdict(cell), "smoke": self.smoke, "budget": budget, "run_id": self.run_id,
             "training_id": self.training_id, "evaluation": to_dict(self.evaluation)}, indent=2) + "\n").encode())

    # ------------------------------------------------------------------------------------------------

    def parameter_table(self) -> str:
        """Markdown: trainable parameters per stage and the system they sit in."""
        if self.method is None:
            return "The English backbone: nothing trains."
        lines = ["| stage | trainable parameters | share of system |", "| --- | ---: | ---: |"]
        system = self.method.system_parameter_count()
        for stage in self.method.stages:
            count = sum(p.numel() for p in self.method.trainable_parameters(stage).values())
            lines.append(f"| {stage} | {count:,} | {100 * count / system:.2f}% |")
        return "\n".join(lines)

    def train(self) -> None:
        """Train every stage (or resume, or reuse a finished run), then record the training cost once."""
        if self.method is None or not self.method.stages:
            return
        from .cache import FeatureCache
        from .data.corpus import bad_sample_metrics
        from .evaluate import RunInfo, cost_measurements, write_measurements
        from .evaluate.common import Measurement
        from .experiment import train_method
        from .methods._base import load_method

        with file_lock(self.train_dir.with_name("train.lock")):  # beside the folder, which may move aside
            claim_train_dir(self.train_dir, self.training_id, self.is_this_run)
            saved = self.train_dir / "method"
            if (saved / "method.json").exists() and self.training_id in self.results.run_ids():
                self.method = load_method(saved, self.backbone)
                log.info("%s: trained already (%s); loaded", self.cell.key, self.training_id)
                return
            cache = FeatureCache(self.output_dir / self.cell.preset / "feature_cache") if self.study.feature_cache else None
            configs = {stage: self.budgeted(self.method.train_config(stage)) for stage in self.method.stages}
            # Stages another method runs identically (AltCLIP's, inside AltDiffusion) train once per study folder.
            context = {"preset": self.cell.preset, "backbone": self.backbone_fingerprint, "world": to_dict(self.study.world),
                       "data": data_identity(self.study)}
            costs = train_method(self.method, self.corpus, self.train_dir, cache=cache, train_configs=configs,
                                 stage_store=self.output_dir / self.cell.preset / "shared_stages", store_context=context)
            if self.training_id in self.results.run_ids():
                return
            self.results.save_config(self.training)
            scope = self.training.scope
            measurements = [Measurement(
                scope, "cost/training", f"feature cache {'on' if c.feature_cache else 'off'}; wall time summed over "
                "the sessions that trained it (checkpoint writes included)" + (
                    f"; the same stage as another method's, trained once (shared_stages/{c.shared_from})"
                    if c.shared_from else ""),
                {"trainable_parameters": c.trainable_parameters, "train_steps": c.steps}
                | ({} if math.isnan(c.seconds) else {"train_seconds": c.seconds}), stage=c.stage) for c in costs]
            measurements += cost_measurements(self.method, self.corpus, steps=self.study.cost_timed_steps)
            measurements += [Measurement(key.split("/")[1], f"data/{key.split('/')[0]}",
                                         "samples left out of the source when it was indexed (xlcore.data.sources; "
                                         "each one is in the index folder's bad_samples.jsonl)", metrics)
                             for key, metrics in bad_sample_metrics(self.corpus).items()]
            write_measurements(measurements, RunInfo(self.training_id, self.cell.method, "final", self.training,
                                                     self.cell.seed, self.method.label), self.results)

    def is_this_run(self, meta: dict) -> bool:
        """Whether a saved method's `method.json` is this cell's training run: its settings, seed, backbone and
        own encoder (what tells a run written before training ids from one with other settings)."""
        own = meta.get("own_encoder") or {}
        return (meta.get("config") == to_dict(self.training.method_config) and meta.get("seed") == self.cell.seed
                and (meta.get("backbone") or {}).get("fingerprint") == self.backbone_fingerprint
                and own.get("spec", "") == getattr(self.training.method_config, "multilingual_encoder", ""))

    def load_trained(self) -> None:
        """Load the cell's finished training run (the evaluation notebook's path: nothing trains)."""
        from .errors import MissingDataError
        from .methods._base import load_method

        if self.method is None or not self.method.stages:
            return
        marker = self.train_dir / TRAINING_ID_FILE
        held = marker.read_text().strip() if marker.exists() else self.training_id
        if not (self.train_dir / "method" / "method.json").exists() or held != self.training_id:
            other = "" if held == self.training_id else f" (it holds {held}, trained with other settings)"
            raise MissingDataError(f"{self.cell.method} (seed {self.cell.seed}) has no trained run {self.training_id} "
                                   f"in {self.train_dir}{other}; run notebooks/methods/{self.cell.method}.ipynb or "
                                   "the sweep first")
        self.method = load_method(self.train_dir / "method", self.backbone)

    def budgeted(self, config):
        """A stage's TrainConfig cut to the cell's budget (its share of the steps)."""
        if self.budget == 1.0:
            return config  # unchanged, so a run trained before budgets existed resumes as it was
        if config.steps <= 0:  # a budget in epochs (the Trainer counts the steps on the data)
            return dataclasses.replace(config, epochs=config.epochs * self.budget)
        steps = max(1, round(config.steps * self.budget))
        return dataclasses.replace(config, steps=steps, warmup_steps=min(config.warmup_steps, max(1, steps // 10)))

    def loss_curves(self):
        """A figure of every logged loss term per stage (the train logs), or None before training."""
        from .plotting import loss_figure
        from .train import read_log

        if self.method is None or not self.method.stages:
            return None
        return loss_figure({stage: read_log(self.train_dir / stage) for stage in self.method.stages},
                           title=f"{self.cell.method} (seed {self.cell.seed})")

    @property
    def system(self):
        from .evaluate import EnglishBackbone

        return EnglishBackbone(self.backbone) if self.method is None else self.method

    def evaluate(self):
        """Retrieval and generation in the cell's language; returns (measurements, generation result)."""
        from .evaluate import evaluate_system

        real = getattr(self.corpus, "evaluation", None)  # the data file's evaluation section, if it has one
        image_size = self.backbone.clip.config.vision_config.image_size
        return evaluate_system(self.system, self.world, self.generation,
                               captions_per_image=self.study.retrieval_captions_per_image,
                               cache_dir=self.output_dir / self.cell.preset / "generation_cache",
                               prompts=real.prompts() if real else None,
                               retrieval_sets=real.retrieval_sets(image_size) if real else None,
                               clip_scorer=real.clip_scorer(self.backbone.device) if real else None)

    def write(self, measurements) -> list[ResultRow]:
        """Append the cell's rows to the results table (once), keep a copy beside the cell, mark it done."""
        from .evaluate import RunInfo, write_measurements

        label = self.method.label if self.method is not None else ""
        stage = "final" if self.method is not None else "pretrained"
        run = RunInfo(self.run_id, self.cell.method, stage, self.evaluation, self.cell.seed, label)
        if self.run_id in self.results.run_ids():
            log.info("%s already in the results table", self.run_id)
            self.rows = write_measurements(measurements, run)
        else:
            self.results.save_config(self.evaluation)
            self.rows = write_measurements(measurements, run, self.results)
        (self.dir / "results.csv").unlink(missing_ok=True)
        ResultsStore(self.dir / "results.csv").append(self.rows)
        atomic_write_bytes(self.dir / "done.json", (json.dumps({"run_id": self.run_id, "rows": len(self.rows)}) + "\n").encode())
        return self.rows

    def summary(self) -> dict[str, float]:
        """The cell's headline numbers (the notebook prints them; tests read them back)."""
        wanted = ("mean_recall", "compositional_overall", "compositional_all", "culture_shape", "consistency_clip_cos",
                  "clip_score_raw_cos", "fid_scorer256", "cococrola_correctness")
        out: dict[str, float] = {}
        for row in self.rows:
            if row.metric in wanted and (row.metric != "mean_recall" or row.protocol.startswith("first-caption")):
                out[row.metric] = row.value
        out["rows"] = len(self.rows)
        return out


def train_run(method: str, preset: str = "toy", language: str = "de", seed: int = 0,
              output_dir: str | Path = "papermill_runs", budget: float = 1.0, smoke: bool = False,
              overrides: dict | None = None, config_file: str | Path = "") -> Path:
    """Train (or resume) the run of `method` that the sweep's cell (method, language, seed) would train;
    returns its folder. Safe to call in every process of a data-parallel launch:

        accelerate launch --multi_gpu --num_processes 4 -m xlcore train --method altdiffusion --preset sd15
        notebook_launcher(train_run, ("altdiffusion", "sd15", "de", 0), num_processes=4)  # in a notebook

    Every process builds the same method; the Trainer splits each global batch over the processes and
    averages gradients (`xlcore.train.Trainer`), the main process writes checkpoints and the trained
    weights into the folder the sweep uses, whose cell then finds the run, records its cost and evaluates
    it. The frozen-feature cache is used only with one process (the processes would write it at once):
    build it first with a one-process run, or train without it."""
    from .cache import FeatureCache
    from .experiment import train_method
    from .train import process_state

    state = process_state()
    run = CellRun(Cell(preset, method, language, seed), smoke=smoke, output_dir=output_dir, budget=budget,
                  config_file=config_file, overrides=overrides)
    if run.method is None or not run.method.stages:
        log.info("%s trains nothing", method)
        return run.dir
    cache = None
    if run.study.feature_cache and state.num_processes == 1:
        cache = FeatureCache(run.output_dir / preset / "feature_cache")
    configs = {stage: run.budgeted(run.method.train_config(stage)) for stage in run.method.stages}
    if state.is_main_process:
        log.info("training %s on %d process(es) into %s", method, state.num_processes, run.train_dir)
        with file_lock(run.train_dir.with_name("train.lock")):
            claim_train_dir(run.train_dir, run.training_id, run.is_this_run)
    state.wait_for_everyone()
    train_method(run.method, run.world, run.train_dir, cache=cache, train_configs=configs)
    return run.train_dir


def generation_figure(result, n: int = 8):
    """The first `n` generations of each language in a result, one row per language."""
    from .plotting import image_rows

    return image_rows({lang: images[:n] for lang, images in result.images.items()})


__all__ = ["Cell", "CellRun", "ENGLISH_BACKBONE", "cell_dir", "generation_figure", "train_dir", "train_run"]


def execute_cell(parameters: dict[str, Any]) -> dict[str, float]:
    """What a cell's notebook runs (`notebooks/methods/<method>.ipynb`, `evaluate.ipynb`), without Jupyter: build
    the cell, train (or resume, or reuse) its method, evaluate, write the rows and `done.json`; returns the
    summary the notebook prints. The sweep's `python` executor calls this in a fresh process per cell."""
    parameters = dict(parameters)
    cell = Cell(parameters.pop("preset", "toy"), parameters.pop("method"), parameters.pop("language"),
                int(parameters.pop("seed", 0)))
    run = CellRun(cell, **parameters)
    run.train()
    measurements, _ = run.evaluate()
    run.write(measurements)
    return run.summary()
