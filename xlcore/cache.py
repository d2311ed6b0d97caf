"""Feature cache for the frozen parts of training (DESIGN.md section 3: "the main performance lever").

A method's stage names the features it needs from frozen encoders, e.g.
`{"image": "clip_image", "en": "clip_text:caption", "ml": "multilingual:caption"}`; `FrozenFeatures`
computes them for any dataset indices, either on the fly (the uncached path) or once for the whole
dataset into a `FeatureCache` and then by reading rows. Both paths call the same `compute`, so cached
values are the uncached ones (up to the float differences of batching, tested to 1e-5).

Feature kinds ("kind" or "kind:field", field = the sample's text field) register themselves with
`@feature_kind(...)` (what they compute, which frozen modules they come from, what else keys them), so a
method module can add one without editing this file. The built-in kinds:

- `pixels`: the image, stored as uint8 (it is k/255 by construction, so the round trip is exact);
- `diffusion_input`: what the UNet diffuses (pixels in [-1, 1], or VAE latent means on sd15);
- `clip_image`: CLIP image embedding; `clip_text:F`: the English text tower's token states, pooler
  output and projected pooled embedding of field F; `multilingual:F`: the multilingual encoder's last hidden states and mask;
- `english_tokens:F`, `multilingual_tokens:F`: token ids and masks (for encoders that train);
- `flag:F`: a per-sample tensor field passed through (e.g. `has_english`).

Cache entries live in `<root>/<key>/` as `.npy` files read memory-mapped, so a cache larger than memory
costs page cache, not process memory. There is one entry per (dataset, feature spec), so methods that
need the same feature of the same data share it (TriKD and MuLan both read the multilingual encoder's
states of the same English captions). The key hashes everything that determines the values: the
fingerprint of the modules that feature comes from, the dataset's descriptor (world config, regime,
language, size), the spec, the tokenizer's length and a format version; a change in any of them is a
new entry.
Building writes into a temporary folder that is renamed when complete, so an interrupted build is
simply rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .backbone.base import Backbone, module_fingerprint
from .errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
RAW = "_raw"  # marks an uncomputed batch

# compute(features, raw batch, field or None) -> {part: tensor}; part "" names a single-array feature.
Compute = Callable[["FrozenFeatures", Mapping[str, Any], "str | None"], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class FeatureKind:
    """One kind of frozen feature: how it is computed and what its cached values depend on."""

    name: str
    compute: Compute
    needs_field: bool  # "kind:field" (a text or flag field of the sample) or just "kind" (the image)
    modules: Callable[["FrozenFeatures"], dict[str, nn.Module]]  # the frozen modules it comes from (key them)
    key_extra: Callable[[Backbone], dict[str, Any]]  # anything else its values depend on
    uint8: bool = False  # stored as uint8 (exact for pixel values, which are k/255)


FEATURE_KINDS: dict[str, FeatureKind] = {}


def _nothing(_) -> dict:
    return {}


def feature_kind(name: str, *, field: bool, modules: Callable[["FrozenFeatures"], dict[str, nn.Module]] = _nothing,
                 key_extra: Callable[[Backbone], dict[str, Any]] = _nothing, uint8: bool = False
                 ) -> Callable[[Compute], Compute]:
    """Decorator: register `compute` as feature kind `name` (see `FeatureKind`)."""

    def register(compute: Compute) -> Compute:
        if name in FEATURE_KINDS:
            raise ConfigError(f"feature kind {name!r} is registered twice")
        FEATURE_KINDS[name] = FeatureKind(name, compute, field, modules, key_extra, uint8)
        return compute

    return register


def _parse(spec: str) -> tuple[str, str | None]:
    kind, _, field = spec.partition(":")
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"unknown feature kind {kind!r} in {spec!r}; kinds: {', '.join(FEATURE_KINDS)}")
    if not FEATURE_KINDS[kind].needs_field:
        return kind, None
    if not field:
        raise ConfigError(f"feature {spec!r} needs a field, e.g. {kind}:caption")
    return kind, field


class FrozenFeatures:
    """Features of a dataset from frozen encoders, computed on the fly or read from a cache.

    `multilingual` replaces the backbone's multilingual encoder (a method that first improves the
    encoder, like mCLIP+, then freezes it); its own weights key the cache.
    """

    def __init__(self, backbone: Backbone, dataset, specs: Mapping[str, str], *,
                 multilingual: nn.Module | None = None, cache: "FeatureCache | None" = None, batch_size: int = 256):
        self.backbone, self.dataset, self.specs = backbone, dataset, dict(specs)
        self.parsed = {name: _parse(spec) for name, spec in self.specs.items()}
        self.multilingual = multilingual if multilingual is not None else backbone.multilingual
        self.batch_size = batch_size
        self.arrays: dict[str, np.ndarray] | None = None
        if cache is not None:
            self.arrays = {}
            for name in self.specs:
                self.arrays.update(cache.load_or_build(self, name))

    # ----------------------------------------------------------------------------------------------

    def modules_used(self, kinds: set[str] | None = None) -> dict[str, nn.Module]:
        """The frozen modules the features (of the given kinds) come from."""
        kinds = kinds if kinds is not None else {kind for kind, _ in self.parsed.values()}
        used: dict[str, nn.Module] = {}
        for kind in sorted(kinds):
            used.update(FEATURE_KINDS[kind].modules(self))
        return used

    def key(self, spec: str) -> dict[str, Any]:
        """Everything the values of one feature spec depend on. One cache entry per (dataset, spec), so
        methods that need the same feature of the same data share it whatever else they need."""
        describe = getattr(self.dataset, "descriptor", None)
        if describe is None:
            raise ConfigError(f"{type(self.dataset).__name__} has no descriptor(); it cannot key a feature cache")
        kind, _ = _parse(spec)
        key = {"format": CACHE_FORMAT, "modules": module_fingerprint(self.modules_used({kind})),
               "dataset": describe(), "spec": spec, "dtype": str(self.backbone.dtype)}
        key.update(FEATURE_KINDS[kind].key_extra(self.backbone))
        return key

    @property
    def fields(self) -> tuple[str, ...]:
        """The sample fields the features read (besides the image)."""
        return tuple(dict.fromkeys(field for _, field in self.parsed.values() if field is not None))

    def raw(self, indices: Sequence[int]) -> dict[str, Any]:
        """What the encoders need for these items: images and text fields (cheap, on the CPU)."""
        return collate_raw([self.dataset[int(i)] for i in indices], self.fields)

    @torch.no_grad()
    def compute(self, raw: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The features (all, or those named) of a raw batch, on the backbone's device."""
        out: dict[str, torch.Tensor] = {}
        for name, (kind, field) in self.parsed.items():
            if names is not None and name not in names:
                continue
            for part, value in FEATURE_KINDS[kind].compute(self, raw, field).items():
                out[f"{name}.{part}" if part else name] = value
        return out

    # ----------------------------------------------------------------------------------------------

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Rows of the cache for these indices, or the raw inputs when there is no cache."""
        if self.arrays is None:
            return self.raw(indices)
        rows = np.asarray(indices, dtype=np.int64)
        out = {}
        for name, array in self.arrays.items():
            values = torch.from_numpy(np.ascontiguousarray(array[rows]))
            out[name] = values.float().div_(255.0) if values.dtype == torch.uint8 else values
        return out

    def features(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Complete a batch from `batch()`: compute features for raw inputs, pass cached ones through."""
        return self.compute(batch) if batch.get(RAW) else dict(batch)


# --------------------------------------------------------------------------------------------------
# The built-in feature kinds


def _clip(features: "FrozenFeatures") -> dict[str, nn.Module]:
    return {"clip": features.backbone.clip}


def _english_length(backbone: Backbone) -> dict[str, Any]:
    return {"english_max_length": backbone.tokenizer.model_max_length}


def _multilingual_length(backbone: Backbone) -> dict[str, Any]:
    return {"multilingual_max_length": backbone.multilingual_tokenizer.model_max_length}


@feature_kind("pixels", field=False, uint8=True)
def _pixels(features, raw, field):
    return {"": raw["pixel_values"].to(features.backbone.device)}


@feature_kind("diffusion_input", field=False,
              modules=lambda f: {"vae": f.backbone.vae} if f.backbone.vae is not None else {})
def _diffusion_input(features, raw, field):
    return {"": features.backbone.diffusion_input(raw["pixel_values"]).float()}


@feature_kind("clip_image", field=False, modules=_clip)
def _clip_image(features, raw, field):
    return {"": features.backbone.encode_images(raw["pixel_values"]).float()}


@feature_kind("clip_text", field=True, modules=_clip, key_extra=_english_length)
def _clip_text(features, raw, field):
    return {part: value.float() for part, value in features.backbone.english_text_outputs(raw[field]).items()}


@feature_kind("multilingual", field=True, modules=lambda f: {"multilingual": f.multilingual},
              key_extra=_multilingual_length)
def _multilingual(features, raw, field):
    bb = features.backbone
    tokens = bb.tokenize_multilingual(raw[field])
    features.multilingual.to(bb.device)
    states = features.multilingual(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    return {"states": states.last_hidden_state.float(), "mask": tokens["attention_mask"]}


@feature_kind("english_tokens", field=True, key_extra=_english_length)
def _english_tokens(features, raw, field):
    tokens = features.backbone.tokenize_english(raw[field])
    return {"ids": tokens["input_ids"], "mask": tokens["attention_mask"]}


@feature_kind("multilingual_tokens", field=True, key_extra=_multilingual_length)
def _multilingual_tokens(features, raw, field):
    tokens = features.backbone.tokenize_multilingual(raw[field])
    return {"ids": tokens["input_ids"], "mask": tokens["attention_mask"]}


@feature_kind("flag", field=True)
def _flag(features, raw, field):
    return {"": raw[field].to(features.backbone.device)}



def collate_raw(samples: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> dict[str, Any]:
    """A raw batch from samples: stacked images and the named fields (a DataLoader's collate_fn)."""
    out: dict[str, Any] = {RAW: True}
    if "pixel_values" in samples[0]:
        out["pixel_values"] = torch.stack([s["pixel_values"] for s in samples])
    for field in fields:
        values = [s[field] for s in samples]
        out[field] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


def _to_storage(kind: str, tensor: torch.Tensor) -> np.ndarray:
    if FEATURE_KINDS[kind].uint8:  # exact: pixel values are k/255
        return (tensor * 255.0).round().to(torch.uint8).cpu().numpy()
    return tensor.detach().cpu().numpy()


class FeatureCache:
    """Memory-mapped feature arrays on disk under `root`, one folder per key. A build reads the dataset in
    order through a DataLoader with `num_workers` processes (decoding real images is the slow part: each
    image is decoded once, here, and every later epoch and stage reads the arrays)."""

    def __init__(self, root: str | os.PathLike, num_workers: int = 0):
        self.root = Path(root)
        self.num_workers = num_workers

    @staticmethod
    def digest(key: Mapping[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def load_or_build(self, features: FrozenFeatures, name: str) -> dict[str, np.ndarray]:
        """The arrays of feature `name` of `features` (named `name` or `name.part`), built if missing."""
        spec = features.specs[name]
        key = features.key(spec)
        directory = self.root / self.digest(key)
        if not (directory / "meta.json").exists():
            self._build(features, name, key, directory)
        try:
            meta = json.loads((directory / "meta.json").read_text())
            arrays = {part: np.load(directory / f"{part or 'value'}.npy", mmap_mode="r") for part in meta["parts"]}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise DataFormatError(directory, f"unreadable feature cache entry ({err}); delete the folder to rebuild") from None
        size = len(features.dataset)
        if any(len(a) != size for a in arrays.values()):
            raise DataFormatError(directory, f"cache arrays do not have {size} rows; delete the folder to rebuild")
        log.info("feature cache %s (%s): %s", directory.name, spec, {k: tuple(a.shape) for k, a in arrays.items()})
        return {f"{name}.{part}" if part else name: array for part, array in arrays.items()}

    def _build(self, features: FrozenFeatures, name: str, key: Mapping[str, Any], directory: Path) -> None:
        size = len(features.dataset)
        kind, _ = features.parsed[name]
        tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        arrays: dict[str, np.ndarray] = {}
        loader = torch.utils.data.DataLoader(features.dataset, batch_size=features.batch_size, shuffle=False,
                                             num_workers=self.num_workers,
                                             collate_fn=functools.partial(collate_raw, fields=features.fields))
        start = 0
        for raw in tqdm(loader, desc=f"feature cache: {key['spec']}", unit="batch"):
            count = len(raw["pixel_values"]) if "pixel_values" in raw else len(raw[features.fields[0]])
            for full_name, tensor in features.compute(raw, names=[name]).items():
                part = full_name[len(name) + 1:]  # "" for single-array features
                stored = _to_storage(kind, tensor)
                if part not in arrays:
                    arrays[part] = np.lib.format.open_memmap(tmp / f"{part or 'value'}.npy", mode="w+",
                                                             dtype=stored.dtype, shape=(size, *stored.shape[1:]))
                arrays[part][start:start + count] = stored
            start += count
        for array in arrays.values():
            array.flush()
        (tmp / "meta.json").write_text(json.dumps({"key": key, "parts": sorted(arrays)}, indent=2, default=str))
        try:
            tmp.rename(directory)
        except OSError:  # another process finished the same entry first; theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("built feature cache %s (%d items)", directory, size)


class WithFields(torch.utils.data.Dataset):
    """A dataset whose every sample also carries constant tensor `fields` (e.g. its language's index, read
    as `flag:language_index`); the descriptor says so, so a cache tells the two apart."""

    def __init__(self, dataset, **fields: int | float):
        self.dataset, self.fields = dataset, fields

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], **{name: torch.tensor(value) for name, value in self.fields.items()}}

    def descriptor(self) -> dict:
        return {"kind": "with_fields", "fields": self.fields, "dataset": self.dataset.descriptor()}


class ConcatDataset(torch.utils.data.Dataset):
    """Several datasets one after another, with a descriptor (so the mixture can key a cache)."""

    def __init__(self, datasets: Sequence):
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict:
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.datasets[part][index - int(self.offsets[part])]

    def descriptor(self) -> dict:
        return {"kind": "concat", "parts": [d.descriptor() for d in self.datasets]}
