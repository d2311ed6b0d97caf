"""The data file: which files each training regime reads, per language (YAML or JSON).

`xlcore train|sweep|study --data FILE` (or `--set data=FILE`, or a notebook's `data_file` parameter)
trains every method on it instead of the built-in world; `examples/data/sd15.yaml` is a complete,
commented example. Relative paths are relative to the data file's folder. In YAML, quote a brace
pattern inside `{...}` (`shards: "/data/{00000..00099}.tar"`), where braces would end the mapping. Fields:

Top level
    languages        the corpus's languages, English first (default: 'en' and every language named below)
    image_size       side images are resized (shorter side) and centre-cropped to (default: the preset's
                     resolution: 512 for sd15, the world's 32 for toy)
    validate_images  'decode' (default: every image decoded once when its file is indexed), 'header'
                     (only parsed) or 'none'
    index_dir        where indices and bad_samples.jsonl go (default: <output_dir>/<preset>/data_index)
    english_image_text    one source (the English image-text set)
    language_image_text   language -> source (image-text in that language)
    pivot_image_text      language -> source (images with a target and an English caption)
    parallel_text         language -> parallel source (en-X)
    monolingual_text      language -> text source

Image-text sources (`format` and its fields)
    webdataset   shards (brace pattern, glob or list); caption_field (json key, default 'caption')
    parquet      files (pattern or list) or folder (a `datasets.save_to_disk` folder); image_column
                 (default 'image', bytes or the datasets Image struct) or image_path_column; caption_column
                 (default 'caption'); language_column; english_column
    table        file (CSV, or TSV by its .tsv name; header row); image_column (a path relative to the
                 file, default 'image'); caption_column; language_column; english_column
    every one    max_items (use only the first n); validate_images (overrides the top level)
    In `pivot_image_text` the English caption comes from `english_column` (parquet, table) or the
    shard's json (`captions.en` or `caption_en`).

Parallel sources
    moses        english and target: line-aligned files (OPUS's `corpus.en`, `corpus.de`)
    tsv          file: two tab-separated columns; columns: their order, e.g. [en, de] (default [en, target])
Text sources
    text         file: one sentence per line

Evaluation (optional; without it cells evaluate on the world's prompts and test split)
    evaluation:
      prompts: the generation prompts, parallel across languages, with their images as FID references:
        {format: multi30k, root: <multi30k data/>, split: test_2016_flickr, image_dir: <Flickr30K images>,
         languages: [en, de, fr, cs]}
        {format: xm3600, captions: <captions.jsonl>, image_dir: <images>, languages: [...]}  (first caption)
        {format: cococrola, file: <concepts.csv>, templates: {en: "a photo of {}", de: "ein Foto von {}"}}
      retrieval: a list of {benchmark: multi30k-task1 | xtd10 | xm3600 | coco-cn | stair, root: ..., image_dir: ...,
                 languages: [...], split/protocol: ...} (the xlcore.data loaders)
      clip_model: {model: ViT-B-32-quickgelu, pretrained: <checkpoint file or a tag in the HF cache>}

Bad samples are skipped and counted (`xlcore.data.sources`); a missing file, a pattern matching
nothing, an unknown field or format, or a malformed file is an error naming it.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError, DataFormatError, MissingDataError
from . import sources
from .corpus import REGIMES, Prefix, RealCorpus

IMAGE_TEXT_FORMATS: dict[str, tuple[type, dict[str, str]]] = {
    # format -> (reader, data-file field -> reader argument)
    "webdataset": (sources.WebDatasetImageText, {"shards": "shards", "caption_field": "caption_field"}),
    "parquet": (sources.ParquetImageText, {"files": "files", "folder": "files", "image_column": "image_column",
                                           "image_path_column": "image_path_column", "caption_column": "caption_column",
                                           "language_column": "language_column", "english_column": "english_column"}),
    "table": (sources.TableImageText, {"file": "file", "image_column": "image_column", "caption_column": "caption_column",
                                       "language_column": "language_column", "english_column": "english_column"}),
}
PATH_FIELDS = {"shards", "files", "folder", "file", "english", "target"}
TOP_LEVEL = {"languages", "image_size", "validate_images", "index_dir", "evaluation", *REGIMES}
EVALUATION_FIELDS = {"prompts", "retrieval", "clip_model"}


class Evaluation:
    """The data file's evaluation section, built on first use: `prompts()` (a prompt set),
    `retrieval_sets(image_size)` and `clip_scorer(device)`; each None where the file names none."""

    def __init__(self, spec: Mapping[str, Any], path: Path):
        unknown = sorted(set(spec) - EVALUATION_FIELDS)
        if unknown:
            raise DataFormatError(path, f"evaluation: unknown field(s) {unknown}; fields: {sorted(EVALUATION_FIELDS)}")
        self.spec, self.path = {k: _resolved_tree(v, path.parent) for k, v in spec.items()}, path

    def prompts(self):
        from ..evaluate import prompt_sets

        spec = dict(self.spec.get("prompts") or {})
        if not spec:
            return None
        fmt = spec.pop("format", None)
        where = f"{self.path}: evaluation.prompts"
        if fmt == "cococrola":
            return prompt_sets.concepts(spec["file"], spec.get("templates"))
        if fmt not in ("multi30k", "xm3600"):
            raise DataFormatError(self.path, f"{where}: format must be multi30k, xm3600 or cococrola, got {fmt!r}")
        from . import benchmarks

        languages = spec.get("languages") or (prompt_sets.MULTI30K_LANGUAGES if fmt == "multi30k" else None)
        if not languages:
            raise DataFormatError(self.path, f"{where}: name the languages to prompt in")
        if fmt == "multi30k":
            split = spec.get("split", "test_2016_flickr")
            loaded = {lang: benchmarks.load_multi30k_task1(spec["root"], lang, split, spec.get("image_dir"))
                      for lang in languages}
            name = f"multi30k-task1/{split}"
        else:
            loaded = {lang: benchmarks.load_xm3600(spec["captions"], lang, spec.get("image_dir"),
                                                   protocol=benchmarks.FIRST_CAPTION) for lang in languages}
            name = "xm3600/first-caption"
        return prompt_sets.from_benchmarks(loaded, name)

    def retrieval_sets(self, image_size: int):
        from ..evaluate.retrieval import benchmark_retrieval_set
        from . import benchmarks

        entries = self.spec.get("retrieval")
        if not entries:
            return None
        sets = []
        for entry in entries:
            entry = dict(entry)
            name, root, image_dir = entry.pop("benchmark"), entry.pop("root"), entry.pop("image_dir", None)
            for lang in entry.pop("languages", None) or benchmarks.supported_languages(name):
                sets.append(benchmark_retrieval_set(benchmarks.load_benchmark(name, root, lang, image_dir, **entry),
                                                    image_size))
        return sets

    def clip_scorer(self, device="cpu"):
        spec = self.spec.get("clip_model")
        if not spec:
            return None
        from ..evaluate.clip_score import OpenClipScorer

        return OpenClipScorer(spec["model"], spec["pretrained"], device=device)


def _resolved_tree(value: Any, folder: Path) -> Any:
    """Relative paths of an evaluation entry (`root`, `image_dir`, `file`, `captions`, `pretrained`) resolved."""
    if isinstance(value, list):
        return [_resolved_tree(v, folder) for v in value]
    if isinstance(value, dict):
        return {k: (_resolved(v, folder) if k in ("root", "image_dir", "file", "captions") or
                    (k == "pretrained" and (folder / str(v)).exists()) else _resolved_tree(v, folder))
                for k, v in value.items()}
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingDataError(f"data file {path} not found") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, f"not valid JSON ({err.msg})", line=err.lineno) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            line = getattr(getattr(err, "problem_mark", None), "line", None)
            raise DataFormatError(path, f"not valid YAML ({getattr(err, 'problem', err)})",
                                  line=None if line is None else line + 1) from None
    if not isinstance(data, dict):
        raise DataFormatError(path, "expected a mapping of regimes to sources at the top level")
    return data


def _resolved(value: Any, folder: Path) -> Any:
    """Paths relative to the data file's folder (lists and brace patterns kept as they are otherwise)."""
    if isinstance(value, list):
        return [_resolved(v, folder) for v in value]
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(folder / value)
    return value


def _source(spec: Any, regime: str, lang: str, settings: Mapping[str, Any], path: Path) -> Callable[[], Any]:
    """A builder of one source of the data file."""
    where = f"{path}: {regime}.{lang}" if regime != "english_image_text" else f"{path}: {regime}"
    if not isinstance(spec, dict) or "format" not in spec:
        raise DataFormatError(path, f"{where} must be a mapping with a `format`")
    spec = {k: (_resolved(v, path.parent) if k in PATH_FIELDS else v) for k, v in spec.items()}
    fmt, max_items = spec.pop("format"), spec.pop("max_items", None)
    name = where.split(": ", 1)[1]

    def fields_of(allowed: set[str]) -> dict[str, Any]:
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise DataFormatError(path, f"{where}: unknown field(s) {unknown} for format {fmt!r}; known: {sorted(allowed)}")
        return dict(spec)

    if regime in ("parallel_text", "monolingual_text"):
        if regime == "parallel_text" and fmt == "moses":
            build = partial(sources.LineParallelText, lang, name=name, **fields_of({"english", "target"}))
        elif regime == "parallel_text" and fmt == "tsv":
            given = fields_of({"file", "columns"})
            columns = [("target" if c == lang else c) for c in given.get("columns", ["en", "target"])]
            build = partial(sources.LineParallelText, lang, tsv=given["file"], columns=columns, name=name)
        elif regime == "monolingual_text" and fmt == "text":
            build = partial(sources.LineText, fields_of({"file"})["file"], lang, name=name)
        else:
            known = "moses, tsv" if regime == "parallel_text" else "text"
            raise DataFormatError(path, f"{where}: unknown format {fmt!r}; formats here: {known}")
    else:
        if fmt not in IMAGE_TEXT_FORMATS:
            raise DataFormatError(path, f"{where}: unknown format {fmt!r}; formats: {', '.join(IMAGE_TEXT_FORMATS)}")
        reader, arguments = IMAGE_TEXT_FORMATS[fmt]
        given = fields_of(set(arguments) | {"validate_images"})
        kwargs = {arguments[k]: v for k, v in given.items() if k != "validate_images"}
        if regime == "pivot_image_text" and fmt == "webdataset":
            kwargs["english_caption"] = True
        if regime == "pivot_image_text" and fmt != "webdataset" and "english_column" not in kwargs:
            raise DataFormatError(path, f"{where}: a pivot source needs `english_column` (the English caption)")
        build = partial(reader, language=lang, index_dir=settings["index_dir"], image_size=settings["image_size"],
                        validate_images=given.get("validate_images", settings["validate_images"]), name=name, **kwargs)

    def make():
        dataset = build()
        return Prefix(dataset, max_items) if max_items and max_items < len(dataset) else dataset

    return make


def load_data_file(path: str | Path, *, image_size: int, index_dir: str | Path) -> RealCorpus:
    """The corpus a data file describes (sources are indexed when first read, not here)."""
    path = Path(path).expanduser().resolve()
    data = _read(path)
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        raise DataFormatError(path, f"unknown top-level field(s) {unknown}; fields: {sorted(TOP_LEVEL)}")
    settings = {"image_size": int(data.get("image_size") or image_size),
                "validate_images": data.get("validate_images", "decode"),
                "index_dir": _resolved(data.get("index_dir"), path.parent) if data.get("index_dir") else str(index_dir)}
    if settings["validate_images"] not in sources.VALIDATE:
        raise DataFormatError(path, f"validate_images must be one of {', '.join(sources.VALIDATE)}")
    built: dict[str, dict[str, Callable]] = {}
    named = ["en"]
    if data.get("english_image_text") is not None:
        built["english_image_text"] = {"en": _source(data["english_image_text"], "english_image_text", "en", settings, path)}
    for regime in REGIMES[1:]:
        by_language = data.get(regime) or {}
        if not isinstance(by_language, dict):
            raise DataFormatError(path, f"{regime} must map languages to sources, e.g. {regime}: {{de: {{format: ...}}}}")
        built[regime] = {str(lang): _source(spec, regime, str(lang), settings, path) for lang, spec in by_language.items()}
        named += [str(lang) for lang in by_language]
    languages = list(data.get("languages") or dict.fromkeys(named))
    if languages[0] != "en":
        raise DataFormatError(path, f"languages must start with 'en' (the backbone's language): {languages}")
    for regime, by_language in built.items():
        strays = sorted(set(by_language) - set(languages))
        if strays:
            raise DataFormatError(path, f"{regime} names {strays}, which `languages` does not list")
    if "en" in built.get("language_image_text", {}) or "en" in built.get("parallel_text", {}):
        raise ConfigError(f"{path}: English image-text goes under english_image_text, not per language")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    description = {"data_file": str(path), "sha256": digest, "image_size": settings["image_size"],
                   "validate_images": settings["validate_images"]}
    evaluation = Evaluation(data["evaluation"], path) if data.get("evaluation") else None
    return RealCorpus(built, languages, description, origin=f"data file {path}", evaluation=evaluation)


def corpus_for(study, *, image_size: int, output_dir: str | Path) -> Any:
    """The corpus a study's cells train on: the data file's (`study.data`; images at `image_size`, the
    backbone's resolution, unless the file says otherwise) or the built-in world."""
    from ..world import World

    if not study.data:
        return World(study.world)
    return load_data_file(study.data, image_size=image_size, index_dir=Path(output_dir) / study.preset / "data_index")


def data_identity(study) -> dict[str, str] | None:
    """What a run trained on a data file depends on: the file (path and content hash); None for the world."""
    if not study.data:
        return None
    path = Path(study.data).expanduser().resolve()
    if not path.is_file():
        raise MissingDataError(f"data file {path} not found")
    return {"data_file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}
