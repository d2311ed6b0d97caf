"""Configuration: dataclasses with a help text per field, presets, overrides, hashing and `smoke`.

Every field is declared with `option(default, help, smoke=...)`. The help text is what the CLI and the
notebooks show; the optional `smoke` value is what the field becomes when a run is shrunk for tests
(big_vision's `runlocal` idea: one switch, and each field knows its own small value), so no test has to
know which knobs make a run small.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .errors import ConfigError

_NO_SMOKE = object()
T = TypeVar("T")

# The study's languages: the original write-up's benchmark languages, English (the backbone's) first.
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "cs", "zh", "ja")
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech", "zh": "Chinese", "ja": "Japanese"}


def option(default: Any, help: str, *, smoke: Any = _NO_SMOKE, added: bool = False) -> Any:
    """A dataclass field with a help text and, optionally, its value under `smoke`.

    Mutable defaults (lists, dicts) are passed as a zero-argument callable, nested configs as their class.
    `added=True` marks a field added after runs were recorded whose default keeps what those runs did: it is
    left out of `to_dict` (and so of `config_hash`) while at its default, so their run ids stay valid. Such
    a default must never change (runs at the old default would then share ids with runs at the new one).
    """
    metadata = {"help": help}
    if smoke is not _NO_SMOKE:
        metadata["smoke"] = smoke
    if added:
        metadata["added"] = True
    if callable(default) and (not isinstance(default, type) or dataclasses.is_dataclass(default)):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def help_texts(config_cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted field name -> help text, for a config class and its nested configs."""
    texts = {}
    hints = _type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        name = prefix + f.name
        if "help" not in f.metadata:
            raise ConfigError(f"{config_cls.__name__}.{f.name} has no help text; declare it with option()")
        texts[name] = f.metadata["help"]
        if dataclasses.is_dataclass(hints[f.name]):
            texts.update(help_texts(hints[f.name], prefix=name + "."))
    return texts


@functools.lru_cache(maxsize=None)
def _type_hints(config_cls: type) -> dict[str, Any]:
    """The resolved field annotations of a config class (resolved once: hashing walks every config)."""
    return typing.get_type_hints(config_cls)


def _plain(value: Any, complete: bool = False) -> Any:
    """dataclasses.asdict, leaving out `added` fields at their defaults (see `option`) unless `complete`.

    A float field given an int (`epochs=4`) is written as the float it is (4.0): the same config read back
    from its JSON (`from_dict` coerces to the annotation) must hash the same, or a sweep takes a cell it
    has finished for another run and runs it again."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        hints = _type_hints(type(value))
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if not complete and f.metadata.get("added") and item == _default_of(f):
                continue
            if isinstance(item, int) and not isinstance(item, bool):
                item = _coerce(item, hints[f.name], f.name)  # what from_dict reads back: 4 -> 4.0 in a float field
            out[f.name] = _plain(item, complete)
        return out
    if isinstance(value, dict):
        return {k: _plain(v, complete) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, complete) for v in value)
    return value


def _default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def to_dict(config: Any, complete: bool = False) -> dict[str, Any]:
    """The config as plain JSON-able data (nested dicts, lists, scalars); `added` fields at their defaults
    are left out (what hashes and stored configs hold) unless `complete`."""
    return json.loads(json.dumps(_plain(config, complete), sort_keys=True, default=str))


def config_hash(config: Any) -> str:
    """A short, stable hash of the config's values (a config dataclass or a plain dict of them)."""
    data = {k: to_dict(v) if dataclasses.is_dataclass(v) else v for k, v in config.items()} \
        if isinstance(config, dict) else to_dict(config)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field's type annotation, converting only where it is lossless."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option_type in args:
            if option_type is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option_type, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} matches none of {annotation}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {value!r}")
        return from_dict(annotation, value, where=where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
    return value


def from_dict(config_cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """Build a config from plain data, checking every value's type and rejecting unknown keys."""
    where = where or config_cls.__name__
    hints = _type_hints(config_cls)
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return config_cls(**values)


def override(config: T, **changes: Any) -> T:
    """A copy of `config` with dotted-name changes applied, each type-checked.

    `override(cfg, **{"world.image_size": 64, "seed": 1})`
    """
    data = to_dict(config, complete=True)  # an `added` field at its default can be changed too
    for dotted, value in changes.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{type(config).__name__}: no nested config {part!r} in {dotted!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(
                f"{type(config).__name__}: unknown field {dotted!r}; `python -m xlcore config` lists every field"
            )
        node[parts[-1]] = value
    return from_dict(type(config), data)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `key=value` from a command line; the value is read as JSON when it parses, else as text."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def apply_smoke(config: T) -> T:
    """The config with every field that declares a `smoke` value set to it (recursively)."""
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = apply_smoke(value)
        elif "smoke" in f.metadata:
            changes[f.name] = f.metadata["smoke"]
    return dataclasses.replace(config, **changes)


# --------------------------------------------------------------------------------------------------
# The study's configuration and its presets


@dataclass(frozen=True)
class WorldConfig:
    """The Polyglot Shapes world: image size, seed and the size of every data regime."""

    seed: int = option(0, "Seed of the whole world; the same seed gives the same images and captions.")
    image_size: int = option(32, "Side of the rendered square images in pixels (32 default, 64 optional).")
    supersample: int = option(4, "Render at this multiple of image_size and downsample, for anti-aliasing.")
    languages: tuple[str, ...] = option(
        lambda: LANGUAGES,
        "Languages of the world; English is the backbone's language and must be first.",
    )
    p_two_objects: float = option(
        0.65, "Share of scenes with two objects and a spatial relation (0.65 keeps 1,000 unique test scenes possible: the world has 360 one-object scenes)."
    )
    p_culture: float = option(
        0.2, "Share of a non-English language's own image-text data showing its culture-specific objects."
    )
    n_english: int = option(200_000, "Large English image-text set (backbone pretraining, English-only methods).",
                            smoke=256)
    n_per_language: int = option(5_000, "Small image-text set per non-English language (low-resource regime).",
                                 smoke=64)
    n_parallel: int = option(20_000, "Parallel en-X caption pairs per non-English language (no images).",
                             smoke=128)
    n_monolingual: int = option(50_000, "Monolingual sentences per language (multilingual encoder pretraining).",
                                smoke=128)
    n_encoder_parallel: int = option(
        2_000, "Parallel en-X caption pairs per non-English language that only the multilingual encoder's "
        "pretraining reads (translation language modelling, XLM; Conneau & Lample 2019): its own random "
        "stream, a tenth of the methods' parallel corpus, never given to a method.", smoke=32, added=True)
    n_retrieval_test: int = option(1_000, "Retrieval test images, unique descriptions, one caption per language.",
                                   smoke=64)
    n_generation_prompts: int = option(200, "Parallel generation prompts per language.", smoke=12)
    n_culture_prompts: int = option(50, "Culture-concept generation prompts per non-English language.", smoke=6)


@dataclass(frozen=True)
class GenerationEvalConfig:
    """What a generation evaluation draws and how."""

    n_prompts: int = option(200, "Parallel prompts per language (the world's first n generation prompts).", smoke=4)
    languages: tuple[str, ...] = option(lambda: LANGUAGES,
                                        "Languages to prompt in (those a system cannot read are skipped).")
    guidance_scale: float = option(4.0, "Classifier-free guidance scale (the toy backbone's best, DESIGN.md 8.1).")
    steps: int = option(25, "Sampler steps (trailing spacing on the toy).", smoke=2)
    sampler: str = option("ddim", "'ddim' (the backbone's own) or 'dpm++' (DPM-Solver++ 2M on the same schedule; "
                                  "10 of its steps judge as DDIM 25 on the toy, benchmarks/sampler_steps.py).", added=True)
    seed: int = option(0, "Evaluation seed: the noise of prompt i is seeded seed * 100003 + i in every language.")
    batch_size: int = option(100, "Images generated per batch.", smoke=4)
    precision: str = option(
        "bf16", "'bf16' (autocast) or 'fp32' sampling. bf16 halves the CPU time on CPUs with AVX-512 BF16 and gave the "
                "same scorer accuracy on 100 toy prompts (16.0 vs 16.0, mean pixel difference 0.001); use fp32 on CPUs "
                "without bf16 support, where autocast is emulated and slower.")
    n_culture_prompts: int = option(50, "Culture-concept prompts per non-English language (0 disables).", smoke=3)
    consistency: bool = option(True, "Measure consistency against the English pipeline's images (same seeds).")
    # `added`, though runs recorded before it drew no concept images: the field adds metrics and changes no
    # other number, so those runs stay finished (their rows lack the concept scores until they are rerun).
    concept_samples: int = option(4, "Images per concept and language for CoCo-CroLa's three scores (0 disables).",
                                  smoke=2, added=True)
    inception_fid: bool = option(True, "Also Inception FID when its weights are on this machine (sd15 preset).")


@dataclass(frozen=True)
class StudyConfig:
    """One run of the study: which preset, seed, sizes and where outputs go."""

    preset: str = option("toy", "Backbone scale: 'toy' (built-in world, CPU) or 'sd15' (Stable Diffusion 1.5).")
    seed: int = option(0, "Seed of training and evaluation randomness (the world has its own seed).")
    smoke: bool = option(False, "Shrink every size to its smoke value, for tests (see apply_smoke).")
    output_dir: str = option("papermill_runs", "Folder for runs and the results table (relative to the working directory).")
    figures_dir: str = option("figures", "Folder for figures (relative to the working directory).")
    world: WorldConfig = option(WorldConfig, "The built-in world's settings (used by the toy preset).")
    data: str = option("", "A data file (YAML or JSON, see xlcore/data/datafile.py) naming real corpora per regime and "
                           "language; every method trains on it instead of the built-in world. Empty: the world.")
    toy_backbone_dir: str = option("", "Folder of the toy backbone's weights; empty means the copy shipped in the package.")
    sampling_steps: int = option(25, "DDIM steps for every generation in the study.", smoke=4)
    guidance_scales: tuple[float, ...] = option(
        lambda: (1.0, 2.0, 4.0), "Classifier-free guidance scales every generation metric is reported at.",
        smoke=(1.0, 2.0))
    method_names: tuple[str, ...] = option(
        lambda: (), "Methods the study trains and checks (empty: every registered method).")
    methods: dict[str, Any] = option(
        lambda: {}, "Each method's settings by name (`methods.<name>.<field>`; `xlcore config` lists them): filled for "
              "every registered method by `xlcore.settings.resolve_study`, its preset's settings where missing.")
    method_languages: tuple[str, ...] = option(
        lambda: LANGUAGES[1:], "Target languages of the study's sweep (every method is evaluated in "
                                                "English and in each; per-language methods train for each).",
        smoke=("de",))
    seeds: tuple[int, ...] = option(
        lambda: (0, 1, 2), "Seeds of the study's sweep: each trains and evaluates every cell again (error bars "
                           "over seeds; the committed toy grid has these three; one seed is about 2.2 h of CPU on 2 "
                           "cores).", smoke=(0,))
    curve_budgets: tuple[float, ...] = option(
        lambda: (), "Learning-curve points of the sweep: further shares of every trained method's budget, each an "
        "independent run with its own schedule, evaluated like the full one (e.g. (0.25, 0.5)); the quality-"
        "against-compute figure draws them. Empty: one point per method.", added=True)
    curve_seeds: tuple[int, ...] = option(lambda: (0,), "Seeds the learning-curve points run for.", added=True)
    evaluation: GenerationEvalConfig = option(
        lambda: GenerationEvalConfig(n_prompts=40, n_culture_prompts=20),
        "Generation evaluation of every method (its languages: English plus method_languages). The study keeps "
        "it small to fit a CPU; the protocol's full size is GenerationEvalConfig's default (200 prompts).")
    retrieval_captions_per_image: int = option(
        2, "Captions per test image in the world retrieval evaluation (2+: both the all-captions and "
           "first-caption protocols are reported).")
    cost_timed_steps: int = option(3, "Timed optimizer steps per stage in the cost measurement.", smoke=1)
    feature_cache: bool = option(True, "Cache frozen-encoder features on disk under <output_dir>/<preset>/feature_cache.")

    @property
    def run_root(self) -> "Path":
        """Where this preset's runs live: <output_dir>/<preset>."""
        return Path(self.output_dir) / self.preset

    @property
    def results_path(self) -> "Path":
        """The preset's results table: <output_dir>/<preset>/results.csv."""
        return self.run_root / "results.csv"


PRESETS: dict[str, Callable[[], StudyConfig]] = {}


def register_preset(name: str) -> Callable[[Callable[[], StudyConfig]], Callable[[], StudyConfig]]:
    """Decorator: register a function that returns a preset's StudyConfig under `name`."""

    def decorate(builder: Callable[[], StudyConfig]) -> Callable[[], StudyConfig]:
        if name in PRESETS:
            raise ConfigError(f"preset {name!r} is registered twice")
        PRESETS[name] = builder
        return builder

    return decorate


@register_preset("toy")
def _toy_preset() -> StudyConfig:
    return StudyConfig(preset="toy")


@register_preset("sd15")
def _sd15_preset() -> StudyConfig:
    # The world still supplies generation prompts and the culture probe at sd15 scale; the real
    # benchmarks come from the loaders in xlcore.data. 64 px renders are closer to what a 512 px model sees.
    return StudyConfig(preset="sd15", world=WorldConfig(image_size=64))


def load_preset(name: str, *, smoke: bool = False, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """The named preset's study settings, shrunk by `smoke` if asked, with `overrides` (dotted names) on
    top. Without the methods' settings: `xlcore.settings.resolve_study` builds the whole tree."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    config = PRESETS[name]()
    if smoke or (overrides or {}).get("smoke"):
        config = dataclasses.replace(apply_smoke(config), smoke=True)
    if overrides:  # after smoke, so an override of a field that has a smoke value is kept
        config = override(config, **overrides)
    return config
