"""Enumerations over everything a grammar can say (font coverage, vocabulary checks)."""

from __future__ import annotations

from typing import Iterator

from .grammars import Grammar
from .scene import RELATIONS_BY_AXIS, SHAPES, pair_scenes, single_scenes


def all_captions(grammar: Grammar, extra_shapes: tuple[str, ...] = ()) -> Iterator[str]:
    """Every caption `grammar` produces for scenes over the universal shapes plus `extra_shapes`."""
    shapes = SHAPES + tuple(extra_shapes)
    for scene in (*single_scenes(shapes), *pair_scenes(shapes)):
        relations = RELATIONS_BY_AXIS[scene.place] if scene.is_pair else (None,)
        for relation in relations:
            for template in range(grammar.n_templates):
                yield grammar.describe(scene, relation, template)
