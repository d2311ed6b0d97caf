"""Translate-then-generate: a machine translation model turns the prompt into English for the untouched
English pipeline (AltDiffusion's baseline used NLLB-200-distilled-600M).

- `translate`: on `toy`, a small Marian encoder-decoder (the real `MarianMTModel` class, separate source
  and target vocabularies: the multilingual tokenizer in, the English tokenizer out) trained on the
  world's parallel text of every target language, greedy decoding. It makes real MT errors, and it
  cannot translate culture concepts, which English has no word for. On `sd15`, NLLB-200-distilled-600M
  is loaded by id (`nllb_model_id`) and needs its weights in the Hugging Face cache.
- `translate_oracle`: the world's own grammars translate exactly (a lookup over every caption a target
  grammar can write); an upper bound, labelled as such, never a method. Captions it cannot map (culture
  concepts, text from outside the world) pass through unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from transformers import MarianConfig, MarianMTModel

from ..cache import ConcatDataset
from ..config import option
from ..errors import UnknownLanguageError
from ..registry import METHODS
from ..train import TrainConfig
from ..world import get_grammar
from ..world.reading import normalise
from ..world.scene import RELATIONS_BY_AXIS, SHAPES, pair_scenes, single_scenes
from ._base import Conditioning, PaperCount, SingleStageMethod, StageData, UntrainableMethod, sd15_system, trim_padding

log = logging.getLogger(__name__)

NLLB_ID = "facebook/nllb-200-distilled-600M"
# ISO 639-1 -> NLLB-200's FLORES-200 codes, for the languages of the world and of the real benchmarks.
NLLB_CODES = {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn", "cs": "ces_Latn", "zh": "zho_Hans",
              "ja": "jpn_Jpan", "es": "spa_Latn", "it": "ita_Latn", "ko": "kor_Hang", "pl": "pol_Latn",
              "ru": "rus_Cyrl", "tr": "tur_Latn"}


@dataclass(frozen=True)
class TranslateConfig:
    """Translate-then-generate: the toy translation model's size and budget."""

    width: int = option(128, "Model width of the toy Marian translator.")
    layers: int = option(2, "Encoder and decoder layers of the toy translator.")
    items_per_language: int = option(8000, "Parallel pairs per target language to train on; 0: all the corpus has (sd15).", smoke=32)
    max_new_tokens: int = option(24, "Longest English output (the English tokenizer's length).")
    nllb_model_id: str = option(NLLB_ID, "Translator on presets with real weights (loaded by id, offline).")
    train: TrainConfig = option(
        lambda: TrainConfig(steps=1000, batch_size=128, optimizer="adamw", lr=1e-3, weight_decay=0.01,
                            schedule="cosine", warmup_steps=100),
        "Translator training (toy: 1,000 steps of 128).")


@METHODS.register("translate")
class Translate(SingleStageMethod):
    title = "Translate, then generate"
    summary = "translate-then-generate with a trained translator"
    prose = ("A machine-translation model turns the prompt into English for the untouched English "
             "pipeline: NLLB-200-distilled-600M on `sd15` (AltDiffusion's baseline), a small Marian model "
             "trained on the world's parallel text on `toy`. Only the toy translator trains (cross-entropy "
             "on parallel text); the diffusion side is never touched.")
    diagram = ("prompt (X) -> translator -> English text -> English CLIP text (frozen) -> UNet (frozen) -> "
               "image")
    order = 3
    config_class = TranslateConfig
    stage_name = "translation"
    label = "toy Marian translator trained on world parallel text"

    @classmethod
    def paper_counts(cls, sd15):
        return [PaperCount("translate", 0, sd15_system(sd15), 0, "NLLB-600M used as released: nothing trains")]

    def build(self) -> None:
        bb, c = self.backbone, self.config
        self.nllb_tokenizer = None
        if bb.preset != "toy":  # a released translator, used as it is: nothing trains
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            from ..backbone.sd15 import _load

            self.translator = _load("NLLB translator", c.nllb_model_id, AutoModelForSeq2SeqLM.from_pretrained,
                                    c.nllb_model_id, local_files_only=True)
            self.nllb_tokenizer = _load("NLLB tokenizer", c.nllb_model_id, AutoTokenizer.from_pretrained,
                                        c.nllb_model_id, local_files_only=True)
            return
        english = bb.tokenizer
        config = MarianConfig(
            vocab_size=len(bb.multilingual_tokenizer), decoder_vocab_size=len(english),
            share_encoder_decoder_embeddings=False, d_model=c.width, encoder_layers=c.layers,
            decoder_layers=c.layers, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=4 * c.width, decoder_ffn_dim=4 * c.width,
            max_position_embeddings=max(bb.multilingual_tokenizer.model_max_length, english.model_max_length),
            pad_token_id=english.pad_token_id, eos_token_id=english.eos_token_id,
            decoder_start_token_id=english.bos_token_id, forced_eos_token_id=english.eos_token_id,
        )
        self.translator = MarianMTModel(config)

    def modules(self) -> dict[str, nn.Module]:
        return {"translator": self.translator}

    @property
    def stages(self) -> tuple[str, ...]:
        return super().stages if self.nllb_tokenizer is None else ()

    def stage_data(self, stage: str, corpus) -> StageData:
        data = ConcatDataset([corpus.parallel_text(lang, self.config.items_per_language)
                              for lang in corpus.target_languages])
        return StageData(data, {"source": "multilingual_tokens:target", "english": "english_tokens:en"})

    def loss(self, batch, stage):
        english_ids, english_mask = trim_padding(batch["english.ids"], batch["english.mask"])
        labels = english_ids[:, 1:].clone()  # the decoder starts from <bos> itself
        labels[english_mask[:, 1:] == 0] = -100
        source_ids, source_mask = trim_padding(batch["source.ids"], batch["source.mask"])
        out = self.translator(input_ids=source_ids, attention_mask=source_mask, labels=labels)
        return {"loss": out.loss}

    @torch.no_grad()
    def translate(self, texts: list[str], lang: str) -> list[str]:
        """Translations into English (greedy on toy; NLLB's beam search with its own language codes on sd15)."""
        self.translator.eval()
        if self.nllb_tokenizer is not None:
            return self._translate_nllb(texts, lang)
        tokens = self.backbone.tokenize_multilingual(texts)
        self.translator.to(tokens["input_ids"].device)
        out = self.translator.generate(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                       max_new_tokens=self.config.max_new_tokens, num_beams=1, do_sample=False)
        return self.backbone.tokenizer.batch_decode(out, skip_special_tokens=True)

    def _translate_nllb(self, texts: list[str], lang: str) -> list[str]:
        if lang not in NLLB_CODES:
            raise UnknownLanguageError(lang, sorted(NLLB_CODES))
        tokenizer = self.nllb_tokenizer
        tokenizer.src_lang = NLLB_CODES[lang]
        tokens = tokenizer(texts, return_tensors="pt", padding=True).to(self.translator.device)
        out = self.translator.generate(**tokens, forced_bos_token_id=tokenizer.convert_tokens_to_ids("eng_Latn"),
                                       max_new_tokens=self.backbone.tokenizer.model_max_length, num_beams=4)
        return tokenizer.batch_decode(out, skip_special_tokens=True)

    def _encode(self, texts, lang):
        english = texts if lang == "en" else self.translate(texts, lang)
        english = ["" if not t else e for t, e in zip(texts, english)]  # the empty prompt stays empty
        return Conditioning(*self.backbone.encode_english(english))


@METHODS.register("translate_oracle")
class TranslateOracle(UntrainableMethod):
    title = "The ceiling: exact translation"
    summary = "upper bound: the world's exact translation, then the English pipeline"
    prose = ("The world's own grammars translate the prompt into English exactly, and the untouched "
             "English pipeline draws it. Not a method (no real system translates perfectly): it is the "
             "upper bound the English backbone allows, labelled as such in the results.")
    diagram = ("prompt (X) -> exact translation (lexicon) -> English CLIP text (frozen) -> UNet (frozen) "
               "-> image")
    order = 2
    label = "oracle upper bound: exact translation by the world's grammars"

    def build(self) -> None:
        self._tables: dict[str, dict[str, str]] = {}

    def table(self, lang: str) -> dict[str, str]:
        """Every caption `lang`'s grammar writes for the universal shapes, in its comparison form
        (`xlcore.world.reading.normalise`: case and spacing do not matter) -> the English caption."""
        if lang not in self._tables:
            source, english = get_grammar(lang), get_grammar("en")
            table: dict[str, str] = {}
            for scene in (*single_scenes(SHAPES), *pair_scenes(SHAPES)):
                for relation in (RELATIONS_BY_AXIS[scene.place] if scene.is_pair else (None,)):
                    for template in range(min(source.n_templates, english.n_templates)):
                        table.setdefault(normalise(source.describe(scene, relation, template)),
                                         english.describe(scene, relation, template))
            self._tables[lang] = table
        return self._tables[lang]

    def english_of(self, text: str, lang: str) -> str | None:
        """The exact English of `text`, or None where the world's grammar does not write it (a culture
        concept, which English has no word for, or text from outside the world)."""
        return text if lang == "en" else self.table(lang).get(normalise(text))

    def translate(self, texts: list[str], lang: str) -> list[str]:
        """Exact translations; a text without one passes through unchanged (the evaluation's culture
        prompts, which English cannot name): logged here, and the demo refuses such a prompt instead."""
        english = [self.english_of(t, lang) if t else t for t in texts]  # the empty prompt (guidance's) is English too
        missing = sum(e is None for e in english)
        if missing:
            log.info("oracle: %d of %d %s captions have no English counterpart; passed through", missing, len(texts), lang)
        return [t if e is None else e for t, e in zip(texts, english)]

    def _encode(self, texts, lang):
        english = texts if lang == "en" else self.translate(texts, lang)
        return Conditioning(*self.backbone.encode_english(english))
