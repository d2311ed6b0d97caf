"""The method contract (DESIGN.md section 3) and what every method shares.

A `Method` builds its trainable modules on a frozen `Backbone` and declares, per training stage, which
of its modules train, what data the stage reads (a dataset and the frozen features it needs, see
`xlcore.cache`), its paper's optimizer and schedule (a `TrainConfig`) and `loss(batch, stage)`. The
one `Trainer` runs every stage through `StageTask`; methods never write a loop.

After training, `encode(texts, lang)` gives the conditioning for the (frozen) UNet and, where the
method has a joint image-text space, a pooled embedding for retrieval; `save()` writes only the
trainable weights (safetensors) and `method.json`; `load_method()` rebuilds the method from those two
files and a backbone, without any training code.

Methods never change the backbone: a method that trains UNet weights (AltDiffusion, full fine-tuning)
trains its own copy, and the tests check the backbone's fingerprint before and after.

A method is one file: besides its config and its loss, the class carries what every other part shows of
it (`title`, `summary`, `prose`, `diagram`, `order`, `published_budgets`), read through `describe(name)` by
the notebook generator, the demo, the report and the cost extrapolation; `config_for_preset` gives its
settings on each backbone scale; `variants` are named presets of its settings (mCLIP+ is TriKD with the
MTE stage on), registered under their own names so their rows keep them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..backbone.base import Backbone
from ..backbone.diffusion import denoising_loss, noisy_sample
from ..cache import FeatureCache, FrozenFeatures
from ..config import from_dict, to_dict
from ..contract import Conditioning
from ..errors import ConfigError, DataFormatError, MissingWeightsError, UnknownLanguageError, UnknownMethodError
from ..registry import METHODS
from ..results import atomic_write_bytes, file_sha256
from ..train import TrainConfig

log = logging.getLogger(__name__)

WEIGHTS_FILE = "trainable.safetensors"
META_FILE = "method.json"


@dataclass
class StageData:
    """A stage's dataset, the frozen features it needs and, if the method replaced it, the multilingual
    encoder those features come from."""

    dataset: Any
    features: Mapping[str, str]
    multilingual: nn.Module | None = None


@dataclass(frozen=True)
class Variant:
    """A named preset of a method's settings: the method with `changes` (dotted config fields) applied on
    top of its settings for the preset, then `changes_on[preset]`. Variants are configs, not classes; their
    rows carry their name."""

    changes: Mapping[str, Any]
    title: str
    summary: str
    prose: str
    diagram: str
    order: float
    changes_on: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperCount:
    """One row of the trainable-parameter table at a paper's own dimensions (`Method.paper_counts`)."""

    row: str
    trainable: int
    system: int  # parameters of the whole system the method runs in (its share is trainable / system)
    paper: float | None  # the paper's (or its code's) figure; None where it gives none
    note: str


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sd15_system(sd15: Mapping[str, nn.Module]) -> int:
    """Parameters of the SD 1.5 system: UNet, VAE, CLIP ViT-L/14 (both towers), the multilingual encoder."""
    return sum(parameter_count(sd15[name]) for name in ("unet", "vae", "clip", "multilingual"))


def paper_dimension_rows() -> list[PaperCount]:
    """Every registered method's `paper_counts`, each class once (a variant shares its method's), in the
    tables' order, on the sd15 architectures built on the meta device (no memory, no weights)."""
    from ..backbone.sd15 import sd15_architectures

    with torch.device("meta"):
        sd15 = sd15_architectures("xlm-roberta-base", device="meta")
        rows, seen = [], set()
        for name in sorted(METHODS.names(), key=lambda n: METHODS.get(n).order):
            cls = METHODS.get(name)
            if cls not in seen:
                seen.add(cls)
                rows += cls.paper_counts(sd15)
    return rows


def paper_parameter_table() -> str:
    """`paper_dimension_rows` as Markdown (the block in docs/methods.md)."""
    lines = ["| method (paper dimensions) | trainable (measured) | paper figure | share of system | note |",
             "| --- | ---: | ---: | ---: | --- |"]
    for row in paper_dimension_rows():
        paper = "-" if row.paper is None else f"{row.paper / 1e6:.2f}M"
        lines.append(f"| {row.row} | {row.trainable:,} | {paper} | {100.0 * row.trainable / row.system:.2f}% | {row.note} |")
    return "\n".join(lines)


class Method:
    """Base class: subclasses set `config_class` and the description below, and implement the hooks."""

    config_class: ClassVar[type]
    name: ClassVar[str] = ""  # set by METHODS.register (an instance of a variant carries the variant's name)
    per_language: ClassVar[bool] = False  # one run per target language (IAP, PEA)
    uses_unet_gradients: ClassVar[bool] = False  # back-propagates through the UNet: it cannot be cached
    label: ClassVar[str] = ""  # deviations and extensions, copied into the results table's notes
    # (a method whose note depends on its settings overrides `label_for` and sets `label = settings_label`)
    draws: bool = True  # whether the method conditions the UNet (else it is evaluated on retrieval only)
    # What the notebooks, the demo and the report show (see `describe`)
    title: ClassVar[str] = ""  # the notebook's heading, with the paper
    summary: ClassVar[str] = ""  # one line: what the system is (demo captions, the Systems table)
    prose: ClassVar[str] = ""  # the notebook's introduction: what is frozen, what trains, the loss and its source
    diagram: ClassVar[str] = ""  # the data flow, as text
    order: ClassVar[float] = 100.0  # position in tables and figures (references first, then by family)
    published_budgets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}  # stage -> the paper's budget and its source
    variants: ClassVar[Mapping[str, Variant]] = {}  # name -> a named preset of this method's settings

    def __init__(self, backbone: Backbone, config: Any = None, *, language: str | None = None,
                 languages: Sequence[str] | None = None, seed: int = 0, name: str | None = None):
        self.backbone = backbone
        if name is not None and name != type(self).name:
            if name not in type(self).__dict__.get("variants", {}):
                raise ConfigError(f"{name!r} is not {type(self).name!r} nor one of its variants")
            self.name = name  # a variant: the instance carries its name into saved runs and results rows
        if config is None:  # its settings on the backbone's preset (an unregistered subclass: its class's)
            config = (default_config(self.name, backbone.preset) if self.name in METHODS
                      else type(self).config_for_preset(backbone.preset))
        self.config = config
        if not isinstance(self.config, self.config_class):
            raise ConfigError(f"{self.name} takes a {self.config_class.__name__}, got {type(self.config).__name__}")
        if self.per_language and not language:
            raise ConfigError(f"{self.name} trains one model per target language; pass language=")
        if self.per_language and language == "en":
            raise ConfigError(f"{self.name} adapts the English model to another language; language='en' makes no sense")
        self.base_backbone = backbone  # what a saved method is loaded onto (its own encoder is in its config)
        self.backbone = with_own_encoder(backbone, self.config)
        self.language = language
        self.languages = tuple(languages) if languages else None  # None: any language the encoder reads
        self.trained_stages: list[str] = []
        self.seed = seed
        self.replaced_backbone_parameters: set[int] = set()  # ids of backbone weights a trained copy stands in for
        with torch.random.fork_rng(devices=[]):  # the initial weights depend on `seed` only, not on what ran before
            torch.manual_seed(seed)
            self.build()
        for module in self.modules().values():  # beside the backbone (a GPU), in their own float32
            module.to(self.backbone.device)
        self.freeze()

    # ----------------------------------------------------------------------------------------------
    # Hooks for subclasses

    @classmethod
    def config_for_preset(cls, preset: str) -> Any:
        """The method's settings on backbone scale `preset`: the config class's defaults (the toy budgets)
        on `toy`; on a real preset the same with every data size at 0 (all the data file gives), which a
        method with published settings replaces by its paper's (`sd15_settings`)."""
        config = cls.config_class()
        if preset == "toy" or not dataclasses.is_dataclass(config):
            return config
        sizes = {f.name: 0 for f in dataclasses.fields(config) if "items" in f.name and f.type in (int, "int")}
        return dataclasses.replace(config, **sizes, **cls.sd15_settings())

    @classmethod
    def label_for(cls, config: Any) -> str:
        """The results table's note for a run with `config`: the class's fixed `label` unless overridden."""
        label = getattr(cls, "label", "")
        return label if isinstance(label, str) else ""

    @classmethod
    def paper_counts(cls, sd15: Mapping[str, nn.Module]) -> list[PaperCount]:
        """Trainable parameters at the dimensions of the method's paper, beside the paper's figure (the table
        of `benchmarks/method_parameters.py`). `sd15`: the sd15 preset's architectures built on the meta
        device (`unet`, `vae`, `clip`, `multilingual`: XLM-R base), from which a method builds its own
        modules at those dimensions. Empty for a method with nothing to count."""
        return []

    @classmethod
    def sd15_settings(cls) -> dict[str, Any]:
        """Fields of the config that the paper's own code sets at full scale (its optimiser, schedule, batch,
        budget), each with its source in a comment; empty where nothing is published."""
        return {}

    def stage_identity(self, stage: str) -> dict[str, Any] | None:
        """What `stage`'s trained modules depend on among this method's settings (beyond the training configs of
        it and the stages before it), when another method runs the very same stage (the same code from the same
        initial weights on the same data): then the stage is trained once and shared (`stage_store` of
        `xlcore.experiment.train_method`), keyed by this with the stages' training configs, the seed, the
        backbone and the data. None: the stage is the method's own."""
        return None

    def build(self) -> None:
        """Create the method's modules (called once by __init__)."""
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        """Every module the method owns (trainable in some stage, or a frozen copy it changes later)."""
        raise NotImplementedError

    @property
    def stages(self) -> tuple[str, ...]:
        """Training stages in order (may depend on the config, e.g. TriKD's optional MTE stage)."""
        raise NotImplementedError

    def stage_modules(self, stage: str) -> dict[str, nn.Module]:
        """Modules whose parameters train in `stage` (all of them)."""
        raise NotImplementedError

    def stage_data(self, stage: str, corpus) -> StageData:
        """What `stage` reads from `corpus` (the data contract, `xlcore.data.corpus.Corpus`: the built-in
        world or a real corpus, the method cannot tell which) and the frozen features it needs."""
        raise NotImplementedError

    def train_config(self, stage: str) -> TrainConfig:
        raise NotImplementedError

    def loss(self, batch: Mapping[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        """Named loss terms for a batch of features; the trainer minimises "loss"."""
        raise NotImplementedError

    def _encode(self, texts: list[str], lang: str) -> Conditioning:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------
    # Shared behaviour

    @property
    def unet(self) -> nn.Module:
        """The UNet that generates with this method's conditioning (the frozen one unless overridden)."""
        return self.backbone.unet

    def check_language(self, lang: str) -> str:
        allowed = self.languages
        if self.per_language:
            allowed = ("en", self.language)
        if allowed is not None and lang not in allowed:
            raise UnknownLanguageError(lang, list(allowed))
        return lang

    def encode(self, texts: Sequence[str], lang: str) -> Conditioning:
        """UNet conditioning and pooled embedding for `texts` in language `lang` (no gradients)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not a single string")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("encode takes a list of strings")
        self.check_language(lang)
        for module in self.modules().values():
            module.eval()
        with torch.no_grad():
            return self._encode(texts, lang)

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image embeddings in the space of `Conditioning.pooled` (CLIP's joint space by default)."""
        return self.backbone.encode_images(pixel_values)

    @torch.no_grad()
    def negative_prompt_embeds(self, batch_size: int, lang: str = "en") -> torch.Tensor:
        """The unconditional branch of classifier-free guidance: the empty prompt through the method's own
        encoder, as a stock diffusers pipeline encodes its negative prompt. Every method that trains a text
        path sees the empty prompt in training (caption dropout), so this is what it learned for it."""
        return self.encode([""], lang).token_states.expand(batch_size, -1, -1)

    def empty_prompt_states(self) -> dict[str, torch.Tensor]:
        """The frozen encoders' states of the empty prompt (for caption dropout on cached features):
        `multilingual` (1, L, H) with `multilingual_mask`, and `english` (1, L, D)."""
        if not hasattr(self, "_empty_states"):
            states, mask = self.backbone.encode_multilingual([""])
            english, _ = self.backbone.encode_english([""])
            self._empty_states = {"multilingual": states.float(), "multilingual_mask": mask, "english": english.float()}
        return {k: v.to(self.backbone.device) for k, v in self._empty_states.items()}

    def drop_states(self, p: float, states: torch.Tensor, empty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace a share `p` of rows of `states` by the empty prompt's `empty` (1, ...); returns the rows dropped."""
        drop = torch.rand(len(states), device=states.device) < p
        shape = (len(states),) + (1,) * (states.ndim - 1)
        return torch.where(drop.view(shape), empty.to(states.device, states.dtype), states), drop

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        seen: set[int] = set()
        for module_name, module in self.modules().items():
            for name, param in module.named_parameters(remove_duplicate=False):
                if id(param) not in seen:
                    seen.add(id(param))
                    yield f"{module_name}.{name}", param

    def trainable_parameters(self, stage: str | None = None) -> dict[str, nn.Parameter]:
        """Named parameters that train in `stage` (in any stage when None)."""
        stages = self.stages if stage is None else (stage,)
        chosen = {id(p) for s in stages for m in self.stage_modules(s).values() for p in m.parameters()}
        return {name: p for name, p in self.named_parameters() if id(p) in chosen}

    def freeze(self) -> "Method":
        """Everything the method owns to eval mode without gradients (after training, and when built).

        Besides being right for inference, this makes a trained method and the same method loaded from
        disk take identical code paths (PyTorch's fused transformer path depends on requires_grad), so
        `encode` round-trips bit-exactly through save and load."""
        for module in self.modules().values():
            module.requires_grad_(False).eval()
        return self

    def prepare_stage(self, stage: str) -> None:
        """Freeze everything the method owns, then unfreeze `stage`'s modules."""
        if stage not in self.stages:
            raise ConfigError(f"{self.name} has stages {self.stages}; got {stage!r}")
        self.freeze()
        for module in self.stage_modules(stage).values():
            module.requires_grad_(True)

    def frozen_modules(self, stage: str) -> dict[str, nn.Module]:
        """Modules the stage's loss runs through without training them (moved to the training device)."""
        frozen = {f"backbone.{k}": v for k, v in self.backbone.named_modules_dict().items() if k != "scorer"}
        training = {id(m) for m in self.stage_modules(stage).values()}
        frozen.update({k: m for k, m in self.modules().items() if id(m) not in training})
        return frozen

    def task(self, stage: str, corpus, cache: FeatureCache | None = None) -> "StageTask":
        """The stage as a `TrainingTask` for `xlcore.train.Trainer`, reading `corpus`."""
        self.prepare_stage(stage)
        data = self.stage_data(stage, corpus)
        features = FrozenFeatures(self.backbone, data.dataset, data.features, multilingual=data.multilingual,
                                  cache=cache)
        return StageTask(self, stage, features)

    # ----------------------------------------------------------------------------------------------
    # Save / load: only the trainable weights, plus the config

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: p.detach().cpu().contiguous().clone() for name, p in self.trainable_parameters().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        meta = {"method": self.name, "config": to_dict(self.config), "language": self.language, "seed": self.seed,
                "weights_sha256": file_sha256(directory / WEIGHTS_FILE),
                "languages": list(self.languages) if self.languages else None,
                "trained_stages": self.trained_stages, "backbone": {
                    "preset": self.backbone.preset, "fingerprint": self.base_backbone.fingerprint()}}
        if self.backbone is not self.base_backbone:  # its own encoder: the weights it was trained on top of
            meta["own_encoder"] = {"spec": getattr(self.config, "multilingual_encoder", ""),
                                   "fingerprint": self.backbone.fingerprint(("multilingual",))}
        atomic_write_bytes(directory / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        return directory

    def load_weights(self, path: str | Path) -> None:
        path = Path(path)
        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors has its own error types for truncated or corrupt files
            raise DataFormatError(path, f"not a readable safetensors file ({err})") from None
        params = self.trainable_parameters()
        missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        if missing or unexpected:
            raise DataFormatError(path, f"weights do not fit {self.name}: missing {missing[:4]}, unexpected {unexpected[:4]}")
        with torch.no_grad():
            for name, param in params.items():
                if param.shape != state[name].shape:
                    raise DataFormatError(path, f"{name} has shape {tuple(state[name].shape)}, expected {tuple(param.shape)}")
                param.copy_(state[name])

    # ----------------------------------------------------------------------------------------------
    # Helpers for subclasses

    def trainable_copy(self, module: nn.Module) -> nn.Module:
        """A copy of a backbone module that the method may train (the backbone's stays untouched).

        The original's weights are recorded as replaced: the deployed system runs the copy instead, so
        `system_parameter_count` counts the copy and not the original."""
        self.replaced_backbone_parameters.update(id(p) for p in module.parameters())
        return copy.deepcopy(module).float()

    def system_parameter_count(self) -> int:
        """Parameters of the whole system the method deploys: every backbone module (both CLIP towers,
        UNet, VAE, multilingual encoder; not the world's scorer, an evaluator) except those a trained copy
        replaces, plus everything the method owns. The denominator of the trainable share."""
        seen: set[int] = set(self.replaced_backbone_parameters)
        total = 0
        modules = [m for k, m in self.backbone.named_modules_dict().items() if k != "scorer"] + list(self.modules().values())
        for module in modules:
            for param in module.parameters():
                if id(param) not in seen:
                    seen.add(id(param))
                    total += param.numel()
        return total

    def drop_captions(self, ids: torch.Tensor, mask: torch.Tensor, p: float, return_dropped: bool = False):
        """Replace a share `p` of multilingual token sequences by the empty prompt's (for guidance)."""
        drop = torch.rand(len(ids), device=ids.device) < p
        empty = self.backbone.tokenize_multilingual([""])
        ids = torch.where(drop[:, None], empty["input_ids"].to(ids.device), ids)
        mask = torch.where(drop[:, None], empty["attention_mask"].to(mask.device), mask)
        return (ids, mask, drop) if return_dropped else (ids, mask)

    def denoise(self, unet: nn.Module, x0: torch.Tensor, context: torch.Tensor,
                **unet_kwargs) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """The denoising loss of `unet` on `x0` under `context`: (loss, noisy sample, prediction)."""
        # Inputs in the UNet's own dtype: outside autocast (an fp32 run beside a bf16 frozen backbone) a
        # bf16 latent or context would not meet an fp32 trainable UNet's weights, nor the reverse.
        dtype = next(unet.parameters()).dtype
        sample = noisy_sample(self.backbone.noise_scheduler, x0.to(dtype))
        prediction = unet(sample.noisy, sample.timesteps, encoder_hidden_states=context.to(dtype), **unet_kwargs).sample
        return denoising_loss(prediction, sample), sample, prediction


ENCODER_HELP = ("The method's own multilingual encoder instead of the backbone's. On a real preset: a Hugging Face "
                "id or folder (any encoder with last_hidden_state, e.g. FacebookAI/xlm-roberta-large) or "
                "open_clip:MODEL/PRETRAINED for an open_clip text tower that is a Hugging Face transformer. On the "
                "toy: 'toy:unaligned', the encoder pretrained without any parallel text. Empty: the backbone's.")


def with_own_encoder(backbone: Backbone, config: Any) -> Backbone:
    """`backbone`, or a view of it with the method's own multilingual encoder (`config.multilingual_encoder`,
    for methods whose papers read another encoder than the backbone's)."""
    spec = getattr(config, "multilingual_encoder", "")
    if not spec:
        return backbone
    if backbone.preset == "toy":
        from ..backbone.toy import ASSETS, load_toy_multilingual_encoder

        encoder = load_toy_multilingual_encoder(spec, backbone.info.get("directory", ASSETS))
        log.info("reading the toy's %s multilingual encoder instead of the backbone's", spec)
        return backbone.with_multilingual(encoder.to(backbone.device), backbone.multilingual_tokenizer, spec)
    from ..backbone.sd15 import load_multilingual_encoder

    encoder, tokenizer = load_multilingual_encoder(spec, dtype=backbone.dtype, device=backbone.device)
    log.info("reading %s instead of the backbone's multilingual encoder", spec)
    return backbone.with_multilingual(encoder, tokenizer, spec)


settings_label = property(lambda self: type(self).label_for(self.config),
                          doc="The note of this method's settings (`Method.label_for`).")


class SingleStageMethod(Method):
    """A method with one training stage, named `stage_name`, in which all its modules train under
    `config.train` (the adapters, IAP, full fine-tuning, the toy translator)."""

    stage_name: ClassVar[str] = "train"

    @property
    def stages(self) -> tuple[str, ...]:
        return (self.stage_name,)

    def stage_modules(self, stage: str) -> dict[str, nn.Module]:
        return self.modules()

    def train_config(self, stage: str) -> TrainConfig:
        return self.config.train


@dataclass(frozen=True)
class NoConfig:
    """Nothing to configure."""


class UntrainableMethod(Method):
    """A reference point that trains nothing (the untrained baseline, the translation oracle)."""

    config_class = NoConfig

    def modules(self) -> dict[str, nn.Module]:
        return {}

    @property
    def stages(self) -> tuple[str, ...]:
        return ()

    def stage_modules(self, stage: str) -> dict[str, nn.Module]:
        return {}


class StageTask:
    """Adapts (method, stage, features) to the trainer's `TrainingTask` protocol."""

    def __init__(self, method: Method, stage: str, features: FrozenFeatures):
        self.method, self.stage, self.features = method, stage, features
        self.description = f"{method.name}/{stage}" + (f" ({method.language})" if method.language else "")

    def trainable_modules(self) -> dict[str, nn.Module]:
        return self.method.stage_modules(self.stage)

    def frozen_modules(self) -> dict[str, nn.Module]:
        return self.method.frozen_modules(self.stage)

    def dataset_size(self) -> int:
        return len(self.features.dataset)

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        return self.features.batch(indices)

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The frozen features of a batch: computed for raw inputs, passed through from the cache."""
        return self.features.features(batch)

    def loss(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return self.method.loss(inputs, self.stage)


@dataclass(frozen=True)
class MethodInfo:
    """What the rest of the project shows of a registered method (or variant), read off its class."""

    name: str
    cls: type
    title: str
    summary: str
    prose: str
    diagram: str
    order: float
    per_language: bool
    trains: bool  # False for the reference points that train nothing
    published_budgets: Mapping[str, Mapping[str, Any]]
    variant_of: str | None = None


def _variant(cls: type, name: str) -> Variant | None:
    return cls.__dict__.get("variants", {}).get(name) if name != cls.name else None


def describe(name: str) -> MethodInfo:
    """The description of registered method `name` (a variant's own title, summary, prose and order)."""
    cls = METHODS.get(name)
    variant = _variant(cls, name)
    source = variant if variant is not None else cls
    return MethodInfo(name, cls, source.title, source.summary, source.prose, source.diagram, source.order,
                      cls.per_language, not issubclass(cls, UntrainableMethod), cls.published_budgets,
                      cls.name if variant is not None else None)


def default_config(name: str, preset: str = "toy") -> Any:
    """The settings method `name` runs with on `preset`: its preset settings, a variant's changes on top."""
    from ..config import override

    cls = METHODS.get(name)
    config = cls.config_for_preset(preset)
    variant = _variant(cls, name)
    if variant is None:
        return config
    return override(config, **{**variant.changes, **variant.changes_on.get(preset, {})})


def build_method(name: str, backbone: Backbone, config: Any = None, **kwargs) -> Method:
    """The registered method `name` on `backbone` (config: an instance, a dict of fields, or None for its
    settings on the backbone's preset)."""
    cls = METHODS.get(name)
    if isinstance(config, Mapping):
        config = from_dict(cls.config_class, dict(config), where=f"{name} config")
    return cls(backbone, config, name=name, **kwargs)


def load_method(directory: str | Path, backbone: Backbone, *, strict_backbone: bool = True) -> Method:
    """Rebuild a saved method from `method.json` + `trainable.safetensors` on `backbone`."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.exists() or not (directory / WEIGHTS_FILE).exists():
        raise MissingWeightsError("trained method", str(directory),
                                  hint=f"expected {META_FILE} and {WEIGHTS_FILE}; train the method first")
    try:
        meta = json.loads(meta_path.read_text())
        name, config = meta["method"], meta["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataFormatError(meta_path, f"not a method description ({err})") from None
    expected = meta.get("backbone", {}).get("fingerprint")
    if strict_backbone and expected and expected != backbone.fingerprint():
        raise ConfigError(f"{directory} was trained on backbone {expected}, not this one ({backbone.fingerprint()}); "
                          "pass strict_backbone=False to load it anyway")
    digest = meta.get("weights_sha256")  # exports written before checksums carry none
    if digest and file_sha256(directory / WEIGHTS_FILE) != digest:
        raise DataFormatError(directory / WEIGHTS_FILE, "checksum mismatch with method.json: the weights are corrupt "
                              "(retrain, or restore the file)")
    try:
        method = build_method(name, backbone, config, language=meta.get("language"), languages=meta.get("languages"),
                              seed=meta.get("seed", 0))
    except UnknownMethodError as err:
        raise DataFormatError(meta_path, f"names a method nobody registered ({err})") from None
    except ConfigError as err:
        raise DataFormatError(meta_path, f"its config does not fit {name} ({err})") from None
    own = meta.get("own_encoder", {}).get("fingerprint")
    if strict_backbone and own and own != method.backbone.fingerprint(("multilingual",)):
        raise ConfigError(f"{directory} was trained on top of the encoder {meta['own_encoder'].get('spec')!r} with other "
                          "weights than the ones here (retrained since?); retrain the method, or pass "
                          "strict_backbone=False to load it anyway")
    method.load_weights(directory / WEIGHTS_FILE)
    method.trained_stages = list(meta.get("trained_stages", []))
    return method


# --------------------------------------------------------------------------------------------------
# Pieces of the frozen UNet that several methods reach into


def cross_attention_modules(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """The UNet's cross-attention (`attn2`) modules, in forward order."""
    return [(name, m) for name, m in unet.named_modules() if name.endswith("attn2")]


@contextlib.contextmanager
def capture_cross_attention(unet: nn.Module) -> Iterator[list[tuple[nn.Module, torch.Tensor, torch.Tensor]]]:
    """Record (module, query hidden states, output) of every cross-attention call inside the block."""
    records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def hook(module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]
        records.append((module, hidden.detach(), output.detach()))

    handles = [m.register_forward_hook(hook, with_kwargs=True) for _, m in cross_attention_modules(unet)]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def capture_blocks(unet: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the output hidden states of every down block, the mid block and every up block."""
    records: list[torch.Tensor] = []

    def hook(module, args, output):
        records.append(output[0] if isinstance(output, tuple) else output)

    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    handles = [b.register_forward_hook(hook) for b in blocks]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def trim_padding(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the padding columns no sequence of the batch uses. Exact for anything read through the
    attention mask (pooled outputs, masked means, masked losses); the encoders' cost scales with length."""
    length = int(mask.sum(1).max())
    return ids[:, :length], mask[:, :length]


