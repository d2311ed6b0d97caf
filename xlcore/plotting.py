"""Figure helpers shared by the study, the notebooks and the demo."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

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
