"""The data contract: every training regime a method reads, per language, from the world or a real corpus.

A method's stage asks its corpus for a regime (`Method.stage_data(stage, corpus)`) and never knows which
corpus it got. The built-in world (`xlcore.world.World`) implements the contract, and so does
`RealCorpus`, built from a data file (`xlcore.data.datafile`) over the readers of `xlcore.data.sources`.

Regimes (each a map-style dataset with `__len__`, `__getitem__` and `descriptor()`; the keys its samples
carry):

| regime | call | sample keys |
| --- | --- | --- |
| English image-text | `english_image_text(size)` | `pixel_values`, `caption`, `language` |
| image-text in a target language | `language_image_text(lang, size)` | the same |
| image + target caption + English caption | `pivot_image_text(lang, size)` | the same, `caption_en` ('' where there is none), `has_english` |
| parallel text en-X | `parallel_text(lang, size)` | `en`, `target`, `language` |
| monolingual text | `monolingual_text(lang, size)` | `text`, `language` |

`size` asks for the first `size` samples of the regime (None or 0: all of them); a real source with
fewer samples gives all it has, with a warning. The first n, not a random n, so that the same request
gives the same samples from the world and from the world written to files (`xlcore export-world`):
shuffle a corpus's shard order once if its order is not random.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from torch.utils.data import Dataset

from ..errors import MissingDataError, UnknownLanguageError

log = logging.getLogger(__name__)

REGIMES = ("english_image_text", "language_image_text", "pivot_image_text", "parallel_text", "monolingual_text")


@runtime_checkable
class Corpus(Protocol):
    """What a training stage reads (see the module docstring)."""

    languages: tuple[str, ...]  # English first

    @property
    def target_languages(self) -> tuple[str, ...]: ...

    def check_language(self, lang: str, *, allow_english: bool = True) -> str: ...

    def english_image_text(self, size: int | None = None) -> Dataset: ...

    def language_image_text(self, lang: str, size: int | None = None) -> Dataset: ...

    def pivot_image_text(self, lang: str, size: int | None = None) -> Dataset: ...

    def parallel_text(self, lang: str, size: int | None = None) -> Dataset: ...

    def monolingual_text(self, lang: str, size: int | None = None) -> Dataset: ...


class CorpusLanguages:
    """The languages part of the contract, shared by the world and real corpora: `languages`, English first."""

    languages: tuple[str, ...]

    @property
    def target_languages(self) -> tuple[str, ...]:
        """The non-English languages."""
        return self.languages[1:]

    def check_language(self, lang: str, *, allow_english: bool = True) -> str:
        allowed = self.languages if allow_english else self.target_languages
        if lang not in allowed:
            raise UnknownLanguageError(lang, allowed)
        return lang


class Prefix(Dataset):
    """The first `size` samples of a dataset (with a descriptor, so it can key a feature cache)."""

    def __init__(self, dataset: Dataset, size: int):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.size:
            raise IndexError(f"{self.size} samples, asked for {index}")
        return self.dataset[index]

    def descriptor(self) -> dict:
        return {"kind": "prefix", "size": self.size, "of": self.dataset.descriptor()}

    @property
    def bad(self):
        return getattr(self.dataset, "bad", None)


class RealCorpus(CorpusLanguages):
    """Regimes from real files: `sources[regime][language]` builds the regime's dataset on first use (so a
    stage indexes only what it reads). `description` (the data file's path and content hash) keys the runs
    trained on it."""

    def __init__(self, sources: Mapping[str, Mapping[str, Callable[[], Dataset]]], languages: Sequence[str],
                 description: Mapping[str, Any], origin: str = "the data file", evaluation: Any = None):
        unknown = sorted(set(sources) - set(REGIMES))
        if unknown:
            raise ValueError(f"unknown regimes {unknown}; regimes: {', '.join(REGIMES)}")
        self.sources = {regime: dict(by_language) for regime, by_language in sources.items()}
        self.languages = tuple(languages)
        if not self.languages or self.languages[0] != "en":
            raise ValueError(f"the corpus's languages must start with 'en': {self.languages}")
        self.description, self.origin = dict(description), origin
        self.evaluation = evaluation  # the data file's evaluation section (`datafile.Evaluation`), or None
        self._built: dict[tuple[str, str], Dataset] = {}

    def descriptor(self) -> dict[str, Any]:
        return dict(self.description)

    def regime(self, regime: str, lang: str, size: int | None = None) -> Dataset:
        """Regime `regime` in `lang`, its first `size` samples (all for None or 0)."""
        if (regime, lang) not in self._built:
            build = self.sources.get(regime, {}).get(lang)
            if build is None:
                given = sorted(self.sources.get(regime, {}))
                entry = f"{regime}: {{format: ..., ...}}" if regime == "english_image_text" else \
                    f"{regime}: {{{lang}: {{format: ..., ...}}}}"
                raise MissingDataError(f"{self.origin} gives no {regime} for {lang!r} (it has {given or 'none'}); "
                                       f"add `{entry}` (the fields: xlcore/data/datafile.py)")
            self._built[(regime, lang)] = build()
        dataset = self._built[(regime, lang)]
        if not size or size >= len(dataset):
            if size and size > len(dataset):
                log.warning("%s %s: %d samples asked for, the source has %d; using all of them", regime, lang, size,
                            len(dataset))
            return dataset
        return Prefix(dataset, size)

    def bad_samples(self) -> dict[str, Any]:
        """(regime, language) -> the BadSamples of every source built so far."""
        return {f"{regime}/{lang}": data.bad for (regime, lang), data in self._built.items() if getattr(data, "bad", None)}

    def english_image_text(self, size: int | None = None) -> Dataset:
        return self.regime("english_image_text", "en", size)

    def language_image_text(self, lang: str, size: int | None = None) -> Dataset:
        return self.regime("language_image_text", self.check_language(lang, allow_english=False), size)

    def pivot_image_text(self, lang: str, size: int | None = None) -> Dataset:
        return self.regime("pivot_image_text", self.check_language(lang, allow_english=False), size)

    def parallel_text(self, lang: str, size: int | None = None) -> Dataset:
        return self.regime("parallel_text", self.check_language(lang, allow_english=False), size)

    def monolingual_text(self, lang: str, size: int | None = None) -> Dataset:
        return self.regime("monolingual_text", self.check_language(lang), size)


def bad_sample_metrics(corpus: Any) -> dict[str, dict[str, float]]:
    """'regime/lang' -> bad-sample counts of a corpus's built sources (empty for the world)."""
    report = getattr(corpus, "bad_samples", None)
    return {key: bad.as_metrics() for key, bad in report().items()} if report else {}
