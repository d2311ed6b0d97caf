"""What the built-in world makes of a prompt: the scene a sentence describes in one language's grammar,
the same scene's English caption, and, for a sentence the grammar never writes, the words it does not use
and whether the script or the vocabulary is another language's. Case- and space-insensitive.

Used by the translation oracle (exact translation means parsing), the demo (what the model can understand)
and `xlcore.prompts`.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

from ..config import LANGUAGE_NAMES, LANGUAGES
from ..errors import code_span
from .scene import Scene

_TRAILING = ".。!！?？"


def normalise(text: str) -> str:
    """A caption's comparison form: NFC, case-folded, whitespace folded, final punctuation dropped."""
    text = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    return text.rstrip(_TRAILING).strip()


def _words(text: str, language: str) -> list[str]:
    """Words of a normalised caption: space-separated, or characters for Chinese and Japanese."""
    if language in ("zh", "ja"):
        return [c for c in text if not c.isspace() and unicodedata.category(c)[0] in "LN"]
    return [w.strip(",;:()\"'«»„“”") for w in text.split() if w.strip(",;:()\"'«»„“”")]


@dataclass(frozen=True)
class Reading:
    """What the world's grammar of `language` makes of a prompt: the scene it describes (or None, with
    the words the grammar never uses and a script mismatch), and the same scene's English caption."""

    language: str
    scene: Scene | None
    english: str | None  # the world's English caption of the scene (None: no scene, or a culture concept)
    relation: str | None = None  # of a two-object scene: which object the sentence makes its subject
    template: int | None = None  # the paraphrase
    unknown_words: tuple[str, ...] = ()
    script_problem: str | None = None
    reads_as: str | None = None  # another language whose vocabulary covers the prompt, when this one does not

    @property
    def parsed(self) -> bool:
        return self.scene is not None

    def said_in(self, language: str) -> str | None:
        """The same scene (and relation) in another language's grammar; None without a scene, or for a
        culture concept the other language has no word for."""
        from .grammars import get_grammar

        if self.scene is None or self.scene.culture_language not in (None, language):
            return None
        grammar = get_grammar(language)
        return grammar.describe(self.scene, self.relation, min(self.template or 0, grammar.n_templates - 1))

    def describe(self) -> str:
        """One line for the page (Markdown; the words quoted from the prompt are code spans)."""
        if self.parsed:
            return f"reads as the scene {self.scene.key()}" + (f"; in English: {self.english}" if self.english else
                                                                "; English has no word for it (a culture concept)")
        problems = []
        if self.script_problem:
            problems.append(self.script_problem)
        if self.reads_as:
            problems.append(f"the words are {self.reads_as}, not {LANGUAGE_NAMES.get(self.language, self.language)}")
        if self.unknown_words:
            problems.append("words the world does not use here: " + ", ".join(code_span(w) for w in self.unknown_words[:8]))
        return "could not parse: " + ("; ".join(problems) if problems else "not a sentence the world's grammar writes")


@functools.lru_cache(maxsize=None)
def _captions(language: str) -> dict[str, tuple]:
    """normalised caption -> (scene, relation, template) for every sentence `language`'s grammar writes
    (its own culture concept included)."""
    from .grammars import get_grammar
    from .scene import CULTURE_SHAPES, RELATIONS_BY_AXIS, SHAPES, pair_scenes, single_scenes

    grammar = get_grammar(language)
    shapes = SHAPES + tuple(CULTURE_SHAPES.get(language, ()))
    table: dict[str, tuple] = {}
    for scene in (*single_scenes(shapes), *pair_scenes(shapes)):
        if scene.culture_language not in (None, language):
            continue
        for relation in (RELATIONS_BY_AXIS[scene.place] if scene.is_pair else (None,)):
            for template in range(grammar.n_templates):
                table.setdefault(normalise(grammar.describe(scene, relation, template)), (scene, relation, template))
    return table


@functools.lru_cache(maxsize=None)
def vocabulary(language: str) -> frozenset[str]:
    """Every word (Chinese, Japanese: every character) the world's grammar of `language` uses."""
    return frozenset(w for caption in _captions(language) for w in _words(caption, language))


def read_prompt(text: str, language: str, languages: tuple[str, ...] = LANGUAGES) -> Reading:
    """What the world makes of `text` in `language` (case- and space-insensitive): see `Reading`."""
    from ..data.sources import script_mismatch
    from .grammars import get_grammar

    key = normalise(text)
    found = _captions(language).get(key)
    if found is not None:
        scene, relation, template = found
        english = None
        if scene.culture_language is None:
            english_grammar = get_grammar("en")
            english = english_grammar.describe(scene, relation, min(template, english_grammar.n_templates - 1))
        return Reading(language, scene, english, relation, template)
    script = script_mismatch(key, language)
    words = key.split() if script else _words(key, language)  # in the wrong script, name whole words
    known = vocabulary(language)
    unknown = tuple(dict.fromkeys(w for w in words if w not in known))
    reads_as = None
    if unknown and words:
        coverage = {other: sum(w in vocabulary(other) for w in _words(key, other)) / max(1, len(_words(key, other)))
                    for other in languages if other != language}
        best = max(coverage, key=coverage.get)
        if coverage[best] >= 0.8:
            reads_as = LANGUAGE_NAMES.get(best, best)
    return Reading(language, None, None, unknown_words=unknown, script_problem=script, reads_as=reads_as)
