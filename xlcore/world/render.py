"""Deterministic renderer of Polyglot Shapes scenes.

Each object is drawn into its own mask at `supersample` times the output size (so shapes with holes or
cut-outs never touch the neighbouring object), coloured, composited on a plain grey background and
box-downsampled, which anti-aliases edges. Geometry is in unit coordinates: (0, 0) top left, (1, 1)
bottom right; an object is a centre and a radius (its half-extent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .scene import AXES, Scene

BACKGROUND = (128, 128, 128)
RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 215, 40),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}
SINGLE_RADIUS = {"small": 0.15, "big": 0.25}
PAIR_RADIUS = 0.17
POSITION_CENTRES = {
    "left": (0.27, 0.5),
    "right": (0.73, 0.5),
    "top": (0.5, 0.27),
    "bottom": (0.5, 0.73),
    "centre": (0.5, 0.5),
}


@dataclass(frozen=True)
class Placement:
    """Where one object is drawn: centre (x, y) and radius, all in unit coordinates."""

    x: float
    y: float
    radius: float


def sample_layout(scene: Scene, rng: np.random.Generator) -> tuple[Placement, ...]:
    """Jittered placements for the scene's objects (position +-0.03, radius x0.9-1.1)."""
    if not scene.is_pair:
        x, y = POSITION_CENTRES[scene.place]
        radius = SINGLE_RADIUS[scene.things[0].size] * rng.uniform(0.9, 1.1)
        return (Placement(x + rng.uniform(-0.03, 0.03), y + rng.uniform(-0.03, 0.03), radius),)
    across = rng.uniform(0.32, 0.68)  # the coordinate the pair shares, varied so pairs move around
    placements = []
    for along in (0.27, 0.73):
        radius = PAIR_RADIUS * rng.uniform(0.9, 1.1)
        along_j = along + rng.uniform(-0.02, 0.02)
        across_j = across + rng.uniform(-0.03, 0.03)
        x, y = (along_j, across_j) if scene.place == AXES[0] else (across_j, along_j)
        placements.append(Placement(x, y, radius))
    return tuple(placements)


def _polygon(cx: float, cy: float, r: float, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(cx + r * px, cy + r * py) for px, py in points]


def _star_points(n: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    points = []
    for k in range(2 * n):
        radius = 1.0 if k % 2 == 0 else inner
        angle = -math.pi / 2 + k * math.pi / n
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    return points


def _heart_points(samples: int = 48) -> list[tuple[float, float]]:
    points = []
    for k in range(samples):
        t = 2 * math.pi * k / samples
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        points.append((x / 17.0, (y + 2.5) / 17.0))
    return points


_STAR = _star_points()
_HEART = _heart_points()


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float) -> None:
    """Draw `shape` in white (255) on a mask; cut-outs are drawn in black (0)."""
    on, off = 255, 0
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=on)
    elif shape == "square":
        s = 0.82 * r
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=on)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r, [(0, -1), (0.98, 0.8), (-0.98, 0.8)]), fill=on)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, r, _STAR), fill=on)
    elif shape == "heart":
        draw.polygon(_polygon(cx, cy, r, _HEART), fill=on)
    elif shape == "diamond":
        draw.polygon(_polygon(cx, cy, r, [(0, -1), (0.68, 0), (0, 1), (-0.68, 0)]), fill=on)
    elif shape == "pretzel":  # two loops over a bar
        ring = 0.22 * r
        for dx in (-0.42, 0.42):
            x = cx + dx * r
            draw.ellipse([x - 0.55 * r, cy - 0.75 * r, x + 0.55 * r, cy + 0.35 * r], fill=on)
            draw.ellipse([x - 0.55 * r + ring, cy - 0.75 * r + ring, x + 0.55 * r - ring, cy + 0.35 * r - ring],
                         fill=off)
        draw.rectangle([cx - 0.95 * r, cy + 0.45 * r, cx + 0.95 * r, cy + 0.8 * r], fill=on)
    elif shape == "croissant":  # a crescent opening to the right
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=on)
        draw.ellipse([cx - 0.35 * r, cy - 0.85 * r, cx + 1.35 * r, cy + 0.85 * r], fill=off)
    elif shape == "easter_egg":  # an upright egg with two painted-out bands
        draw.ellipse([cx - 0.72 * r, cy - r, cx + 0.72 * r, cy + r], fill=on)
        for y in (-0.25, 0.3):
            draw.rectangle([cx - r, cy + (y - 0.08) * r, cx + r, cy + (y + 0.08) * r], fill=off)
    elif shape == "lantern":  # a wide round body with a cap, a foot and a hanging string
        draw.ellipse([cx - r, cy - 0.62 * r, cx + r, cy + 0.62 * r], fill=on)
        draw.rectangle([cx - 0.45 * r, cy - 0.85 * r, cx + 0.45 * r, cy - 0.55 * r], fill=on)
        draw.rectangle([cx - 0.45 * r, cy + 0.55 * r, cx + 0.45 * r, cy + 0.85 * r], fill=on)
        draw.rectangle([cx - 0.08 * r, cy - r, cx + 0.08 * r, cy - 0.8 * r], fill=on)
    elif shape == "torii":  # two posts, a top beam with raised ends and a tie beam
        draw.polygon(_polygon(cx, cy, r, [(-1, -1), (1, -1), (0.9, -0.72), (-0.9, -0.72)]), fill=on)
        draw.rectangle([cx - 0.72 * r, cy - 0.42 * r, cx + 0.72 * r, cy - 0.24 * r], fill=on)
        for dx in (-0.52, 0.52):
            draw.rectangle([cx + (dx - 0.11) * r, cy - 0.75 * r, cx + (dx + 0.11) * r, cy + r], fill=on)
    else:
        raise ValueError(f"the renderer has no drawing for shape {shape!r}")


def render(scene: Scene, layout: tuple[Placement, ...], image_size: int = 32, supersample: int = 4) -> np.ndarray:
    """The scene as a uint8 array of shape (image_size, image_size, 3)."""
    big = image_size * supersample
    canvas = Image.new("RGB", (big, big), BACKGROUND)
    for thing, placement in zip(scene.things, layout):
        mask = Image.new("L", (big, big), 0)
        _draw_shape(ImageDraw.Draw(mask), thing.shape, placement.x * big, placement.y * big, placement.radius * big)
        canvas.paste(Image.new("RGB", (big, big), RGB[thing.colour]), (0, 0), mask)
    if supersample > 1:
        canvas = canvas.reduce(supersample)  # box filter: exact average of each supersample block
    return np.asarray(canvas, dtype=np.uint8).copy()
