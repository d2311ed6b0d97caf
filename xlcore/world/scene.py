"""What a Polyglot Shapes image shows, independent of any language.

A scene is one object at one of five positions, or two objects side by side (horizontal) or one above
the other (vertical). Objects have a shape, a colour and, when alone, a size. Five shapes exist only in
one non-English language's data (its culture concepts): the English backbone never sees them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart", "diamond")
# One culture-specific object per non-English language (DESIGN.md section 4): named and seen only in
# that language's captions, so English-only training cannot learn it.
CULTURE_SHAPES: dict[str, tuple[str, ...]] = {
    "de": ("pretzel",),
    "fr": ("croissant",),
    "cs": ("easter_egg",),
    "zh": ("lantern",),
    "ja": ("torii",),
}
ALL_SHAPES: tuple[str, ...] = SHAPES + tuple(s for shapes in CULTURE_SHAPES.values() for s in shapes)
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "black", "white")
SIZES: tuple[str, ...] = ("small", "big")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "centre")
AXES: tuple[str, ...] = ("horizontal", "vertical")
# Relations as captions state them; the first two describe horizontal pairs, the last two vertical.
RELATIONS: tuple[str, ...] = ("left_of", "right_of", "above", "below")
RELATIONS_BY_AXIS: dict[str, tuple[str, str]] = {"horizontal": ("left_of", "right_of"), "vertical": ("above", "below")}
# Layout classes that the attribute scorer predicts: a single object's position, or a pair's axis.
LAYOUTS: tuple[str, ...] = POSITIONS + AXES

SHAPE_CULTURE: dict[str, str] = {shape: lang for lang, shapes in CULTURE_SHAPES.items() for shape in shapes}


@dataclass(frozen=True)
class Thing:
    """One object: shape, colour and size (size is None in two-object scenes, whose captions omit it)."""

    shape: str
    colour: str
    size: str | None = None

    def __post_init__(self) -> None:
        if self.shape not in ALL_SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; shapes: {ALL_SHAPES}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; colours: {COLOURS}")
        if self.size is not None and self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; sizes: {SIZES}")


@dataclass(frozen=True)
class Scene:
    """What an image shows: one object and its position, or two objects in slot order and their axis.

    For pairs, slot 0 is the left (horizontal) or top (vertical) object, so a scene has one canonical
    form however a caption phrases the relation ("A left of B" and "B right of A" are the same scene).
    """

    things: tuple[Thing, ...]
    place: str

    def __post_init__(self) -> None:
        if len(self.things) == 1:
            if self.place not in POSITIONS or self.things[0].size is None:
                raise ValueError(f"a single object needs a size and a position in {POSITIONS}: {self}")
        elif len(self.things) == 2:
            if self.place not in AXES or any(t.size is not None for t in self.things):
                raise ValueError(f"a pair needs an axis in {AXES} and no sizes: {self}")
            if self.things[0] == self.things[1]:
                raise ValueError(f"a pair of identical objects has no well-defined relation: {self}")
        else:
            raise ValueError(f"a scene has one or two objects, not {len(self.things)}")

    @property
    def is_pair(self) -> bool:
        return len(self.things) == 2

    @property
    def culture_language(self) -> str | None:
        """The language whose culture concept this scene shows, if any."""
        for thing in self.things:
            if thing.shape in SHAPE_CULTURE:
                return SHAPE_CULTURE[thing.shape]
        return None

    def key(self) -> str:
        """A canonical, language-free description; equal keys mean the same description."""
        parts = [f"{t.size + ' ' if t.size else ''}{t.colour} {t.shape}" for t in self.things]
        return f"{' | '.join(parts)} @ {self.place}"

    def labels(self) -> dict[str, int]:
        """Class indices for the attribute scorer; -1 where an attribute does not apply."""
        first = self.things[0]
        second = self.things[1] if self.is_pair else None
        return {
            "layout": LAYOUTS.index(self.place),
            "shape0": ALL_SHAPES.index(first.shape),
            "colour0": COLOURS.index(first.colour),
            "size0": SIZES.index(first.size) if first.size else -1,
            "shape1": ALL_SHAPES.index(second.shape) if second else -1,
            "colour1": COLOURS.index(second.colour) if second else -1,
        }


LABEL_CLASSES: dict[str, tuple[str, ...]] = {
    "layout": LAYOUTS,
    "shape0": ALL_SHAPES,
    "colour0": COLOURS,
    "size0": SIZES,
    "shape1": ALL_SHAPES,
    "colour1": COLOURS,
}


def single_scenes(shapes: tuple[str, ...] = SHAPES) -> Iterator[Scene]:
    """Every one-object scene over `shapes`, in a fixed order."""
    for shape, colour, size, position in itertools.product(shapes, COLOURS, SIZES, POSITIONS):
        yield Scene((Thing(shape, colour, size),), position)


def pair_scenes(shapes: tuple[str, ...] = SHAPES) -> Iterator[Scene]:
    """Every two-object scene over `shapes` (distinct objects), in a fixed order."""
    objects = [Thing(shape, colour) for shape, colour in itertools.product(shapes, COLOURS)]
    for axis, first, second in itertools.product(AXES, objects, objects):
        if first != second:
            yield Scene((first, second), axis)
