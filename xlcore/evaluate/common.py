"""What every evaluator shares: the measurement record, the English reference system, row writing.

Evaluators return `Measurement`s (a language, a benchmark, the protocol choices the numbers depend on,
and the numbers); `write_measurements` turns them into tidy rows of the results table for one run.
Keeping the evaluators free of run bookkeeping lets notebooks call them directly and lets the study,
the sweep and the tests share one row format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from ..backbone.base import Backbone
from ..errors import UnknownLanguageError
from ..contract import Conditioning, Measurement, RunInfo
from ..results import ResultRow, ResultsStore


def reads_language(system, lang: str) -> bool:
    """Whether `system` (a method or the English backbone) reads prompts in `lang`."""
    try:
        system.check_language(lang)
        return True
    except UnknownLanguageError:
        return False


def write_measurements(measurements: Iterable[Measurement], run: RunInfo, store: ResultsStore | None = None
                       ) -> list[ResultRow]:
    """Rows for `measurements` under `run`; appended to `store` (atomically, in one write) when given."""
    measurements = list(measurements)
    maker = store if store is not None else ResultsStore("unwritten.csv")  # make_rows touches no file
    rows: list[ResultRow] = []
    for m in measurements:
        rows += maker.make_rows(
            run_id=run.run_id, config=run.config, seed=run.seed, method=run.method,
            stage=m.stage or run.stage, language=m.language, benchmark=m.benchmark, metrics=m.metrics,
            protocol=m.protocol, notes=run.notes)
    if store is not None:
        store.append(rows)
        for m in measurements:
            if m.per_prompt:
                store.save_per_prompt(run.run_id, m.language, m.benchmark, m.per_prompt)
    return rows


@dataclass
class EnglishBackbone:
    """The untouched English pipeline with the method interface the evaluators read (`encode`,
    `encode_images`, `unet`, `negative_prompt_embeds`): the reference every method is compared with
    (cross-lingual consistency) and the "Stable Diffusion (English)" row of the generation table."""

    backbone: Backbone
    name: str = "english-backbone"
    languages: Sequence[str] = field(default_factory=lambda: ("en",))

    @property
    def unet(self) -> torch.nn.Module:
        return self.backbone.unet

    def check_language(self, lang: str) -> str:
        if lang not in self.languages:
            raise UnknownLanguageError(lang, self.languages)
        return lang

    def encode(self, texts: Sequence[str], lang: str) -> Conditioning:
        self.check_language(lang)
        states, pooled = self.backbone.encode_english(list(texts))
        return Conditioning(states, pooled)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_images(pixel_values)

    def negative_prompt_embeds(self, batch_size: int, lang: str = "en") -> torch.Tensor:
        return self.backbone.encode_english([""])[0].expand(batch_size, -1, -1)
