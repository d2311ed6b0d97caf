"""Readers for the formats image-text and parallel-text corpora come in, each a map-style dataset.

Every reader indexes its files once, keeps random access (so a batch is a pure function of the training
step, data-parallel ranks take disjoint slices of each global batch, and a resumed run continues at
the exact sample where it stopped: `xlcore.train.step_indices`), serves the sample dicts the methods
read (the same keys as the built-in world's regimes, `xlcore.data.corpus`), and has a `descriptor()`
naming its files with their sizes and modification times, so the feature cache's keys stay honest.

Formats
-------
- `WebDatasetImageText`: webdataset tar shards as img2dataset writes them: `KEY.jpg|jpeg|png|webp`
  beside `KEY.txt` (the caption) and/or `KEY.json` (its `caption`, a language field `language`,
  `LANGUAGE` (LAION-multi) or `lang`, and, where present, captions in other languages as
  `captions: {"en": ...}` or `caption_en`). Keys and extensions are split as webdataset does
  (`webdataset.tariterators.base_plus_ext`); shard lists are brace-expanded (`braceexpand`, as
  webdataset) and globbed. Random access reads a member at the offset the index recorded (webdataset 1.x
  no longer ships its indexed reader, wids; the offsets come from the standard `tarfile` scan).
- `ParquetImageText`: Parquet files (pyarrow) or a Hugging Face `datasets` folder (`save_to_disk`, read
  with `datasets.load_from_disk`): an image column holding bytes (or the `datasets` Image struct
  `{bytes, path}`) or a path column, a caption column, optionally a language column and an English
  caption column.
- `TableImageText`: a CSV or TSV with an image path (relative to the file), a caption and optionally
  a language and an English caption column.
- `LineParallelText`: parallel text as line-aligned files (Moses / OPUS: `corpus.en` + `corpus.de`) or
  one two-column TSV; `LineText`: one sentence per line (monolingual text).

Bad samples
-----------
A sample whose image does not decode, whose caption is empty, or whose caption is in another language
than the source declares (its language field says so, or its script does not fit: no Han characters in
a Chinese caption, no kana or Han in a Japanese one, mostly non-Latin letters in a Latin-script
language) is left out of the index, counted by reason, logged with its file and key (the first few as
warnings, all of them in the index folder's `bad_samples.jsonl`), and never crashes a run; the counts
go into the run's record (`BadSamples.as_metrics`). A missing file, a pattern that matches nothing, an
unreadable tar or Parquet file, or line-aligned files of different lengths are errors naming the file.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import logging
import os
import re
import tarfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import ConfigError, DataFormatError, MissingDataError

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
LANGUAGE_FIELDS = ("language", "LANGUAGE", "lang")
SHOWN_BAD = 5  # bad samples logged one by one per source; the rest are counted (all are in bad_samples.jsonl)
VALIDATE = ("decode", "header", "none")


# ------------------------------------------------------------------------------------------------------
# Shared pieces


def expand_files(pattern: str | Sequence[str], what: str) -> list[Path]:
    """Files named by a brace pattern (`/data/cc3m/{00000..00331}.tar`, as webdataset), a glob, or a list
    of either; every brace-expanded name must exist, and a glob must match something."""
    from braceexpand import braceexpand

    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    if not patterns:
        raise ConfigError(f"{what}: no files given")
    files: list[Path] = []
    missing: list[str] = []
    for item in patterns:
        for name in braceexpand(os.path.expanduser(str(item))):
            if glob.has_magic(name):
                matched = sorted(glob.glob(name))
                if not matched:
                    raise MissingDataError(f"{what}: the pattern {name!r} matches no file")
                files += [Path(m) for m in matched]
            elif not Path(name).is_file():
                missing.append(name)
            else:
                files.append(Path(name))
    if missing:
        shown = ", ".join(missing[:SHOWN_BAD]) + (", ..." if len(missing) > SHOWN_BAD else "")
        raise MissingDataError(f"{what}: {len(missing)} of {len(files) + len(missing)} files not found: {shown}")
    return files


def file_stat(path: Path) -> list:
    """What identifies a file's content cheaply: its absolute path, size and modification time."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def normalise_language(value: Any) -> str | None:
    """'de', 'DE', 'de-DE', 'zh_Hans' -> 'de', 'zh' (ISO 639-1 codes as the study uses); None if absent."""
    if not isinstance(value, str) or not value.strip():
        return None
    return re.split(r"[-_]", value.strip())[0].lower()


_LATIN_SCRIPT = {"en", "de", "fr", "cs", "es", "it", "pl", "tr", "nl", "pt", "sv", "da", "fi", "ro", "hu", "hr",
                 "id", "vi", "sw", "no"}
_CYRILLIC = {"ru", "uk", "bg", "sr"}


def script_mismatch(text: str, language: str) -> str | None:
    """Why `text` cannot be in `language` judged by its script, or None (no check for other languages)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    han = sum("CJK UNIFIED" in unicodedata.name(c, "") for c in letters)
    kana = sum(unicodedata.name(c, "").startswith(("HIRAGANA", "KATAKANA")) for c in letters)
    if language == "zh" and not han:
        return "no Han characters in a Chinese caption"
    if language == "ja" and not (han or kana):
        return "no kana or Han characters in a Japanese caption"
    if language in _LATIN_SCRIPT or language in _CYRILLIC:
        want = "LATIN" if language in _LATIN_SCRIPT else "CYRILLIC"
        share = sum(unicodedata.name(c, "").startswith(want) for c in letters) / len(letters)
        if share < 0.5:
            return f"mostly non-{want.title()} letters in a {language} caption"
    return None


@dataclass
class BadSamples:
    """Samples left out of a source, by reason, with where each was (file and key or line)."""

    source: str
    counts: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)

    def add(self, where: str, key: str, reason: str) -> None:
        self.counts[reason] += 1
        self.examples.append({"file": where, "key": key, "reason": reason})
        if len(self.examples) <= SHOWN_BAD:
            log.warning("%s: skipping %s in %s: %s", self.source, key, where, reason)

    def merge(self, other: "BadSamples") -> None:
        for example in other.examples:
            self.add(example["file"], example["key"], example["reason"])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_metrics(self) -> dict[str, float]:
        return {"bad_samples": float(self.total)} | {
            f"bad_samples/{re.sub(r'[^a-z0-9]+', '_', reason.lower()).strip('_')}": float(n)
            for reason, n in sorted(self.counts.items())}

    def write(self, path: Path) -> None:
        if not self.examples:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as out:
            for example in self.examples:
                out.write(json.dumps({"source": self.source, **example}, ensure_ascii=False) + "\n")
        if self.total > SHOWN_BAD:
            log.warning("%s: %d bad samples skipped in all (%s); every one is listed in %s", self.source, self.total,
                        ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common()), path)


def load_image(data: bytes | str | Path, size: int | None, where: str) -> torch.Tensor:
    """An image as float (3, H, W) in [0, 1]: RGB, its shorter side resized to `size` (bilinear, as diffusers'
    train_text_to_image) and centre-cropped to a square, or as stored when `size` is None or it already is
    `size` x `size` (so lossless PNGs round-trip exactly)."""
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        image = image.convert("RGB")
    except Exception as err:  # PIL raises several types for a damaged or foreign file
        raise DataFormatError(where, f"the image does not decode ({type(err).__name__}: {err})") from None
    if size is not None and image.size != (size, size):
        width, height = image.size
        scale = size / min(width, height)
        image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BILINEAR)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


def image_problem(data: bytes | str | Path, validate: str) -> str | None:
    """Why an image is unusable, or None: 'decode' decodes it fully, 'header' only parses it (PIL verify)."""
    if validate == "none":
        return None
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            if validate == "decode":
                image.convert("RGB").load()
            else:
                image.verify()
    except Exception as err:
        return f"undecodable image ({type(err).__name__})"
    return None


def caption_problem(text: Any, language: str | None, declared: str | None = None) -> str | None:
    """Why a caption is unusable for a source of `language`, or None."""
    if not isinstance(text, str) or not text.strip():
        return "empty caption"
    if language and declared and declared != language:
        return f"language field says {declared!r}, the source is {language!r}"
    return script_mismatch(text, language) if language else None


def _validated(validate: str) -> str:
    if validate not in VALIDATE:
        raise ConfigError(f"validate_images must be one of {', '.join(VALIDATE)}, got {validate!r}")
    return validate


class IndexedSource(Dataset):
    """Base of the image-text readers: an index of valid samples built once per file (cached in
    `index_dir`, keyed by the file's path, size, modification time and the reader's settings), a sample
    reader, and the descriptor that keys the feature cache."""

    kind = "source"

    def __init__(self, files: Sequence[Path], language: str | None, *, index_dir: str | Path | None,
                 image_size: int | None, settings: dict[str, Any], name: str):
        self.files, self.language, self.image_size = list(files), language, image_size
        self._numbers = {path: number for number, path in enumerate(self.files)}  # a file's place, in O(1)
        self.settings, self.name = settings, name
        self.index_dir = Path(index_dir) if index_dir else None
        self.bad = BadSamples(name)
        self.entries: list[tuple[int, Any]] = []  # (file number, what locates the sample in it)
        for number, path in enumerate(self.files):
            entries, bad = self._indexed(path)
            self.entries += [(number, entry) for entry in entries]
            self.bad.merge(bad)
        if self.index_dir is not None:
            self.bad.write(self.index_dir / "bad_samples.jsonl")
        if not self.entries:
            raise DataFormatError(self.files[0] if self.files else name, f"{name}: no usable sample "
                                  f"({self.bad.total} bad: {dict(self.bad.counts)})")
        log.info("%s: %d samples from %d file(s), %d skipped", name, len(self.entries), len(self.files), self.bad.total)

    def _indexed(self, path: Path) -> tuple[list, BadSamples]:
        key = {"format": INDEX_FORMAT, "kind": self.kind, "file": file_stat(path), "settings": self.settings,
               "language": self.language}
        cached = None
        if self.index_dir is not None:
            digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
            cached = self.index_dir / f"{self.kind}-{path.stem}-{digest}.json"
            if cached.exists():
                try:
                    data = json.loads(cached.read_text())
                    bad = BadSamples(self.name)
                    for example in data["bad"]:
                        bad.counts[example["reason"]] += 1
                        bad.examples.append(example)
                    return data["entries"], bad
                except (OSError, ValueError, KeyError):
                    log.warning("index %s is unreadable; rebuilding it", cached)
        bad = BadSamples(self.name)
        entries = self.scan(path, bad)
        if cached is not None:
            from ..results import atomic_write_bytes

            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cached, json.dumps({"key": key, "entries": entries, "bad": bad.examples}).encode())
        return entries, bad

    def scan(self, path: Path, bad: BadSamples) -> list:
        """The valid samples of one file (recording the bad ones in `bad`)."""
        raise NotImplementedError

    def read(self, path: Path, entry: Any) -> dict[str, Any]:
        """The raw fields of one sample: `image` (bytes or a path), `caption`, `caption_en` (or None)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"{self.name} has {len(self.entries)} samples, asked for {index}")
        number, entry = self.entries[index]
        path = self.files[number]
        fields = self.read(path, entry)
        sample = {"pixel_values": load_image(fields["image"], self.image_size, f"{path} ({self._where(entry)})"),
                  "caption": fields["caption"], "language": self.language or ""}
        english = fields.get("caption_en")
        sample["caption_en"] = english or ""
        sample["has_english"] = torch.tensor(bool(english))
        return sample

    def _where(self, entry: Any) -> str:
        return f"sample {entry}"

    def descriptor(self) -> dict[str, Any]:
        return {"kind": self.kind, "files": [file_stat(p) for p in self.files], "language": self.language,
                "image_size": self.image_size, "settings": self.settings, "size": len(self)}


# ------------------------------------------------------------------------------------------------------
# webdataset shards


def _text(data: bytes) -> str:
    return data.decode("utf-8").strip()


class WebDatasetImageText(IndexedSource):
    """img2dataset / webdataset tar shards (see the module docstring)."""

    kind = "webdataset"

    def __init__(self, shards: str | Sequence[str], language: str | None, *, index_dir: str | Path | None = None,
                 image_size: int | None = None, validate_images: str = "decode", caption_field: str = "caption",
                 english_caption: bool = False, name: str = ""):
        files = expand_files(shards, name or "webdataset shards")
        self.caption_field, self.validate, self.english_caption = caption_field, _validated(validate_images), english_caption
        self._open: dict[int, Any] = {}
        super().__init__(files, language, index_dir=index_dir, image_size=image_size, name=name or f"webdataset {shards}",
                         settings={"caption_field": caption_field, "validate_images": self.validate,
                                   "english_caption": english_caption})

    def scan(self, path: Path, bad: BadSamples) -> list:
        from webdataset.tariterators import base_plus_ext

        samples: dict[str, dict[str, list[int]]] = {}
        order: list[str] = []
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    if not member.isfile() or re.search(r"__[^/]*__($|/)", member.name):
                        continue
                    key, ext = base_plus_ext(member.name)
                    if key is None:
                        continue
                    if key not in samples:
                        samples[key] = {}
                        order.append(key)
                    samples[key][ext.lower()] = [member.offset_data, member.size]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataFormatError(path, f"not a readable tar shard ({err})") from None
        entries = []
        with open(path, "rb") as handle:
            for key in order:
                members = samples[key]
                problem = self._problem(handle, key, members)
                if problem:
                    bad.add(str(path), key, problem)
                else:
                    entries.append([key, members])
        return entries

    @staticmethod
    def _member(handle, members: dict, ext: str) -> bytes:
        # A positional read: DataLoader workers forked from a process that had the shard open share its
        # file offset, so seek-then-read in two workers at once would read each other's bytes.
        offset, size = members[ext]
        return os.pread(handle.fileno(), size, offset)

    def _fields(self, handle, members: dict) -> dict[str, Any]:
        meta = json.loads(self._member(handle, members, "json").decode("utf-8")) if "json" in members else {}
        if not isinstance(meta, dict):
            raise ValueError("its .json is not an object")
        captions = meta.get("captions") if isinstance(meta.get("captions"), dict) else {}
        if self.language and self.language in captions:
            caption = captions[self.language]
        elif "txt" in members:
            caption = _text(self._member(handle, members, "txt"))
        else:
            caption = meta.get(self.caption_field)
        english = (captions.get("en") or meta.get("caption_en")) if self.english_caption else None
        declared = next((normalise_language(meta[k]) for k in LANGUAGE_FIELDS if k in meta), None)
        image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)
        return {"caption": caption, "caption_en": english, "declared": declared, "image_ext": image_ext}

    def _problem(self, handle, key: str, members: dict) -> str | None:
        try:
            fields = self._fields(handle, members)
        except (ValueError, UnicodeDecodeError) as err:
            return f"unreadable caption or metadata ({type(err).__name__})"
        if fields["image_ext"] is None:
            return "no image (.jpg, .jpeg, .png or .webp)"
        problem = caption_problem(fields["caption"], self.language, fields["declared"])
        if problem:
            return problem
        return image_problem(self._member(handle, members, fields["image_ext"]), self.validate)

    def read(self, path: Path, entry: Any) -> dict[str, Any]:
        key, members = entry
        number = self._numbers[path]
        handle = self._open.get(number)
        if handle is None:  # one open handle per shard, read positionally (see `_member`)
            handle = self._open[number] = open(path, "rb")
        fields = self._fields(handle, members)
        return {"image": self._member(handle, members, fields["image_ext"]), "caption": fields["caption"],
                "caption_en": fields["caption_en"]}

    def _where(self, entry: Any) -> str:
        return f"key {entry[0]}"

    def __getstate__(self):  # open files do not travel to DataLoader workers
        state = dict(self.__dict__)
        state["_open"] = {}
        return state


# ------------------------------------------------------------------------------------------------------
# Parquet / Arrow


class ParquetImageText(IndexedSource):
    """Parquet files, or a `datasets.save_to_disk` folder (see the module docstring)."""

    kind = "parquet"

    def __init__(self, files: str | Sequence[str], language: str | None, *, index_dir: str | Path | None = None,
                 image_size: int | None = None, validate_images: str = "decode", image_column: str = "image",
                 image_path_column: str = "", caption_column: str = "caption", language_column: str = "",
                 english_column: str = "", name: str = ""):
        name = name or f"parquet {files}"
        single = [files] if isinstance(files, str) else list(files)
        self.hf_folder = len(single) == 1 and Path(os.path.expanduser(single[0])).is_dir()
        paths = [Path(os.path.expanduser(single[0]))] if self.hf_folder else expand_files(files, name)
        if self.hf_folder and not (paths[0] / "dataset_info.json").exists() and not (paths[0] / "state.json").exists():
            raise DataFormatError(paths[0], "a folder, but not one `datasets.save_to_disk` wrote (no state.json)")
        self.columns = {"image": image_column, "image_path": image_path_column, "caption": caption_column,
                        "language": language_column, "english": english_column}
        self.validate = _validated(validate_images)
        self._tables: dict[int, Any] = {}
        self._group: tuple[int, int, Any] | None = None  # (file, row group, its rows): the last row group read
        self._pid = os.getpid()
        super().__init__(paths, language, index_dir=index_dir, image_size=image_size, name=name,
                         settings={**self.columns, "validate_images": self.validate})

    def descriptor(self) -> dict[str, Any]:
        described = super().descriptor()
        if self.hf_folder:  # the folder's arrow files are its content
            described["files"] = [file_stat(p) for p in sorted(self.files[0].glob("*.arrow"))]
        return described

    def _rows(self, path: Path) -> Iterable[tuple[int, dict]]:
        """(row number, row) of one file, reading row groups in order (a sequential pass is cheap)."""
        if self.hf_folder:
            dataset = self._hf(path)
            for number in range(len(dataset)):
                yield number, dataset[number]
            return
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as err:  # pyarrow's own error types
            raise DataFormatError(path, f"not a readable Parquet file ({err})") from None
        number = 0
        for group in range(parquet.num_row_groups):
            for row in parquet.read_row_group(group).to_pylist():
                yield number, row
                number += 1

    def _hf(self, path: Path):
        if 0 not in self._tables:
            import datasets

            try:
                dataset = datasets.load_from_disk(str(path))
            except Exception as err:
                raise DataFormatError(path, f"not a readable `datasets` folder ({err})") from None
            if self.columns["image"] in dataset.column_names:  # bytes as stored, decoded here like the others
                dataset = dataset.cast_column(self.columns["image"], datasets.Image(decode=False)) \
                    if isinstance(dataset.features.get(self.columns["image"]), datasets.Image) else dataset
            self._tables[0] = dataset
        return self._tables[0]

    def _image(self, path: Path, row: dict) -> bytes | Path | None:
        if self.columns["image_path"]:
            value = row.get(self.columns["image_path"])
            return (path.parent / value) if isinstance(value, str) and value else None
        value = row.get(self.columns["image"])
        if isinstance(value, dict):  # the datasets Image struct
            value = value.get("bytes") or (value.get("path") and Path(value["path"]))
        return value if isinstance(value, (bytes, Path)) else None

    def _check_columns(self, path: Path, row: dict) -> None:
        wanted = [self.columns["caption"], self.columns["image_path"] or self.columns["image"]]
        wanted += [c for c in (self.columns["language"], self.columns["english"]) if c]
        missing = [c for c in wanted if c not in row]
        if missing:
            raise DataFormatError(path, f"no column(s) {missing}; it has {sorted(row)}")

    def scan(self, path: Path, bad: BadSamples) -> list:
        entries = []
        for number, row in self._rows(path):
            if number == 0:
                self._check_columns(path, row)
            declared = normalise_language(row.get(self.columns["language"])) if self.columns["language"] else None
            problem = caption_problem(row.get(self.columns["caption"]), self.language, declared)
            image = self._image(path, row)
            if not problem:
                problem = "no image" if image is None else image_problem(image, self.validate)
            if problem:
                bad.add(str(path), f"row {number}", problem)
            else:
                entries.append(number)
        return entries

    def _row(self, path: Path, number: int) -> dict:
        if self._pid != os.getpid():  # a forked DataLoader worker: open the files again, unshared
            self._tables, self._group, self._pid = {}, None, os.getpid()
        if self.hf_folder:
            return self._hf(path)[number]
        import pyarrow.parquet as pq

        index = self._numbers[path]
        if index not in self._tables:
            parquet = pq.ParquetFile(path)
            starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
            self._tables[index] = (parquet, starts)
        parquet, starts = self._tables[index]
        group = int(np.searchsorted(starts, number, side="right") - 1)
        if self._group is None or self._group[:2] != (index, group):
            self._group = (index, group, parquet.read_row_group(group).to_pylist())
        return self._group[2][number - int(starts[group])]

    def read(self, path: Path, entry: Any) -> dict[str, Any]:
        row = self._row(path, int(entry))
        return {"image": self._image(path, row), "caption": row[self.columns["caption"]],
                "caption_en": row.get(self.columns["english"]) if self.columns["english"] else None}

    def _where(self, entry: Any) -> str:
        return f"row {entry}"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tables"], state["_group"] = {}, None
        return state


# ------------------------------------------------------------------------------------------------------
# CSV / TSV of image paths


class TableImageText(IndexedSource):
    """A CSV or TSV (tab-separated when the name ends in .tsv) with a header row: image path (relative to
    the file's folder), caption, and optionally language and English caption columns."""

    kind = "table"

    def __init__(self, file: str, language: str | None, *, index_dir: str | Path | None = None,
                 image_size: int | None = None, validate_images: str = "decode", image_column: str = "image",
                 caption_column: str = "caption", language_column: str = "", english_column: str = "",
                 name: str = ""):
        paths = expand_files(file, name or f"table {file}")
        self.columns = {"image": image_column, "caption": caption_column, "language": language_column,
                        "english": english_column}
        self.validate = _validated(validate_images)
        self._rows_cache: dict[int, list[dict]] = {}
        super().__init__(paths, language, index_dir=index_dir, image_size=image_size, name=name or f"table {file}",
                         settings={**self.columns, "validate_images": self.validate})

    def _table(self, path: Path) -> list[dict]:
        index = self._numbers[path]
        if index not in self._rows_cache:
            try:
                with open(path, newline="", encoding="utf-8-sig") as handle:
                    reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
                    rows = list(reader)
                    header = reader.fieldnames or []
            except (UnicodeDecodeError, csv.Error) as err:
                raise DataFormatError(path, f"not a readable CSV/TSV ({err})") from None
            wanted = [c for c in self.columns.values() if c]
            missing = [c for c in wanted if c not in header]
            if missing:
                raise DataFormatError(path, f"no column(s) {missing} in the header {header}")
            self._rows_cache[index] = rows
        return self._rows_cache[index]

    def scan(self, path: Path, bad: BadSamples) -> list:
        entries = []
        for number, row in enumerate(self._table(path)):
            line = number + 2  # the header is line 1
            declared = normalise_language(row.get(self.columns["language"])) if self.columns["language"] else None
            problem = caption_problem(row.get(self.columns["caption"]), self.language, declared)
            image = path.parent / (row.get(self.columns["image"]) or "")
            if not problem:
                problem = image_problem(image, self.validate) if image.is_file() else f"image file {image.name!r} not found"
            if problem:
                bad.add(str(path), f"line {line}", problem)
            else:
                entries.append(number)
        return entries

    def read(self, path: Path, entry: Any) -> dict[str, Any]:
        row = self._table(path)[int(entry)]
        return {"image": path.parent / row[self.columns["image"]], "caption": row[self.columns["caption"]],
                "caption_en": row.get(self.columns["english"]) if self.columns["english"] else None}

    def _where(self, entry: Any) -> str:
        return f"line {int(entry) + 2}"


# ------------------------------------------------------------------------------------------------------
# Text


def _line_offsets(path: Path) -> tuple[np.memmap | bytes, np.ndarray]:
    """The file's bytes (memory-mapped) and the start offsets of its lines, plus one past the end."""
    size = path.stat().st_size
    data = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    starts = np.concatenate([[0], ends + 1])
    if len(starts) and starts[-1] == size:  # a final newline ends the last line rather than starting one
        starts = starts[:-1]
    return data, np.concatenate([starts, [size]]).astype(np.int64)


def _line(data, offsets: np.ndarray, number: int, path: Path) -> str:
    raw = bytes(data[offsets[number]:offsets[number + 1]]).rstrip(b"\n").rstrip(b"\r")
    if number == 0:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataFormatError(path, "not valid UTF-8", line=number + 1) from None


class _LineFiles:
    """Line-aligned text files read by line number (offsets indexed once with numpy, memory-mapped)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)
        self._data: list | None = None
        lengths = [len(_line_offsets(p)[1]) - 1 for p in self.paths]
        if len(set(lengths)) > 1:
            detail = ", ".join(f"{p} has {n}" for p, n in zip(self.paths, lengths))
            raise DataFormatError(self.paths[0], f"line-aligned files of different lengths: {detail} lines; line i "
                                  "of each must translate line i of the others")
        self.lines = lengths[0]

    def line(self, file: int, number: int) -> str:
        if self._data is None:  # opened lazily in each process
            self._data = [_line_offsets(p) for p in self.paths]
        data, offsets = self._data[file]
        return _line(data, offsets, number, self.paths[file])

    def __getstate__(self):
        return {"paths": self.paths, "_data": None, "lines": self.lines}


class LineParallelText(Dataset):
    """Parallel text en-X: Moses / OPUS line-aligned files (`english` + `target`) or one two-column TSV
    (`tsv`, columns in `columns` order, e.g. ['en', 'de']). A pair with an empty side is skipped and counted.
    Samples: {'en', 'target', 'language'}."""

    def __init__(self, language: str, *, english: str = "", target: str = "", tsv: str = "",
                 columns: Sequence[str] = ("en", "target"), name: str = ""):
        self.language, self.name = language, name or f"parallel text en-{language}"
        self.bad = BadSamples(self.name)
        if tsv:
            self.tsv = expand_files(tsv, self.name)
            if list(columns)[0] not in ("en", "target") or len(columns) != 2:
                raise ConfigError(f"{self.name}: columns names the TSV's two columns, e.g. ['en', '{language}']")
            self.en_column = 0 if columns[0] == "en" else 1
            self.files = _LineFiles(self.tsv)
            rows = self._tsv_rows()
        else:
            if not (english and target):
                raise ConfigError(f"{self.name}: give `english` and `target` (line-aligned files) or `tsv`")
            self.tsv = None
            paths = expand_files(english, self.name) + expand_files(target, self.name)
            if len(paths) != 2:
                raise ConfigError(f"{self.name}: `english` and `target` must each name one file")
            self.files = _LineFiles(paths)
            rows = range(self.files.lines)
        self.rows = np.asarray([n for n in rows if self._check(n)], dtype=np.int64)
        if not len(self.rows):
            raise DataFormatError(self.files.paths[0], f"{self.name}: no usable pair ({dict(self.bad.counts)})")

    def _tsv_rows(self) -> list[int]:
        rows = []
        for number in range(self.files.lines):
            if self.files.line(0, number).count("\t") != 1:
                raise DataFormatError(self.files.paths[0], "expected two tab-separated columns", line=number + 1)
            rows.append(number)
        return rows

    def _pair(self, number: int) -> tuple[str, str]:
        if self.tsv is not None:
            a, b = self.files.line(0, number).split("\t")
            return (a, b) if self.en_column == 0 else (b, a)
        return self.files.line(0, number), self.files.line(1, number)

    def _check(self, number: int) -> bool:
        english, target = self._pair(number)
        problem = ("empty English side" if not english.strip() else "empty target side" if not target.strip()
                   else script_mismatch(target, self.language))
        if problem:
            self.bad.add(str(self.files.paths[-1]), f"line {number + 1}", problem)
        return problem is None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, str]:
        english, target = self._pair(int(self.rows[index]))
        return {"en": english.strip(), "target": target.strip(), "language": self.language}

    def descriptor(self) -> dict[str, Any]:
        return {"kind": "parallel_text", "files": [file_stat(p) for p in self.files.paths], "language": self.language,
                "tsv": self.tsv is not None, "size": len(self)}


class LineText(Dataset):
    """Monolingual text, one sentence per line; empty lines are skipped and counted. Samples: {'text', 'language'}."""

    def __init__(self, file: str, language: str, *, name: str = ""):
        self.language, self.name = language, name or f"text {file}"
        self.bad = BadSamples(self.name)
        self.files = _LineFiles(expand_files(file, self.name)[:1])
        keep = []
        for number in range(self.files.lines):
            text = self.files.line(0, number)
            problem = "empty line" if not text.strip() else script_mismatch(text, language)
            if problem:
                self.bad.add(str(self.files.paths[0]), f"line {number + 1}", problem)
            else:
                keep.append(number)
        self.rows = np.asarray(keep, dtype=np.int64)
        if not len(self.rows):
            raise DataFormatError(self.files.paths[0], f"{self.name}: no usable line")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, str]:
        return {"text": self.files.line(0, int(self.rows[index])).strip(), "language": self.language}

    def descriptor(self) -> dict[str, Any]:
        return {"kind": "text", "files": [file_stat(p) for p in self.files.paths], "language": self.language,
                "size": len(self)}
