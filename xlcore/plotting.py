"""Figure helpers shared by the study, the notebooks and the demo."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
FONT_FILE = Path(__file__).parent / "assets" / "fonts" / "wqy-microhei-world-subset.ttf"


@functools.lru_cache(maxsize=1)
def use_world_fonts() -> None:
    """Register the shipped CJK subset font as a fallback after DejaVu Sans, so zh/ja captions render."""
    font_manager.fontManager.addfont(str(FONT_FILE))
    name = font_manager.FontProperties(fname=str(FONT_FILE)).get_name()
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", name]
    log.debug("matplotlib font fallback: DejaVu Sans, then %s", name)


def save_figure(fig: "plt.Figure", path: str | Path) -> list[Path]:
    """Save `fig` as PNG and SVG next to each other (path without suffix or with .png); returns both."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".svg"):
        target = path.with_suffix(suffix)
        # Fixed metadata keeps regenerated figures byte-stable where the backend allows it.
        metadata = {"Date": None} if suffix == ".svg" else {"Software": None}
        # SVG element ids are random unless salted; a fixed salt makes an unchanged figure an unchanged file.
        with matplotlib.rc_context({"svg.hashsalt": path.name}):
            fig.savefig(target, dpi=150, bbox_inches="tight", metadata=metadata)
        written.append(target)
    plt.close(fig)
    return written


def loss_figure(stages: dict[str, list[dict[str, float]]], title: str = "") -> "plt.Figure":
    """One panel per training stage: every logged loss term against the step (`stages`: stage -> the
    records of its train log, `xlcore.train.read_log`)."""
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.0), squeeze=False)
    for ax, (stage, records) in zip(axes.flat, stages.items()):
        terms = [k for k in (records[0] if records else {}) if k not in ("step", "lr", "grad_norm")]
        for term in terms:
            ax.plot([r["step"] for r in records], [r[term] for r in records], label=term)
        ax.set_title(stage), ax.set_xlabel("step")
        if terms:
            ax.set_yscale("log" if all(r[t] > 0 for r in records for t in terms) else "linear")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no log", ha="center", transform=ax.transAxes)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def image_rows(rows: dict[str, "torch.Tensor"], title: str = "") -> "plt.Figure":
    """Images in [0, 1] (N, 3, H, W), one row per key (a language, a method), the key as the row label."""
    use_world_fonts()
    columns = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.1 * columns + 0.6, 1.1 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def show(fig: "plt.Figure | None"):
    """A figure as a PNG image for notebooks (the Agg backend draws nothing inline by itself); closes it."""
    import io

    from IPython.display import Image

    if fig is None:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Image(buffer.getvalue())
