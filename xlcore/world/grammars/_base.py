"""The grammar contract: turn a Scene into a caption in one language, with several paraphrases."""

from __future__ import annotations

import functools

from ...errors import UnknownLanguageError, XlcoreError
from ...registry import Registry
from ..scene import CULTURE_SHAPES, RELATIONS, RELATIONS_BY_AXIS, Scene, Thing

GRAMMARS: Registry = Registry(
    "language", "xlcore.world.grammars", "xlcore.languages", unknown_error=UnknownLanguageError
)


class Grammar:
    """Base class of a language's caption grammar.

    Subclasses implement `single` (one object at a position) and `pair` (subject, relation, reference
    object), each with `n_templates` paraphrase templates, and set `code` (ISO 639-1) and `name`.
    """

    code: str = ""
    name: str = ""
    n_templates: int = 4

    @property
    def culture_shapes(self) -> tuple[str, ...]:
        """Shapes that only this language names (its culture concepts)."""
        return CULTURE_SHAPES.get(self.code, ())

    def describe(self, scene: Scene, relation: str | None = None, template: int = 0) -> str:
        """The caption of `scene` with paraphrase `template`.

        For pairs, `relation` picks the phrasing: "left_of"/"above" make slot 0 the subject,
        "right_of"/"below" make slot 1 the subject. It defaults to the first relation of the axis.
        """
        if not 0 <= template < self.n_templates:
            raise ValueError(f"{self.code}: template {template} out of range 0..{self.n_templates - 1}")
        culture = scene.culture_language
        if culture is not None and culture != self.code:
            raise XlcoreError(
                f"{self.code} has no word for the {culture} culture concept in {scene.key()!r}"
            )
        if not scene.is_pair:
            return self.single(scene.things[0], scene.place, template)
        relation = relation or RELATIONS_BY_AXIS[scene.place][0]
        if relation not in RELATIONS_BY_AXIS[scene.place]:
            raise ValueError(f"relation {relation!r} does not fit a {scene.place} pair")
        first, second = scene.things
        subject, reference = (first, second) if relation in ("left_of", "above") else (second, first)
        return self.pair(subject, relation, reference, template)

    def single(self, thing: Thing, position: str, template: int) -> str:
        raise NotImplementedError

    def pair(self, subject: Thing, relation: str, reference: Thing, template: int) -> str:
        raise NotImplementedError


def capitalise(text: str) -> str:
    """Upper-case the first character (a no-op for scripts without case)."""
    return text[:1].upper() + text[1:]


@functools.lru_cache(maxsize=None)
def get_grammar(code: str) -> Grammar:
    """The grammar of language `code`; an unknown code raises an error listing the supported ones."""
    return GRAMMARS.get(code)()


def supported_languages() -> list[str]:
    return GRAMMARS.names()


assert set(RELATIONS) == {r for pair in RELATIONS_BY_AXIS.values() for r in pair}
