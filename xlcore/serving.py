"""Trained systems, loaded once, drawing one prompt side by side (the demo's back end; the study's
side-by-side figure uses it too).

`Catalogue(output_dir, preset, seed)` finds every registered method's trained run of one seed:

- in the study's output folder (`<output_dir>/<preset>/<method>/<all | language>/<seed>/train/method/`),
- else in the extra folders given as `shipped` (the demo ships half-precision copies of the toy study's
  seed-0 runs, `demo/weights/`, so that a fresh clone can draw with every method),

loads each on first use (once: the models stay loaded) and keeps, for a method that cannot be loaded,
the reason and the command that trains it. Untrainable baselines (the untrained multilingual encoder,
the translation oracle) need no run. The untouched English pipeline is the reference column: it draws
the English version of the prompt (the world's exact translation where there is one).

`Catalogue.draw(prompt, language, ...)` returns one `Drawn` per system: the image, the seconds it took,
the trainable parameters, or the message that says why there is no image. Nothing here raises for a
single system's failure: one broken checkpoint must not take the other columns down.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from .cell import ENGLISH_BACKBONE, Cell, train_dir
from .config import LANGUAGES
from .errors import UnknownLanguageError, XlcoreError
from .prompts import Prompt, Reading, check_prompt, read_prompt

log = logging.getLogger(__name__)



@dataclass
class Entry:
    """One system of the catalogue: a method (all languages, or one model per language) or the reference."""

    name: str
    label: str
    per_language: bool
    folders: dict[str, Path]  # scope ('all' or a language) -> folder of the trained run
    shipped: dict[str, bool]  # scope -> whether the folder is a shipped copy, not a local run
    trainable: bool
    loaded: dict[str, object] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Drawn:
    """What one system drew for a prompt (or why it did not)."""

    name: str
    label: str
    image: torch.Tensor | None  # (3, H, W) in [0, 1]
    seconds: float
    trainable_parameters: int
    message: str = ""  # why there is no image, or what to know about it

    @property
    def ok(self) -> bool:
        return self.image is not None

    def caption(self) -> str:
        if not self.ok:
            return f"{self.name}: {self.message}"
        parts = [self.name, f"{self.seconds:.2f} s", f"{self.trainable_parameters:,} trainable parameters"]
        return " · ".join(parts) + (f" · {self.message}" if self.message else "")


def train_command(method: str, scope: str, seed: int, preset: str = "toy") -> str:
    language = "de" if scope == "all" else scope  # a shared run trains in whichever cell comes first
    return (f"python -m xlcore sweep --preset {preset} --methods {method} --languages {language} --seeds {seed} "
            "--retrain")


class Catalogue:
    """Every trained system of one preset and seed, loaded on first use and kept loaded."""

    def __init__(self, output_dir: str | Path = "papermill_runs", preset: str = "toy", seed: int = 0,
                 shipped: Sequence[str | Path] = (), languages: Sequence[str] = LANGUAGES, steps: int = 25,
                 guidance_scale: float = 4.0):
        from .backbone import load_backbone
        from .config import load_preset
        from .methods._base import describe
        from .registry import METHODS
        from .world import World

        self.output_dir, self.preset, self.seed = Path(output_dir), preset, seed
        self.shipped = [Path(p) for p in shipped]
        self.study = load_preset(preset)
        self.world = World(self.study.world) if preset == "toy" else None
        self.languages = tuple(languages)
        self.backbone = load_backbone(preset)
        self.defaults = {"steps": steps, "guidance_scale": guidance_scale}
        self._lock = threading.Lock()  # one drawing at a time: the models are shared and CPU-bound
        self.entries: dict[str, Entry] = {}
        from .report import ordered_methods

        for name in ordered_methods(METHODS.names()):
            info = describe(name)
            scopes = [lang for lang in self.languages if lang != "en"] if info.per_language else ["all"]
            folders, shipped_flags = {}, {}
            for scope in scopes:
                found = self._find(name, scope, info.per_language)
                if found is not None:
                    folders[scope], shipped_flags[scope] = found
            self.entries[name] = Entry(name, info.summary or name, info.per_language, folders, shipped_flags,
                                       info.trains)

    def _find(self, method: str, scope: str, per_language: bool) -> tuple[Path, bool] | None:
        local = train_dir(self.output_dir, Cell(self.preset, method, scope, self.seed), per_language) / "method"
        if (local / "method.json").exists():
            return local, False
        for root in self.shipped:
            folder = root / self.preset / method / scope / str(self.seed)
            if (folder / "method.json").exists():
                return folder, True
        return None

    # ----------------------------------------------------------------------------------------------

    def status(self) -> list[dict]:
        """One row per system: name, what it is, where its weights are, or the command that trains it."""
        rows = [{"system": ENGLISH_BACKBONE, "status": "ready", "weights": "the frozen backbone",
                 "label": "the untouched English pipeline (draws the English version of the prompt)"}]
        for name, entry in self.entries.items():
            if not entry.trainable:
                rows.append({"system": name, "status": "ready", "weights": "nothing trains", "label": entry.label})
                continue
            scopes = [lang for lang in self.languages if lang != "en"] if entry.per_language else ["all"]
            missing = [s for s in scopes if s not in entry.folders]
            where = ", ".join(f"{s}: {'shipped copy' if entry.shipped[s] else 'local run'}" for s in entry.folders)
            status = "ready" if not missing else ("partly trained" if entry.folders else "not trained")
            if entry.errors:
                status = "broken: " + "; ".join(entry.errors.values())
            rows.append({"system": name, "status": status, "label": entry.label, "weights": where or "-",
                         "train with": "; ".join(train_command(name, s, self.seed, self.preset) for s in missing)})
        return rows

    def available(self) -> bool:
        """Whether any trainable method has weights here."""
        return any(entry.folders for entry in self.entries.values() if entry.trainable)

    def system(self, name: str, language: str):
        """The loaded system `name` for `language`; raises XlcoreError saying why there is none."""
        from .evaluate.common import EnglishBackbone
        from .methods._base import build_method, load_method

        if name == ENGLISH_BACKBONE:
            return EnglishBackbone(self.backbone)
        entry = self.entries.get(name)
        if entry is None:
            raise XlcoreError(f"unknown system {name!r}; known: {ENGLISH_BACKBONE}, {', '.join(self.entries)}")
        if not entry.trainable:
            if "all" not in entry.loaded:
                entry.loaded["all"] = build_method(name, self.backbone, languages=self.languages, seed=self.seed)
            return entry.loaded["all"]
        scope = language if entry.per_language else "all"
        if entry.per_language and language == "en":
            raise XlcoreError(f"{name} adapts the English model to one other language; pick a language other than English")
        if scope in entry.errors:
            raise XlcoreError(entry.errors[scope])
        if scope not in entry.loaded:
            folder = entry.folders.get(scope)
            if folder is None:
                raise XlcoreError(f"not trained {'for ' + language + ' ' if entry.per_language else ''}"
                                  f"(seed {self.seed}); train it with `{train_command(name, scope, self.seed, self.preset)}`")
            try:
                entry.loaded[scope] = load_method(folder, self.backbone)
            except XlcoreError as err:  # corrupt or foreign checkpoint: say so, keep serving the others
                entry.errors[scope] = f"its checkpoint cannot be loaded ({err})"
                log.warning("%s (%s): %s", name, scope, err)
                raise XlcoreError(entry.errors[scope]) from None
        return entry.loaded[scope]

    def trainable_parameters(self, name: str, system) -> int:
        if name == ENGLISH_BACKBONE or not self.entries[name].trainable:
            return 0
        return sum(p.numel() for p in system.trainable_parameters().values())

    def check(self, prompt: str, language: str) -> Prompt:
        """The checked prompt (PromptError / UnknownLanguageError for bad input)."""
        if language not in self.languages:
            raise UnknownLanguageError(language, self.languages)
        return check_prompt(prompt, tokenizer=self.backbone.multilingual_tokenizer)

    def read(self, text: str, language: str) -> Reading | None:
        """What the world makes of `text` in `language` (its scene, its English, the words it lacks);
        None on a preset without the built-in world."""
        return read_prompt(text, language, self.languages) if self.world is not None else None

    def english_version(self, text: str, language: str) -> str | None:
        """The English caption of `text` by the world's exact reading (case and spacing do not matter);
        None where the world has none (text from outside it, or a culture concept English cannot name)."""
        if language == "en":
            return text
        reading = self.read(text, language)
        return reading.english if reading is not None else None

    def draw(self, prompt: str, language: str, *, names: Sequence[str] | None = None, seed: int = 0,
             steps: int | None = None, guidance_scale: float | None = None) -> tuple[Prompt, list[Drawn]]:
        """Every system (or `names`) drawing `prompt` in `language` with the same noise."""
        checked = self.check(prompt, language)
        return checked, list(self.draw_each(checked, language, names=names, seed=seed, steps=steps,
                                            guidance_scale=guidance_scale))

    def draw_each(self, checked: Prompt, language: str, *, names: Sequence[str] | None = None, seed: int = 0,
                  steps: int | None = None, guidance_scale: float | None = None) -> Iterator[Drawn]:
        """One `Drawn` per system as each finishes (the demo shows them as they come). The systems that
        need an exact English (the English reference, the translation oracle) draw only what the world
        can read, and say why not otherwise; they never draw untranslated text."""
        names = list(names) if names is not None else [ENGLISH_BACKBONE, *self.entries]
        english = self.english_version(checked.text, language)
        for name in names:
            text, language_of_text, note = checked.text, language, ""
            if name in (ENGLISH_BACKBONE, "translate_oracle") and language != "en" and english is None:
                label = "English reference" if name == ENGLISH_BACKBONE else self.entries[name].label
                yield Drawn(name, label, None, 0.0, 0, "unavailable: the world has no exact English for this prompt ("
                            + (self.read(checked.text, language).describe() if self.world is not None else
                               "no built-in world on this preset") + "); pick an example")
                continue
            if name == ENGLISH_BACKBONE:
                text, language_of_text = english, "en"
                note = f"drew the English: {english}" if language != "en" else ""
            yield self._draw_one(name, text, language_of_text, seed, steps, guidance_scale, note)

    def draw_languages(self, name: str, prompts: dict[str, str], *, seed: int = 0, steps: int | None = None,
                       guidance_scale: float | None = None) -> list[Drawn]:
        """One system drawing the same prompt in several languages (`prompts`: language -> text)."""
        out = []
        for language, text in prompts.items():
            try:
                checked = self.check(text, language)
            except XlcoreError as err:
                out.append(Drawn(f"{name} ({language})", language, None, 0.0, 0, str(err)))
                continue
            drawn = self._draw_one(name, checked.text, language, seed, steps, guidance_scale, "; ".join(checked.notes))
            out.append(dataclasses.replace(drawn, name=f"{name} ({language})", label=language))
        return out

    def _draw_one(self, name: str, text: str, language: str, seed: int, steps: int | None,
                  guidance_scale: float | None, note: str) -> Drawn:
        from .config import GenerationEvalConfig
        from .evaluate.generation import draw

        label = "the untouched English pipeline" if name == ENGLISH_BACKBONE else self.entries[name].label
        try:
            system = self.system(name, language)
            config = dataclasses.replace(GenerationEvalConfig(), batch_size=1,
                                         steps=int(steps or self.defaults["steps"]),
                                         guidance_scale=float(guidance_scale if guidance_scale is not None
                                                              else self.defaults["guidance_scale"]))
            with self._lock:
                start = time.perf_counter()
                image = draw(system, [text], language, [int(seed)], config)[0]
                seconds = time.perf_counter() - start
        except UnknownLanguageError as err:
            return Drawn(name, label, None, 0.0, 0, f"does not read this language ({err})")
        except XlcoreError as err:
            return Drawn(name, label, None, 0.0, 0, str(err))
        return Drawn(name, label, image, seconds, self.trainable_parameters(name, system), note)


def export_shipped(output_dir: str | Path, destination: str | Path, preset: str = "toy", seed: int = 0,
                   dtype: torch.dtype = torch.float16) -> list[Path]:
    """Copy every trained run of `seed` into `destination/<preset>/<method>/<scope>/<seed>/` with its
    weights cast to `dtype` (half the size; the demo's shipped copies). Returns the folders written."""
    import json

    from safetensors.torch import load_file, save_file

    from .registry import METHODS
    from .results import file_sha256

    written = []
    for name in METHODS.names():
        per_language = METHODS.get(name).per_language
        for scope in ([lang for lang in LANGUAGES if lang != "en"] if per_language else ["all"]):
            source = train_dir(output_dir, Cell(preset, name, scope, seed), per_language) / "method"
            if not (source / "method.json").exists():
                continue
            target = Path(destination) / preset / name / scope / str(seed)
            target.mkdir(parents=True, exist_ok=True)
            state = {k: v.to(dtype) if v.is_floating_point() else v
                     for k, v in load_file(str(source / "trainable.safetensors")).items()}
            save_file(state, str(target / "trainable.safetensors"))
            meta = json.loads((source / "method.json").read_text())
            meta["weights_sha256"] = file_sha256(target / "trainable.safetensors")
            meta["shipped_copy"] = {"of": str(source), "dtype": str(dtype).replace("torch.", "")}
            (target / "method.json").write_text(json.dumps(meta, indent=2) + "\n")
            written.append(target)
    return written
