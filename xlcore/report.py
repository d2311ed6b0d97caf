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


def methods_table(results_path: str | Path) -> str:
    """Each method's transfer check, averaged over the target languages it was checked on, with its cost.

    Columns: non-English retrieval mean recall (methods with a joint image-text space), scorer-judged
    generation (every object's shape and colour; everything asked), trainable parameters of the largest
    stage, and the training wall time on the machine that ran it. The latest run of each method counts.
    """
    frame = ResultsStore(results_path).read()
    frame = frame[frame["run_id"].str.startswith("method-")]
    if frame.empty:
        return "(no method rows yet: run `make study`)"
    latest = frame.sort_values("timestamp").groupby(["method", "language"])["run_id"].last()
    frame = frame[frame["run_id"].isin(set(latest))]
    lines = ["| method | languages | retrieval mean recall | generation shape+colour | generation all | "
             "trainable parameters | training time | notes |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]

    def mean_of(rows: pd.DataFrame, benchmark: str, metric: str) -> str:
        values = rows[(rows["benchmark"] == benchmark) & (rows["metric"] == metric) & (rows["language"] != "en")]
        return "-" if values.empty else f"{values['value'].mean():.1f}"

    order = ["untrained", "translate_oracle", "translate", "trikd", "altclip", "altdiffusion", "iap", "mulan",
             "pea", "full_finetune"]
    names = sorted(frame["method"].unique(), key=lambda n: (order.index(n) if n in order else len(order), n))
    for name in names:
        rows = frame[frame["method"] == name]
        generated = rows[rows["benchmark"] == "polyglot-shapes/generation-prompts"]
        languages = ", ".join(sorted(generated["language"].unique()))
        cost = rows[rows["benchmark"] == "cost"]
        params = cost[cost["metric"] == "trainable_parameters"]["value"]
        seconds = cost[cost["metric"] == "train_seconds"].groupby("run_id")["value"].sum()
        lines.append(
            f"| {name} | {languages} | {mean_of(rows, 'polyglot-shapes/retrieval-test', 'mean_recall')} | "
            f"{mean_of(rows, 'polyglot-shapes/generation-prompts', 'shape_colour')} | "
            f"{mean_of(rows, 'polyglot-shapes/generation-prompts', 'all')} | "
            f"{'0' if params.empty else f'{int(params.max()):,}'} | "
            f"{'-' if seconds.empty else f'{seconds.mean() / 60:.1f} min'} | {rows['notes'].iloc[0] or ''} |")
    return "\n".join(lines)
