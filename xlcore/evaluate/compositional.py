"""Compositional accuracy judged by the world's attribute scorer (GenEval style, toy world only).

For each generated image and the scene its prompt asked for, every attribute is judged separately:
shape and colour of each object, size and position of a single object, the axis of a pair (which,
with the slot order, encodes the relation). Two families of scores come out:

- the world's strict, slot-based judgement: `shape`, `colour`, `size`, `position` (a single object's
  place), `relation` (a pair's axis with both objects, shapes and colours, in the asked slots),
  `shape_colour` and `all` (the image counts only if everything asked is right: GenEval's "% correct
  images" when pooled over every prompt);
- GenEval's task groups, as far as the world has them (Ghosh et al. 2023, github.com/djghosh13/geneval,
  `evaluation/evaluate_images.py` and `summary_scores.py`), each judged as GenEval judges it:
  `geneval_single_object` (single prompts: the object is there, i.e. its shape), `geneval_colors` (single
  prompts: the object in its colour), `geneval_two_object` (pair prompts: both objects there, in any
  order), `geneval_color_attr` (pair prompts: both objects each in its own colour, in any order) and
  `geneval_position` (pair prompts: both objects there and in the asked relation, judged on the matched
  pair, colours not asked). GenEval's counting task has no counterpart (a world scene has one or two
  objects). `overall` is GenEval's headline, the unweighted mean over the task groups present.

Averages are exact: integer hit counts divided in float64 (`summarise`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..world.scene import LABEL_CLASSES, Scene

COLUMNS = {name: i for i, name in enumerate(LABEL_CLASSES)}
GENEVAL_TASKS = ("geneval_single_object", "geneval_colors", "geneval_two_object", "geneval_color_attr",
                 "geneval_position")
JUDGEMENTS = ("shape", "colour", "size", "position", "relation", "shape_colour", "all") + GENEVAL_TASKS


def _pair_in_order(got: Mapping[str, int], want: Mapping[str, int]) -> bool:
    """Whether the scorer's slots hold the asked objects in the asked order. Objects are matched by shape;
    when both asked objects share a shape, their colours tell them apart (else the order is undefined)."""
    if want["shape0"] == want["shape1"]:
        return all(got[f"{a}{s}"] == want[f"{a}{s}"] for a in ("shape", "colour") for s in (0, 1))
    return got["shape0"] == want["shape0"] and got["shape1"] == want["shape1"]


def judge(predictions: torch.Tensor, scenes: Sequence[Scene]) -> dict[str, torch.Tensor]:
    """Per-image 0/1 floats for each judgement of the module docstring, NaN where it does not apply
    (size for a pair, two-object tasks for a single object)."""
    n = len(scenes)
    out = {name: torch.full((n,), float("nan")) for name in JUDGEMENTS}
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
            objects = sorted((got[f"shape{s}"], got[f"colour{s}"]) for s in slots)
            wanted = sorted((want[f"shape{s}"], want[f"colour{s}"]) for s in slots)
            out["geneval_two_object"][i] = float(sorted(o[0] for o in objects) == sorted(w[0] for w in wanted))
            out["geneval_color_attr"][i] = float(objects == wanted)
            out["geneval_position"][i] = float(layout_ok and _pair_in_order(got, want))
        else:
            size_ok = got["size0"] == want["size0"]
            out["size"][i] = float(size_ok)
            out["position"][i] = float(layout_ok)
            out["all"][i] = float(shapes_ok and colours_ok and size_ok and layout_ok)
            out["geneval_single_object"][i] = float(shapes_ok)
            out["geneval_colors"][i] = float(shapes_ok and colours_ok)
    return out


def summarise(judged: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Percent (0-100) of the images where each judgement applies that got it right: the integer count of
    hits divided in float64, so 47 of 100 is 47.0 exactly."""
    summary = {}
    for name, values in judged.items():
        valid = values[~torch.isnan(values)]
        if len(valid):
            summary[name] = 100.0 * int(valid.sum().item()) / len(valid)
    return summary


def geneval_overall(summary: Mapping[str, float]) -> float | None:
    """GenEval's "Overall": the unweighted mean of the task-group scores present (None without any)."""
    present = [summary[task] for task in GENEVAL_TASKS if task in summary]
    return sum(present) / len(present) if present else None


def all_languages_correct(judged: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """m-GenEval's cross-lingual reading of one judgement: given the same prompts' 0/1 judgement per
    language (`judged[lang]`, same prompt order), the percent of prompts judged right in every language,
    and per language the percent whose judgement agrees with English's (where English is there)."""
    languages = list(judged)
    stacked = torch.stack([judged[lang] for lang in languages])
    valid = ~torch.isnan(stacked).any(0)
    hits = stacked[:, valid]
    out = {"all_languages": 100.0 * int(hits.min(0).values.sum().item()) / max(1, hits.shape[1])}
    if "en" in judged:
        english = hits[languages.index("en")]
        for lang, row in zip(languages, hits):
            if lang != "en":
                out[f"agrees_with_en/{lang}"] = 100.0 * int((row == english).sum().item()) / max(1, len(row))
    return out
