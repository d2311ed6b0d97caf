"""Markdown tables drawn from the results table (the numbers of README.md and docs/ come from here)."""

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
    frame = frame[(frame["method"] == "english-backbone") & frame["run_id"].str.startswith("backbone-")]
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




BUDGET_IN_ID = r"-s\d+-b([0-9.]+)-"  # the marker `xlcore.cell.cell_identity` puts in a learning-curve point's ids


def run_budget(run_ids: pd.Series) -> pd.Series:
    """The training budget (share of each stage's steps) of each run id: 1.0 unless it is a learning-curve point."""
    return run_ids.str.extract(BUDGET_IN_ID, expand=False).astype(float).fillna(1.0)


def latest_runs(frame: pd.DataFrame, prefix: str, budget: float | None = 1.0) -> pd.DataFrame:
    """Rows of the latest run (by timestamp) of each (method, language, seed) among runs whose id starts
    with `prefix` (cells: `cell-`, training runs: `train-`) at training `budget` (the full one unless asked:
    learning-curve points never stand in for a method's full run; None: the latest of each budget)."""
    frame = frame[frame["run_id"].str.startswith(prefix)]
    frame = frame.assign(budget=run_budget(frame["run_id"]))
    if budget is not None:
        frame = frame[frame["budget"] == budget]
    latest = frame.sort_values("timestamp").groupby(["method", "language", "seed", "budget"])["run_id"].last()
    return frame[frame["run_id"].isin(set(latest))].drop(columns="budget")


def ordered_methods(names) -> list[str]:
    """Method names in display order: the English backbone, then each method's `order` (its class says
    where it belongs), then names no registered method has (rows of a method since removed), by name."""
    from .errors import UnknownMethodError
    from .methods._base import describe

    def key(name: str) -> tuple[float, str]:
        if name == "english-backbone":
            return (float("-inf"), name)
        try:
            return (describe(name).order, name)
        except UnknownMethodError:
            return (float("inf"), name)

    return sorted(names, key=key)


def method_cost(frame: pd.DataFrame, budget: float = 1.0) -> pd.DataFrame:
    """Per method: trainable parameters (largest stage) and training seconds from the latest training runs:
    summed over stages, the fastest seed of each run (wall-clock time on a shared machine only grows with
    other load, so the minimum of repeats is the best estimate), averaged over a per-language method's
    languages. Seeds that timed every stage come first; `time_complete` is False where none did. `budget`:
    the runs of that learning-curve point (1: the full runs)."""
    trained = latest_runs(frame, "train-", budget)
    params = trained[(trained["benchmark"] == "cost/measured") & (trained["metric"] == "trainable_parameters")]
    # A stage that trained (steps > 0) without a recorded time makes its run's time a lower bound.
    steps = trained[(trained["metric"] == "train_steps") & (trained["value"] > 0)]
    timed = trained[trained["metric"] == "train_seconds"]
    untimed_runs = {run for run, _ in set(steps.set_index(["run_id", "stage"]).index)
                    - set(timed.set_index(["run_id", "stage"]).index)}
    per_seed = timed.groupby(["method", "language", "seed", "run_id"])["value"].sum().reset_index()
    per_seed["complete"] = ~per_seed["run_id"].isin(untimed_runs)
    fastest = (per_seed.sort_values(["complete", "value"], ascending=[False, True])
               .groupby(["method", "language"]).first())
    out = pd.DataFrame({"trainable_parameters": params.groupby("method")["value"].max(),
                        "train_seconds": fastest["value"].groupby("method").mean()})
    out["time_complete"] = fastest["complete"].groupby("method").all().reindex(out.index, fill_value=True)
    return out


def methods_table(results_path: str | Path) -> str:
    """Each system's evaluation, averaged over its non-English languages and seeds (English for the backbone),
    with cost.

    Columns: world retrieval mean recall (first-caption protocol; systems with a joint image-text space),
    compositional accuracy as GenEval's headline "Overall" (the mean over its task groups, once the table
    has it; runs recorded before it was measured show '-') and as the pooled share of images with
    everything asked right (GenEval's "% correct images", slot-based), culture-concept accuracy (the
    concept drawn), cross-lingual consistency with the English pipeline, CLIP score (toy CLIP, raw cosine,
    English caption), world FID (scorer features), the largest stage's trainable parameters and its share
    of the system, and the training wall time on the machine that ran it. The latest run of each system
    counts.
    """
    frame = ResultsStore(results_path).read()
    evaluated = latest_runs(frame, "cell-")
    trained = latest_runs(frame, "train-")
    costs = method_cost(frame)
    if evaluated.empty:
        return "(no evaluation rows yet: run `make study`)"
    quality = [("retrieval mean recall", "mean_recall", ".1f", "first-caption"),
               ("GenEval overall", "compositional_overall", ".1f", None),
               ("correct images", "compositional_all", ".1f", None),
               ("culture concept", "culture_shape", ".1f", None),
               ("consistency", "consistency_clip_cos", ".3f", None),
               ("CLIP score", "clip_score_raw_cos", ".3f", None),
               ("world FID", "fid_scorer256", ".0f", None)]
    quality = [column for column in quality if (evaluated["metric"] == column[1]).any()]
    header = ["method", "languages", *(c[0] for c in quality), "trainable parameters", "share of system",
              "training time", "notes"]
    lines = ["| " + " | ".join(header) + " |",
             "| --- | --- | " + "---: | " * (len(quality) + 3) + "--- |"]

    def mean_of(rows: pd.DataFrame, metric: str, fmt: str, protocol: str | None) -> str:
        rows = rows[rows["metric"] == metric]
        if protocol and rows["protocol"].str.startswith(protocol).any():  # else the one protocol there is
            rows = rows[rows["protocol"].str.startswith(protocol)]
        return "-" if rows.empty else format(rows["value"].mean(), fmt)

    for name in ordered_methods(evaluated["method"].unique()):
        rows = evaluated[evaluated["method"] == name]
        targets = rows[rows["language"] != "en"] if name != "english-backbone" else rows
        languages = ", ".join(sorted(targets["language"].unique()))
        share = trained[(trained["method"] == name) & (trained["benchmark"] == "cost/measured")
                        & (trained["metric"] == "trainable_share_pct")]["value"]
        params = costs.at[name, "trainable_parameters"] if name in costs.index else float("nan")
        seconds = costs.at[name, "train_seconds"] if name in costs.index else float("nan")
        bound = "" if name not in costs.index or costs.at[name, "time_complete"] else "≥"  # a stage trained untimed
        cells = [name, languages, *(mean_of(targets, metric, fmt, protocol) for _, metric, fmt, protocol in quality),
                 "0" if pd.isna(params) else f"{int(params):,}", "-" if share.empty else f"{share.max():.1f}%",
                 "-" if pd.isna(seconds) else f"{bound}{seconds / 60:.1f} min", rows["notes"].iloc[0] or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(results_path: str | Path) -> str:
    """Per training stage: measured cost on the machine that ran the study, FLOPs per sample of the same
    stage on the full-size sd15 architectures, and the published budget extrapolated to GPU-hours and
    dollars (separate columns; '-' where the method publishes no budget). The extrapolation is derived
    here from the current sd15 FLOPs table, budgets and prices (as the claims audit does), not read from
    rows stored when each run trained: those go stale when any of the three is measured again."""
    from .evaluate.cost import PriceTable, extrapolate, flops_at_published_scale, published_budgets

    frame = latest_runs(ResultsStore(results_path).read(), "train-")
    if frame.empty:
        return "(no cost rows yet: run `make study`)"
    scale = flops_at_published_scale()
    lines = ["| method/stage | trainable | share | measured s/step (batch) | measured GFLOPs/step | sd15 TFLOPs/sample | "
             "published samples | published GPU-h | extrapolated GPU-h | extrapolated $ |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    measured = frame[frame["benchmark"] == "cost/measured"]
    budgets, prices = published_budgets(), PriceTable.load()

    def value(rows: pd.DataFrame, metric: str, fmt: str) -> str:
        rows = rows[rows["metric"] == metric]["value"]
        return "-" if rows.empty else format(rows.iloc[-1], fmt)

    def derived(metrics: dict, key: str, fmt: str) -> str:
        return format(metrics[key], fmt) if key in metrics else "-"

    for name in ordered_methods(measured["method"].unique()):
        rows = measured[measured["method"] == name]
        for language in sorted(rows["language"].unique())[:1]:  # per-language runs cost the same; show one
            for stage in dict.fromkeys(rows[rows["language"] == language]["stage"]):
                mine = rows[(rows["stage"] == stage) & (rows["language"] == language)]
                flops = mine[mine["metric"] == "flops_per_step"]["value"]
                sd15 = scale.get(f"{name}/{stage}")
                extra, _ = extrapolate(budgets.get(f"{name}/{stage}"), flops_per_sample=sd15, prices=prices)
                lines.append(
                    f"| {name}/{stage} | {value(mine, 'trainable_parameters', ',.0f')} | "
                    f"{value(mine, 'trainable_share_pct', '.1f')}% | {value(mine, 'seconds_per_step', '.2f')} "
                    f"({value(mine, 'batch_size', '.0f')}) | {'-' if flops.empty else f'{flops.iloc[-1] / 1e9:,.0f}'} | "
                    f"{'-' if sd15 is None else f'{sd15 / 1e12:.2f}'} | {derived(extra, 'published_samples', ',.0f')} | "
                    f"{derived(extra, 'published_gpu_hours', ',.0f')} | {derived(extra, 'extrapolated_gpu_hours', ',.0f')} | "
                    f"{derived(extra, 'extrapolated_dollars', ',.0f')} |")
    return "\n".join(lines)
