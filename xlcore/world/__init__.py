"""Polyglot Shapes: the built-in synthetic, compositional, multilingual image-caption world."""

from .grammars import get_grammar, supported_languages
from .render import render, sample_layout
from .scene import ALL_SHAPES, COLOURS, CULTURE_SHAPES, LABEL_CLASSES, POSITIONS, RELATIONS, SHAPES, SIZES, Scene, Thing
from .world import ImageTextDataset, ParallelTextDataset, PivotImageTextDataset, TextDataset, World, WorldItem, image_to_tensor

__all__ = [
    "ALL_SHAPES", "COLOURS", "CULTURE_SHAPES", "LABEL_CLASSES", "POSITIONS", "RELATIONS", "SHAPES", "SIZES",
    "ImageTextDataset", "ParallelTextDataset", "PivotImageTextDataset", "Scene", "TextDataset", "Thing", "World", "WorldItem",
    "get_grammar", "image_to_tensor", "render", "sample_layout", "supported_languages",
]
