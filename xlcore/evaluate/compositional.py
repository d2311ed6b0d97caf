"""Compositional accuracy judged by the world's attribute scorer (GenEval style, toy world only).

For each generated image and the scene its prompt asked for, every attribute is judged separately:
shape and colour of each object, size and position of a single object, the axis of a pair (which,
with the slot order, encodes the relation). An image is correct only if everything asked is right.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..world.scene import LABEL_CLASSES, Scene

COLUMNS = {name: i for i, name in enumerate(LABEL_CLASSES)}


def judge(predictions: torch.Tensor, scenes: Sequence[Scene]) -> dict[str, torch.Tensor]:
    """Per-image booleans for each attribute the prompt asked for (NaN-free: absent -> not counted).

    Returns tensors of 0/1 floats with NaN where an attribute does not apply (e.g. size for a pair):
    `shape`, `colour`, `size`, `position` (single objects), `relation` (pairs: axis and both objects in
    the right slots), `shape_colour` (every object's shape and colour) and `all`.
    """
    n = len(scenes)
    out = {name: torch.full((n,), float("nan")) for name in
           ("shape", "colour", "size", "position", "relation", "shape_colour", "all")}
    for i, scene in enumerate(scenes):
        want = scene.labels()
        got = {name: int(predictions[i, column]) for name, column in COLUMNS.items()}
        slots = (0, 1) if scene.is_pair else (0,)
        shapes_ok = all(got[f"shape{s}"] == want[f"shape{s}"] for s in slots)
        colours_ok = all(got[f"colour{s}"] == want[f"colour{s}"] for s in slots)
        layout_ok = got["layout"] == want["layout"]
        out["shape"][i] = float(shapes_ok)
        out["colour"][i] = float(colours_ok)
        out["shape_colour"][i] = float(shapes_ok and colours_ok)
        if scene.is_pair:
            out["relation"][i] = float(layout_ok and shapes_ok and colours_ok)
            out["all"][i] = out["relation"][i]
        else:
            size_ok = got["size0"] == want["size0"]
            out["size"][i] = float(size_ok)
            out["position"][i] = float(layout_ok)
            out["all"][i] = float(shapes_ok and colours_ok and size_ok and layout_ok)
    return out


def summarise(judged: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean (0-100) of each attribute over the images where it applies."""
    summary = {}
    for name, values in judged.items():
        valid = ~torch.isnan(values)
        if valid.any():
            summary[name] = 100.0 * float(values[valid].mean())
    return summary
