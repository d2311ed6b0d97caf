"""The world's sample grid: images with their captions in every language, and the culture concepts."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..plotting import save_figure, use_world_fonts
from .world import World, WorldItem

LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech", "zh": "Chinese", "ja": "Japanese"}


def sample_grid(world: World, path: str | Path, n_parallel: int = 6) -> list[Path]:
    """Draw `n_parallel` retrieval-test items with all captions, then one culture item per language."""
    use_world_fonts()
    test = world.retrieval_test()
    rows: list[tuple[WorldItem, dict[str, str]]] = []
    # Alternate single objects and pairs so both kinds show.
    singles = [test.item(i) for i in range(len(test)) if not test.item(i).scene.is_pair][: (n_parallel + 1) // 2]
    pairs = [test.item(i) for i in range(len(test)) if test.item(i).scene.is_pair][: n_parallel // 2]
    for item in [x for pair in zip(singles, pairs) for x in pair] + singles[len(pairs):]:
        rows.append((item, dict(item.captions)))
    for lang in world.target_languages:
        prompts = world.culture_prompts(lang)
        if prompts:
            rows.append((prompts[0], {f"{lang} (culture)": prompts[0].captions[lang]}))

    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 1.25 * len(rows)),
                             gridspec_kw={"width_ratios": [1, 7]})
    for (item, captions), (image_ax, text_ax) in zip(rows, axes):
        image_ax.imshow(world.render(item), interpolation="nearest")
        image_ax.set_xticks([]), image_ax.set_yticks([])
        text_ax.axis("off")
        lines = [f"{lang:>12}:  {caption}" for lang, caption in captions.items()]
        text_ax.text(0.0, 0.5, "\n".join(lines), va="center", ha="left", fontsize=8, family=None)
    fig.suptitle(
        f"Polyglot Shapes (seed {world.config.seed}, {world.config.image_size}px): parallel captions, "
        "then each language's culture concept", fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)
