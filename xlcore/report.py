"""Markdown tables drawn from the results table (the README's numbers come from here)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .results import ResultsStore

QUALITY_BAR = {  # metric -> (label, target), from the backbone issue's quality bar
    "scorer_all_heads_acc": ("scorer: every attribute right on unseen renders", "> 95"),
    "scorer_all_heads_acc_noise0.05": ("scorer: the same renders with Gaussian noise (std 0.05)", "-"),
    "mean_recall": ("English retrieval mean recall (1,000 test images)", "> 80"),
    "single_shape_colour": ("English generation, one object: shape + colour", "> 70"),
    "single_all": ("English generation, one object: shape, colour, size, position", "-"),
    "pair_all": ("English generation, two objects: both objects and the relation", "well above chance"),
}


def backbone_quality_table(results_path: str | Path) -> str:
    """The latest toy backbone quality run as a Markdown table (generation rows per guidance scale)."""
    frame = ResultsStore(results_path).read()
    frame = frame[frame["method"] == "english-backbone"]
    if frame.empty:
        return "(no backbone quality rows yet: run `make study`)"
    latest = frame[frame["run_id"] == frame.sort_values("timestamp")["run_id"].iloc[-1]]
    lines = [f"Run `{latest['run_id'].iloc[0]}` ({latest['notes'].iloc[0]}), {latest['hardware'].iloc[0]}, "
             f"commit {latest['git_commit'].iloc[0]}:", "",
             "| metric | protocol | value | target |", "| --- | --- | ---: | --- |"]
    for metric, (label, target) in QUALITY_BAR.items():
        rows: pd.DataFrame = latest[latest["metric"] == metric]
        for _, row in rows.iterrows():
            lines.append(f"| {label} | {row['protocol']} | {row['value']:.1f} | {target} |")
    return "\n".join(lines)
