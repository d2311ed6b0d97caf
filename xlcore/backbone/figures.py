"""Figures of a backbone's own generations."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..plotting import save_figure, use_world_fonts
from ..world import World
from .base import Backbone
from .quality import generate


def generation_grid(backbone: Backbone, world: World, path: str | Path, guidance_scale: float, steps: int = 25,
                    n: int = 16, seed: int = 0) -> list[Path]:
    """English generations for the first `n` generation prompts, each titled with its prompt."""
    use_world_fonts()
    prompts = list(world.generation_prompts())[:n]
    states, _ = backbone.encode_english([p.captions["en"] for p in prompts])
    images = generate(backbone, states, [seed * 100_003 + i for i in range(len(prompts))], guidance_scale, steps)
    columns = 4
    rows = (len(prompts) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax, prompt, image in zip(axes.flat, prompts, images):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(prompt.captions["en"], fontsize=7, wrap=True)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"Toy backbone, English prompts (guidance {guidance_scale:g}, {steps} DDIM steps)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
