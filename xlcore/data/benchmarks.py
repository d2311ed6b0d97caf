"""Loaders for the multilingual image-text retrieval benchmarks, read from their published files.

Retrieval numbers only compare when the images, the captions and the evaluation protocol are the
same, so every loader reads the files exactly as their authors publish them (no re-tokenising, no
lower-casing, no stripping) and returns a `RetrievalBenchmark` that records which files it read and
which protocol its captions follow.

Formats
-------
Multi30K (github.com/multi30k/dataset), root = the repository's ``data/`` folder or a copy with the
``.gz`` files unpacked:
    ``task1/image_splits/<split>.txt``  Flickr30K file names, one per line;
    ``task1/<split>.<lang>``            one caption per line, line i describes image i; en/de/fr/cs
                                        are translations of each other (Task 1);
    ``task2/image_splits/<split>_images.txt`` and ``task2/<split>.<N>.<lang>``, N = 1..5: five
                                        independently written captions per image, en and de (Task 2).
    Caption files are also found as ``<name>.gz`` and under ``raw/``, the repository's own layout.
XTD10 (github.com/adobe-research/Cross-lingual-Test-Dataset-XTD10), root = the repository folder:
    ``XTD10/test_image_names.txt`` (1,000 COCO 2014 file names, train2014 and val2014) and one caption
    file per language aligned with it: ``XTD10/test_1kcaptions_<lang>.txt`` (en es it ko pl ru tr zh),
    ``MIC/test_1kcaptions_<de|fr>.txt`` and ``STAIR/test_1kcaptions_jp.txt`` (language 'ja').
Crossmodal-3600 (google.github.io/crossmodal-3600), ``captions.jsonl``: one JSON object per line,
    ``{"image/key": "<key>", "<lang>": {"caption": [...], "caption/tokenized": [...],
    "caption/tokenized/lowercase": [...]}, ...}`` for 36 languages; the image file is ``<key>.jpg``.
COCO-style caption JSON (STAIR Captions, COCO-CN's ``merged_captions_coco-cn_test.json``):
    ``{"images": [{"id", "file_name"}, ...], "annotations": [{"image_id", "caption"}, ...]}``.
    COCO-CN's captions are word-segmented (words separated by spaces) and mix two kinds, told apart
    by the annotation key ``source``: 'cn' (written in Chinese, 1-2 per image) and 'zhm' (manual
    translations of COCO's English captions, 5 per image). The text is kept as published, spaces
    included, since a Chinese tokenizer sees them; the loader keeps all of them in file order.

Line-aligned text files are read as UTF-8 (a byte-order mark is tolerated); LF and CRLF endings and
a missing final newline are accepted because seven XTD10 files are stored with CRLF and no final
newline. An empty line is an error: in a line-aligned file it is a lost caption, not a separator.

Protocols
---------
``"all-captions"``: every caption of an image is a text query (text->image) and a correct answer
    (image->text); big_vision evaluates Crossmodal-3600 this way.
``"first-caption"``: only the first caption of each image; CLIP_benchmark evaluates Crossmodal-3600
    this way. Numbers from the two protocols do not compare (different query sets, and recall for
    image->text is easier with several correct captions), so the protocol travels with the data.
Benchmarks with one caption per image (Multi30K Task 1, XTD10) hold the same captions under both;
the loaders record "all-captions" for them.

Known quirks of the published files
-----------------------------------
XTD10's MIC German file has lines that hold no translation ('Could not translate' three times, '?'
twice), the French one 'Could not translate' once; they are kept (the benchmark is what was
published) and logged as a warning. COCO-CN's annotation ``id`` is not unique (it numbers the
captions of one image within one ``source``); the loader does not use it.
"""

from __future__ import annotations

import codecs
import dataclasses
import gzip
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError, DataFormatError, MissingDataError, UnknownLanguageError

logger = logging.getLogger(__name__)

ALL_CAPTIONS = "all-captions"
FIRST_CAPTION = "first-caption"
PROTOCOLS = (ALL_CAPTIONS, FIRST_CAPTION)

COCO_CN_TEST_FILE = "merged_captions_coco-cn_test.json"
XM3600_CAPTIONS_FILE = "captions.jsonl"

_XTD10_CAPTION_FILES = {
    **{lang: f"XTD10/test_1kcaptions_{lang}.txt" for lang in ("en", "es", "it", "ko", "pl", "ru", "tr", "zh")},
    "de": "MIC/test_1kcaptions_de.txt",
    "fr": "MIC/test_1kcaptions_fr.txt",
    "ja": "STAIR/test_1kcaptions_jp.txt",  # the file name says 'jp'; the ISO 639-1 code is 'ja'
}
# Lines of the MIC files that are placeholders, not translations (see the module docstring).
_XTD10_PLACEHOLDERS = frozenset({"Could not translate", "?"})

_XM3600_LANGUAGES = (
    "ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he", "hi", "hr", "hu", "id", "it",
    "ja", "ko", "mi", "nl", "no", "pl", "pt", "quz", "ro", "ru", "sv", "sw", "te", "th", "tr", "uk", "vi", "zh",
)

_LANGUAGES: dict[str, tuple[str, ...]] = {
    "multi30k-task1": ("en", "de", "fr", "cs"),
    "multi30k-task2": ("en", "de"),
    "xtd10": tuple(_XTD10_CAPTION_FILES),
    "xm3600": _XM3600_LANGUAGES,
    "coco-cn": ("zh",),
    "stair": ("ja",),
}

# benchmark -> (dataset name, where its captions are published), for "file not found" messages.
_PUBLISHED = {
    "multi30k-task1": ("Multi30K", "github.com/multi30k/dataset"),
    "multi30k-task2": ("Multi30K", "github.com/multi30k/dataset"),
    "xtd10": ("XTD10", "github.com/adobe-research/Cross-lingual-Test-Dataset-XTD10"),
    "xm3600": ("Crossmodal-3600", "google.github.io/crossmodal-3600 (web-data/captions.zip)"),
    "coco-cn": ("COCO-CN", "github.com/li-xirong/coco-cn (on request)"),
    "stair": ("STAIR Captions", "github.com/STAIR-Lab-CIT/STAIR-captions"),
}

# benchmark -> where its images come from; none of the caption releases ships the images.
_IMAGES_PUBLISHED = {
    "multi30k-task1": "Flickr30K, shannon.cs.illinois.edu/DenotationGraph",
    "multi30k-task2": "Flickr30K, shannon.cs.illinois.edu/DenotationGraph",
    "xtd10": "COCO train2014 and val2014 from cocodataset.org, both in one folder",
    "xm3600": "open-images-dataset.s3.amazonaws.com/crossmodal-3600/images.tgz",
    "coco-cn": "COCO train2014 and val2014 from cocodataset.org, both in one folder",
    "stair": "COCO 2014 from cocodataset.org",
}

_MISSING_IMAGES_SHOWN = 5


@dataclass(frozen=True)
class RetrievalBenchmark:
    """One language of one retrieval benchmark: images, their captions, and how they were chosen.

    ``captions[i]`` are all captions of ``image_ids[i]`` under ``protocol``; ``source`` names the
    files read, so a result can be traced back to them.
    """

    name: str
    language: str
    image_ids: tuple[str, ...]
    captions: tuple[tuple[str, ...], ...]
    image_dir: Path | None
    protocol: str
    source: str

    def __post_init__(self) -> None:
        # flat_captions() and every recall computation rely on these two invariants.
        if len(self.image_ids) != len(self.captions):
            raise ValueError(f"{self.name}: {len(self.image_ids)} images but {len(self.captions)} caption groups")
        if any(not group for group in self.captions):
            raise ValueError(f"{self.name}: every image needs at least one caption")

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_paths(self) -> list[Path]:
        """The image files, in benchmark order; checked here, not at load time, because text-only
        work (encoding captions, counting) should not need the images."""
        family = self.name.split("/")[0]
        where = "images: " + _IMAGES_PUBLISHED.get(family, "from the benchmark's publisher")
        if self.image_dir is None:
            raise MissingDataError(
                f"{self.name} was loaded without an image folder; pass image_dir= to the loader; {where}"
            )
        if not self.image_dir.is_dir():
            raise MissingDataError(f"image folder {self.image_dir} of {self.name} does not exist; {where}")
        paths = [self.image_dir / image_id for image_id in self.image_ids]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            shown = ", ".join(missing[:_MISSING_IMAGES_SHOWN])
            shown += ", ..." if len(missing) > _MISSING_IMAGES_SHOWN else ""
            raise MissingDataError(
                f"{len(missing)} of {len(paths)} images of {self.name} are missing from {self.image_dir}: "
                f"{shown}; {where}"
            )
        return paths

    def flat_captions(self) -> tuple[list[str], list[int]]:
        """All captions in one list with the index of their image, the layout text->image retrieval
        scores against (one query per caption, one correct image per query)."""
        texts = [text for group in self.captions for text in group]
        owners = [index for index, group in enumerate(self.captions) for _ in group]
        return texts, owners

    def first_caption_only(self) -> RetrievalBenchmark:
        """The same benchmark under the "first-caption" protocol (CLIP_benchmark's choice for XM3600)."""
        first = tuple(group[:1] for group in self.captions)
        return dataclasses.replace(self, captions=first, protocol=FIRST_CAPTION)


def supported_languages(name: str) -> tuple[str, ...]:
    """The language codes a benchmark has (ISO 639-1 where one exists; XM3600 also has 'fil', 'quz')."""
    _check_benchmark(name)
    return _LANGUAGES[name]


def load_multi30k_task1(
    root: str | Path, language: str, split: str = "test_2016_flickr", image_dir: str | Path | None = None
) -> RetrievalBenchmark:
    """Multi30K Task 1: one caption per image, the four languages translations of each other."""
    _check_language("multi30k-task1", language)
    root = Path(root)
    image_list = _find([root / "task1" / "image_splits" / f"{split}.txt"], "multi30k-task1")
    caption_file = _find_multi30k(root, "task1", f"{split}.{language}")
    return _line_aligned_benchmark(f"multi30k-task1/{split}", language, image_list, [caption_file], image_dir)


def load_multi30k_task2(
    root: str | Path, language: str, split: str = "test_2016", image_dir: str | Path | None = None
) -> RetrievalBenchmark:
    """Multi30K Task 2: five independently written captions per image (en, de), protocol all-captions."""
    _check_language("multi30k-task2", language)
    root = Path(root)
    image_list = _find([root / "task2" / "image_splits" / f"{split}_images.txt"], "multi30k-task2")
    caption_files = [_find_multi30k(root, "task2", f"{split}.{n}.{language}") for n in range(1, 6)]
    return _line_aligned_benchmark(f"multi30k-task2/{split}", language, image_list, caption_files, image_dir)


def load_xtd10(root: str | Path, language: str, image_dir: str | Path | None = None) -> RetrievalBenchmark:
    """XTD10 and its MIC (de, fr) and STAIR (ja) companions: 1,000 COCO images, one caption each."""
    _check_language("xtd10", language)
    root = Path(root)
    image_list = _find([root / "XTD10" / "test_image_names.txt"], "xtd10")
    caption_file = _find([root / _XTD10_CAPTION_FILES[language]], "xtd10")
    benchmark = _line_aligned_benchmark("xtd10", language, image_list, [caption_file], image_dir)
    placeholders = [n for n, (text,) in enumerate(benchmark.captions, 1) if text.strip() in _XTD10_PLACEHOLDERS]
    if placeholders:
        logger.warning(
            "%s: a placeholder instead of a caption on line(s) %s; kept, as the benchmark was published",
            caption_file, ", ".join(map(str, placeholders)),
        )
    return benchmark


def load_xm3600(
    captions_jsonl: str | Path,
    language: str,
    image_dir: str | Path | None = None,
    protocol: str = ALL_CAPTIONS,
) -> RetrievalBenchmark:
    """Crossmodal-3600 from its ``captions.jsonl``; ``protocol`` picks all captions (big_vision) or
    the first caption per image (CLIP_benchmark), whose numbers do not compare."""
    _check_language("xm3600", language)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    path = _find([Path(captions_jsonl)], "xm3600")
    images = _check_image_dir(image_dir)
    keys: dict[str, int] = {}
    captions: list[tuple[str, ...]] = []
    for number, line in enumerate(_read_lines(path, "JSON object"), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"invalid JSON ({exc.msg}, column {exc.colno})", number) from None
        key = _field(record, "image/key", str, path, number, "the JSON object")
        texts = _field(_field(record, language, dict, path, number, "the JSON object"), "caption", list,
                       path, number, f"the {language!r} entry")
        if not texts:
            raise DataFormatError(path, f"image {key} has no {language!r} caption", number)
        if key in keys:
            raise DataFormatError(path, f"image/key {key!r} already appeared on line {keys[key]}", number)
        keys[key] = number
        group = tuple(_caption(text, path, number, f"a {language!r} caption of image {key}") for text in texts)
        captions.append(group if protocol == ALL_CAPTIONS else group[:1])
    return RetrievalBenchmark(
        name="xm3600", language=language, image_ids=tuple(f"{key}.jpg" for key in keys),
        captions=tuple(captions), image_dir=images, protocol=protocol, source=str(path),
    )


def load_coco_captions_json(
    json_path: str | Path, image_dir: str | Path | None = None, name: str = "stair", language: str = "ja"
) -> RetrievalBenchmark:
    """A COCO-style caption JSON (STAIR Captions, COCO-CN), images in the file's order, each image's
    captions in annotation order.

    Images without any caption are dropped with a warning (they cannot be retrieved by text); an
    annotation for an image id not in ``images`` is an error, since it means the file is not the one
    its image list describes. Problems are located by entry (``annotations[12]``) rather than by line
    because these files are usually a single line.
    """
    if name in _LANGUAGES:
        _check_language(name, language)
    path = _find([Path(json_path)], name)
    images = _check_image_dir(image_dir)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"invalid JSON ({exc.msg}, column {exc.colno})", exc.lineno) from None
    file_names: dict[Any, str] = {}
    for index, image in enumerate(_field(data, "images", list, path, None, "the top-level object")):
        image_id = _field(image, "id", (int, str), path, None, f"images[{index}]")
        if image_id in file_names:
            raise DataFormatError(path, f"images[{index}] repeats image id {image_id!r}")
        file_names[image_id] = _field(image, "file_name", str, path, None, f"images[{index}]")
    captions: dict[Any, list[str]] = {image_id: [] for image_id in file_names}
    for index, annotation in enumerate(_field(data, "annotations", list, path, None, "the top-level object")):
        where = f"annotations[{index}]"
        image_id = _field(annotation, "image_id", (int, str), path, None, where)
        if image_id not in captions:
            raise DataFormatError(path, f"{where} refers to image id {image_id!r}, which 'images' does not list")
        text = _field(annotation, "caption", str, path, None, where)
        captions[image_id].append(_caption(text, path, None, where))
    uncaptioned = [image_id for image_id, group in captions.items() if not group]
    if uncaptioned:
        logger.warning(
            "%s: %d of %d images have no caption and are left out (ids %s)", path, len(uncaptioned),
            len(captions), ", ".join(map(str, uncaptioned[:_MISSING_IMAGES_SHOWN])),
        )
    kept = [image_id for image_id, group in captions.items() if group]
    if not kept:
        raise DataFormatError(path, "no image has a caption")
    return RetrievalBenchmark(
        name=name, language=language, image_ids=tuple(file_names[i] for i in kept),
        captions=tuple(tuple(captions[i]) for i in kept), image_dir=images, protocol=ALL_CAPTIONS,
        source=str(path),
    )


def load_benchmark(
    name: str, root: str | Path, language: str, image_dir: str | Path | None = None, **kw: Any
) -> RetrievalBenchmark:
    """Load a benchmark by name; ``root`` is the dataset folder (for xm3600 and coco-cn also the file
    itself; for stair the JSON file, since STAIR ships train/val files and the test split is a choice).
    Extra keywords go to the loader (``split`` for Multi30K, ``protocol`` for xm3600)."""
    _check_benchmark(name)
    return _LOADERS[name](root, language, image_dir=image_dir, **kw)


def _load_xm3600_from(root: str | Path, language: str, image_dir: str | Path | None = None,
                      protocol: str = ALL_CAPTIONS) -> RetrievalBenchmark:
    return load_xm3600(_file_in(root, XM3600_CAPTIONS_FILE), language, image_dir, protocol)


def _load_coco_cn_from(
    root: str | Path, language: str, image_dir: str | Path | None = None
) -> RetrievalBenchmark:
    path = _file_in(root, COCO_CN_TEST_FILE)
    return load_coco_captions_json(path, image_dir, name="coco-cn", language=language)


def _load_stair_from(root: str | Path, language: str, image_dir: str | Path | None = None) -> RetrievalBenchmark:
    return load_coco_captions_json(root, image_dir, name="stair", language=language)


_LOADERS: dict[str, Callable[..., RetrievalBenchmark]] = {
    "multi30k-task1": load_multi30k_task1,
    "multi30k-task2": load_multi30k_task2,
    "xtd10": load_xtd10,
    "xm3600": _load_xm3600_from,
    "coco-cn": _load_coco_cn_from,
    "stair": _load_stair_from,
}


def _check_benchmark(name: str) -> None:
    if name not in _LOADERS:
        raise ConfigError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(_LOADERS)}")


def _check_language(benchmark: str, language: str) -> None:
    if language not in _LANGUAGES[benchmark]:
        raise UnknownLanguageError(language, _LANGUAGES[benchmark])


def _check_image_dir(image_dir: str | Path | None) -> Path | None:
    """Fail at load time on a wrong image folder (a typo would otherwise surface only at scoring)."""
    if image_dir is None:
        return None
    path = Path(image_dir)
    if not path.is_dir():
        raise MissingDataError(f"image folder {path} does not exist or is not a folder")
    return path


def _file_in(root: str | Path, default_name: str) -> Path:
    """``root`` itself if it is a file path, else the benchmark's usual file name inside the folder."""
    root = Path(root)
    return root / default_name if root.is_dir() else root


def _find(candidates: Sequence[Path], benchmark: str) -> Path:
    """The first existing candidate; otherwise say which file is expected and where it is published."""
    for path in candidates:
        if path.is_file():
            return path
    dataset, published = _PUBLISHED.get(benchmark, (benchmark, "its publisher"))
    also = f" (also looked for {', '.join(map(str, candidates[1:]))})" if len(candidates) > 1 else ""
    raise MissingDataError(
        f"{dataset} file {candidates[0]} not found{also}; {dataset} is published at {published}"
    )


def _find_multi30k(root: Path, task: str, name: str) -> Path:
    """A Multi30K caption file in the unpacked layout (``task1/x.en``) or the repository's own
    (``task1/raw/x.en.gz``), so that a clone's ``data/`` folder works as ``root`` unchanged."""
    candidates = [root / task / sub / (name + ext) for sub in ("", "raw") for ext in ("", ".gz")]
    return _find(candidates, f"multi30k-{task}")


def _read_text(path: Path) -> str:
    """The whole file as text: UTF-8, gunzipped on the fly for ``.gz``, a byte-order mark dropped.

    Decoding errors name the line, because a re-encoded file (Latin-1, GBK, Shift-JIS) is the usual
    cause and the line shows which caption was damaged.
    """
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(path, f"not a readable gzip file ({exc})") from None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(
            path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); the benchmarks are published in UTF-8", line
        ) from None


def _read_lines(path: Path, what: str) -> list[str]:
    """The lines of a one-item-per-line file without their LF / CRLF ending; each must hold text.

    Lines are split on '\\n' only: ``str.splitlines`` would also split on characters such as U+2028
    or U+0085 inside a caption and silently break the line alignment.
    """
    lines = _read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise DataFormatError(path, f"the file is empty; expected one {what} per line")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise DataFormatError(path, f"empty line; every line must hold one {what}", number)
    return lines


def _line_aligned_benchmark(
    name: str, language: str, image_list: Path, caption_files: Sequence[Path], image_dir: str | Path | None
) -> RetrievalBenchmark:
    """A benchmark stored as an image list plus caption files whose line i describes image i; with
    several caption files, image i gets line i of each, in the order given."""
    images = _check_image_dir(image_dir)
    image_ids = _read_lines(image_list, "image file name")
    first_seen: dict[str, int] = {}
    for number, image_id in enumerate(image_ids, 1):
        if image_id in first_seen:
            # A repeated image would have two "correct" rows and make recall ambiguous.
            raise DataFormatError(image_list, f"{image_id} already listed on line {first_seen[image_id]}", number)
        first_seen[image_id] = number
    columns = []
    for caption_file in caption_files:
        column = _read_lines(caption_file, "caption")
        if len(column) != len(image_ids):
            raise DataFormatError(
                caption_file,
                f"{len(column)} captions but {len(image_ids)} images in {image_list}; line i of the caption "
                "file must describe line i of the image list (the line given is the first without a "
                "counterpart)",
                min(len(column), len(image_ids)) + 1,
            )
        columns.append(column)
    return RetrievalBenchmark(
        name=name, language=language, image_ids=tuple(image_ids), captions=tuple(zip(*columns)),
        image_dir=images, protocol=ALL_CAPTIONS, source="; ".join(map(str, [image_list, *caption_files])),
    )


def _field(
    container: Any, key: str, kind: type | tuple[type, ...], path: Path, line: int | None, where: str
) -> Any:
    """``container[key]`` checked to be a ``kind``; DataFormatError naming file, line and entry otherwise."""
    if not isinstance(container, dict) or key not in container:
        raise DataFormatError(path, f"{where} has no key {key!r}", line)
    value = container[key]
    if not isinstance(value, kind):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataFormatError(path, f"{where}: {key!r} is a {type(value).__name__}, expected {expected}", line)
    return value


def _caption(text: Any, path: Path, line: int | None, where: str) -> str:
    """A caption from a JSON file: a non-empty string, kept verbatim."""
    if not isinstance(text, str) or not text.strip():
        raise DataFormatError(path, f"{where} is empty or not a string", line)
    return text
