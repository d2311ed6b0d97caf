"""The study's tables and figures, drawn only from the results table (the analysis notebook calls these).

Every number is the mean over seeds of the latest run of each (method, language, seed) cell, with the
standard deviation over seeds beside it ("n=1" where only one seed ran: no error bar is invented).

- `retrieval_table`: world retrieval mean recall (first-caption protocol), method x language;
- `generation_table`: world FID, CLIP score, compositional accuracy, culture accuracy and consistency,
  method x language;
- `quality_cost_figure`: quality (consistency with the English pipeline, the clearest generation signal
  on the toy world) against measured training time, with the Pareto front;
- `parameter_efficiency_figure`: the same quality against trainable parameters;
- `learning_curve_figure`: the same quality against training time at every budget point of each method
  (the sweep's `curve_budgets`), one curve per method, with the Pareto front over all points;
- `language_bars`: one metric per method and language, with error bars over seeds.

Tables come as Markdown or LaTeX (`to_markdown` / `to_latex`); figures as PNG + SVG via `save_figure`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import matplotlib.ticker
import numpy as np
import pandas as pd

from .config import LANGUAGES
from .plotting import plt, save_figure, use_world_fonts
from .report import latest_runs, method_cost, ordered_methods, run_budget
from .results import ResultsStore

log = logging.getLogger(__name__)

GENERATION_METRICS = {  # metric -> (column label, format, higher is better)
    "fid_scorer256": ("world FID (scorer features)", ".0f", False),
    "clip_score_raw_cos": ("CLIP score (raw cos, English caption)", ".3f", True),
    "compositional_overall": ("compositional accuracy, GenEval overall (mean over task groups)", ".1f", True),
    "compositional_all": ("compositional accuracy, correct images (all asked right, pooled)", ".1f", True),
    "culture_shape": ("culture concept drawn", ".1f", True),
    "consistency_clip_cos": ("consistency with English image", ".3f", True),
    "cococrola_correctness": ("CoCo-CroLa correctness (vs own English images)", ".3f", True),
    "cococrola_self_consistency": ("CoCo-CroLa self-consistency", ".3f", True),
    "cococrola_inverse_specificity": ("CoCo-CroLa inverse specificity", ".3f", False),
}
QUALITY = "consistency_clip_cos"


def cell_values(frame: pd.DataFrame, metric: str, protocol_prefix: str | None = None) -> pd.DataFrame:
    """One value per (method, language, seed) for `metric` from the latest cell runs."""
    cells = latest_runs(frame, "cell-")
    rows = cells[cells["metric"] == metric]
    if protocol_prefix and rows["protocol"].str.startswith(protocol_prefix).any():
        rows = rows[rows["protocol"].str.startswith(protocol_prefix)]
    return rows.groupby(["method", "language", "seed"], as_index=False)["value"].mean()


def summarise_seeds(values: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, standard deviation (over seeds; NaN for one seed) and seed count per group."""
    grouped = values.groupby(by)["value"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()}).reset_index()


def _cell(mean: float, std: float, n: int, fmt: str) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:{fmt}} ± {std:{fmt}}" if n > 1 and not math.isnan(std) else f"{mean:{fmt}} (n=1)"


def retrieval_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean recall (first-caption protocol) per method (rows) and language (columns), with an average column."""
    values = cell_values(frame, "mean_recall", "first-caption")
    if values.empty:
        return pd.DataFrame()
    stats = summarise_seeds(values, ["method", "language"])
    table = stats.pivot(index="method", columns="language", values="mean")
    spread = stats.pivot(index="method", columns="language", values="std")
    counts = stats.pivot(index="method", columns="language", values="n")
    languages = [lang for lang in LANGUAGES if lang in table.columns]
    out = pd.DataFrame(index=ordered_methods(table.index))
    for lang in languages:
        out[lang] = [_cell(table.at[m, lang], spread.at[m, lang], counts.at[m, lang], ".1f")
                     if not pd.isna(table.at[m, lang]) else "-" for m in out.index]
    out["average"] = [f"{table.loc[m, languages].mean():.1f}" for m in out.index]
    out.index.name = "method"
    return out


def generation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Each generation metric (columns) per method and language (rows), mean ± std over seeds."""
    parts = []
    for metric, (label, fmt, _) in GENERATION_METRICS.items():
        values = cell_values(frame, metric)
        if values.empty:
            continue
        stats = summarise_seeds(values, ["method", "language"])
        stats[label] = [_cell(r["mean"], r["std"], r["n"], fmt) for _, r in stats.iterrows()]
        parts.append(stats.set_index(["method", "language"])[[label]])
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, axis=1).fillna("-")
    order = {m: i for i, m in enumerate(ordered_methods(table.index.get_level_values(0).unique()))}
    return table.sort_index(key=lambda idx: idx.map(order) if idx.name == "method" else idx)


def cross_lingual_table(results_path: str | Path, frame: pd.DataFrame, metric: str = "compositional_all") -> pd.DataFrame:
    """m-GenEval's cross-lingual reading of the per-prompt judgement `metric` (kept beside the table,
    `ResultsStore.per_prompt`): per method, the share of prompts judged right in every target language it
    was evaluated in, and the mean agreement of each target language's judgement with its English one
    (where the method has an English cell), mean ± std over seeds. Empty until cells stored per-prompt
    outcomes."""
    import torch

    from .evaluate.compositional import all_languages_correct

    store = ResultsStore(results_path)
    cells = latest_runs(frame, "cell-")
    runs = cells[cells["metric"] == metric][["method", "language", "seed", "run_id", "benchmark"]].drop_duplicates()
    records = []
    for (method, seed), group in runs.groupby(["method", "seed"]):
        outcomes = {}
        for row in group.itertuples():
            values = store.per_prompt(row.run_id).get(row.language, {}).get(row.benchmark, {}).get(metric)
            if values is not None:
                outcomes[row.language] = torch.tensor(values)
        targets = {lang: v for lang, v in outcomes.items() if lang != "en"}
        if not targets:
            continue
        both = all_languages_correct({**({"en": outcomes["en"]} if "en" in outcomes else {}), **targets})
        every = all_languages_correct(targets)["all_languages"]
        agreement = [v for k, v in both.items() if k.startswith("agrees_with_en/")]
        records += [{"method": method, "seed": seed, "quantity": "right in every target language", "value": every}]
        if agreement:
            records.append({"method": method, "seed": seed, "quantity": "agreement with English",
                            "value": sum(agreement) / len(agreement)})
    if not records:
        return pd.DataFrame()
    stats = summarise_seeds(pd.DataFrame(records), ["method", "quantity"])
    stats["cell"] = [_cell(r["mean"], r["std"], r["n"], ".1f") for _, r in stats.iterrows()]
    table = stats.pivot(index="method", columns="quantity", values="cell").fillna("-")
    columns = [c for c in ("right in every target language", "agreement with English") if c in table.columns]
    return table.loc[ordered_methods(table.index), columns]


def method_quality(frame: pd.DataFrame, metric: str = QUALITY) -> pd.DataFrame:
    """Per method: `metric` over its non-English cells (English for the backbone), mean and std over seeds."""
    values = cell_values(frame, metric)
    values = values[(values["language"] != "en") | (values["method"] == "english-backbone")]
    per_seed = values.groupby(["method", "seed"], as_index=False)["value"].mean()
    return summarise_seeds(per_seed, ["method"]).set_index("method")


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two paired sequences (ties in either count as neither concordant nor discordant, and
    shrink the normaliser, as scipy.stats.kendalltau's default)."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denominator = np.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return float((concordant - discordant) / denominator) if denominator else float("nan")


def seed_agreement(frame: pd.DataFrame, metric: str = QUALITY) -> pd.DataFrame:
    """Whether the methods rank alike in every seed: Kendall's tau-b between each pair of seeds of the methods'
    `metric` over their target-language cells (every method that both seeds have but the English backbone)."""
    values = cell_values(frame, metric)
    values = values[(values["language"] != "en") & (values["method"] != "english-backbone")]
    per_seed = values.groupby(["seed", "method"])["value"].mean().unstack("method")
    rows = []
    seeds = sorted(per_seed.index)
    for a in range(len(seeds)):
        for b in range(a + 1, len(seeds)):
            pair = per_seed.loc[[seeds[a], seeds[b]]].dropna(axis=1)
            rows.append({"seeds": f"{seeds[a]} vs {seeds[b]}", "methods": pair.shape[1],
                         f"Kendall's tau ({METRIC_LABELS.get(metric, metric)})":
                             round(kendall_tau(pair.iloc[0].tolist(), pair.iloc[1].tolist()), 3)})
    return pd.DataFrame(rows).set_index("seeds") if rows else pd.DataFrame()


def audit_claims(results_path: str | Path, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The claims audit (`xlcore.claims`) with this study's quality per method from the results table."""
    from .claims import AUDITED_QUALITY, claims_audit

    if frame is None:
        frame = ResultsStore(results_path).read() if Path(results_path).exists() else pd.DataFrame()
    quality = {}
    for metric in AUDITED_QUALITY:
        table = method_quality(frame, metric) if not frame.empty else pd.DataFrame()
        quality[metric] = table["mean"] if not table.empty else pd.Series(dtype=float)
    return claims_audit(quality)


COST_AXES = {  # column of `quality_points` -> axis title
    "trainable_parameters": "trainable parameters (largest stage)",
    "train_seconds": "measured training time (s, the study's machine)",
    "extrapolated_gpu_hours": "GPU-hours at the published budget (extrapolated from measured FLOPs)",
}


def extrapolated_gpu_hours(frame: pd.DataFrame) -> pd.Series:
    """Per method: GPU-hours of its published training budget, summed over stages (methods without one: absent)."""
    trained = latest_runs(frame, "train-")
    rows = trained[(trained["benchmark"] == "cost/extrapolated") & (trained["metric"] == "extrapolated_gpu_hours")]
    per_run = rows.groupby(["method", "run_id"])["value"].sum()
    return per_run.groupby("method").mean()


def quality_points(frame: pd.DataFrame, metric: str = QUALITY, language: str | None = None) -> pd.DataFrame:
    """One row per method: `metric` (mean and std over seeds) in `language` (None: over the method's
    non-English languages, English for the backbone), its costs (`COST_AXES`), and whether it lies on the
    Pareto front of quality against each cost (`front_<cost column>`; higher quality and lower cost win;
    metrics where lower is better are flipped)."""
    values = cell_values(frame, metric, "first-caption" if metric == "mean_recall" else None)
    if language is None:
        values = values[(values["language"] != "en") | (values["method"] == "english-backbone")]
    else:
        values = values[values["language"] == language]
    per_seed = values.groupby(["method", "seed"], as_index=False)["value"].mean()
    points = summarise_seeds(per_seed, ["method"]).set_index("method")
    points = points.join(method_cost(frame)).join(extrapolated_gpu_hours(frame).rename("extrapolated_gpu_hours"))
    higher_better = GENERATION_METRICS.get(metric, (None, None, True))[2]
    for column in COST_AXES:
        on_front, best = set(), -np.inf
        candidates = points.dropna(subset=[column, "mean"])
        candidates = candidates[candidates[column] > 0]
        if column == "train_seconds" and "time_complete" in candidates:
            candidates = candidates[candidates["time_complete"].fillna(False).astype(bool)]
        for name, row in candidates.sort_values(column).iterrows():
            score = row["mean"] if higher_better else -row["mean"]
            if score > best:
                on_front.add(name)
                best = score
        points[f"front_{column}"] = [name in on_front for name in points.index]
    points.index.name = "method"
    return points.loc[ordered_methods(points.index)].reset_index()


METRIC_LABELS = {**{m: label for m, (label, _, _) in GENERATION_METRICS.items()},
                 "mean_recall": "retrieval mean recall (first-caption protocol)"}
REFERENCES = (("english-backbone", "--"), ("untrained", ":"))


def _short_number(value: float, _position=None) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def quality_figure(points: pd.DataFrame, metric: str = QUALITY, cost: str = "train_seconds", *, title: str = "",
                   x_label: str | None = None, pareto: bool = True):
    """`quality_points(...)` drawn: each method at its cost (log scale) and mean quality with its std over
    seeds as an error bar and its name beside it; the English backbone and the untrained floor as
    reference lines; the Pareto front in the metric's own direction (lower FID is better). Training times
    that are lower bounds (stages trained untimed) are hollow and never on the front."""
    use_world_fonts()
    higher_better = GENERATION_METRICS.get(metric, (None, None, True))[2]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    data = points.set_index("method")
    references = {name: data.at[name, "mean"] for name, _ in REFERENCES if name in data.index and pd.notna(data.at[name, "mean"])}
    data = data.dropna(subset=[cost, "mean"])
    data = data[data[cost] > 0]
    if data.empty:
        ax.text(0.5, 0.5, "no trained method has both numbers yet", ha="center", transform=ax.transAxes)
        return fig
    complete = data["time_complete"].fillna(True).astype(bool) if cost == "train_seconds" else pd.Series(True, data.index)
    for hollow, part in ((False, data[complete]), (True, data[~complete])):
        ax.errorbar(part[cost], part["mean"], yerr=part["std"].fillna(0), fmt="o", capsize=3, color="tab:blue",
                    markerfacecolor="white" if hollow else "tab:blue",
                    label="training time a lower bound (some stages untimed)" if hollow and len(part) else None)
    for name, row in data.iterrows():
        ax.annotate(name if complete[name] else f"{name} (≥)", (row[cost], row["mean"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    front = data[data[f"front_{cost}"].astype(bool)].sort_values(cost) if pareto and f"front_{cost}" in data else data[:0]
    if len(front):
        ax.step(front[cost], front["mean"], where="post", color="tab:red", alpha=0.6, label="Pareto front")
    for name, style in REFERENCES:
        if name in references:
            ax.axhline(references[name], color="grey", linestyle=style, linewidth=1)
            ax.annotate(name, (0.99, references[name]), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                        fontsize=7, color="grey")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_xscale("log")
    # 1, 2, 5 per decade with short labels (200k, 1M): matplotlib's minor labels overlap at these widths
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_short_number))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel((x_label or COST_AXES.get(cost, cost)) + " (log scale)")
    ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} ({'higher' if higher_better else 'lower'} is better)")
    n = int(data["n"].max()) if "n" in data else 0
    ax.set_title(f"{title or 'Quality against cost'}\n(toy world; error bars: std over {n} seed{'s' if n != 1 else ''})",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _scatter(frame: pd.DataFrame, x_column: str, x_label: str, title: str, pareto: bool):
    return quality_figure(quality_points(frame), QUALITY, x_column, title=title, x_label=x_label, pareto=pareto)


def quality_cost_figure(frame: pd.DataFrame):
    return _scatter(frame, "train_seconds", "measured training time (s, 2 CPU cores)", "Quality against training cost",
                    pareto=True)


def parameter_efficiency_figure(frame: pd.DataFrame):
    return _scatter(frame, "trainable_parameters", "trainable parameters (largest stage)",
                    "Quality against trainable parameters", pareto=True)


def curve_points(frame: pd.DataFrame, metric: str = QUALITY) -> pd.DataFrame:
    """One row per (method, budget) of every trained method: `metric` over its non-English cells (mean and
    std over seeds) and its measured training time at that budget (`method_cost`), with `front`: whether the
    point is on the Pareto front of quality against training time over all points of all methods."""
    cells = latest_runs(frame, "cell-", budget=None)
    rows = cells[(cells["metric"] == metric) & (cells["language"] != "en")]
    if rows.empty:
        return pd.DataFrame(columns=["method", "budget", "mean", "std", "n", "train_seconds", "front"])
    rows = rows.assign(budget=run_budget(rows["run_id"]))
    per_seed = rows.groupby(["method", "budget", "seed"], as_index=False)["value"].mean()
    points = summarise_seeds(per_seed, ["method", "budget"])
    seconds = {budget: method_cost(frame, budget)["train_seconds"] for budget in points["budget"].unique()}
    points["train_seconds"] = [seconds[b].get(m, np.nan) for m, b in zip(points["method"], points["budget"])]
    points = points[points["train_seconds"] > 0]  # the references train nothing: lines, not points
    higher_better = GENERATION_METRICS.get(metric, (None, None, True))[2]
    best, front = -np.inf, []
    for index, row in points.sort_values("train_seconds").iterrows():
        score = row["mean"] if higher_better else -row["mean"]
        if score > best:
            front.append(index)
            best = score
    points["front"] = points.index.isin(front)
    return points.sort_values(["method", "budget"]).reset_index(drop=True)


def learning_curve_figure(frame: pd.DataFrame, metric: str = QUALITY):
    """Quality against measured training time, one curve per trained method through its budget points
    (learning-curve cells, issue 20), the Pareto front over every point, and the references as lines."""
    use_world_fonts()
    points = curve_points(frame, metric)
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    if points.empty:
        ax.text(0.5, 0.5, "no trained method has evaluated runs yet", ha="center", transform=ax.transAxes)
        return fig
    for i, name in enumerate(ordered_methods(points["method"].unique())):
        mine = points[points["method"] == name].sort_values("train_seconds")
        color = plt.get_cmap("tab20").colors[i % 20]
        ax.errorbar(mine["train_seconds"], mine["mean"], yerr=mine["std"].fillna(0), marker="o", capsize=2,
                    color=color, label=f"{name} ({', '.join(f'{b:g}' for b in mine['budget'])})")
    front = points[points["front"]].sort_values("train_seconds")
    ax.step(front["train_seconds"], front["mean"], where="post", color="black", alpha=0.5, linewidth=2,
            label="Pareto front (all points)")
    references = method_quality(frame, metric)["mean"]
    for name, style in REFERENCES:
        if name in references.index and pd.notna(references[name]):
            ax.axhline(references[name], color="grey", linestyle=style, linewidth=1)
            ax.annotate(name, (0.99, references[name]), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                        fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_short_number))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_short_number))
    ax.set_xlabel("measured training time (s, the study's machine; log scale)")
    higher_better = GENERATION_METRICS.get(metric, (None, None, True))[2]
    ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} ({'higher' if higher_better else 'lower'} is better)")
    ax.set_title("Quality against training compute: each method at its budget points (shares in the legend)\n"
                 "(toy world, target languages; error bars: std over seeds)", fontsize=9)
    ax.legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def language_bars(frame: pd.DataFrame, metric: str = QUALITY):
    """Grouped bars: `metric` per language (groups) and method (bars), error bars over seeds."""
    use_world_fonts()
    values = cell_values(frame, metric)
    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    if values.empty:
        ax.text(0.5, 0.5, f"no {metric} rows yet", ha="center", transform=ax.transAxes)
        return fig
    stats = summarise_seeds(values, ["method", "language"])
    methods = ordered_methods(stats["method"].unique())
    languages = [lang for lang in LANGUAGES if lang in set(stats["language"])]
    width = 0.8 / len(methods)
    for i, name in enumerate(methods):
        mine = stats[stats["method"] == name].set_index("language")
        xs = [j + i * width for j, lang in enumerate(languages) if lang in mine.index]
        ys = [mine.at[lang, "mean"] for lang in languages if lang in mine.index]
        errors = [0 if pd.isna(mine.at[lang, "std"]) else mine.at[lang, "std"] for lang in languages if lang in mine.index]
        ax.bar(xs, ys, width, yerr=errors, capsize=2, label=name, color=plt.get_cmap("tab20").colors[i % 20])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(languages))], languages)
    ax.set_ylabel(GENERATION_METRICS.get(metric, (metric,))[0])
    ax.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table (index columns first), without pandas' optional tabulate dependency."""
    flat = table.reset_index()
    header = "| " + " | ".join(str(c) for c in flat.columns) + " |"
    rule = "| " + " | ".join("---" for _ in flat.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in flat.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_analysis(results_path: str | Path, figures_dir: str | Path, tables_dir: str | Path | None = None) -> list[Path]:
    """Every table (Markdown and LaTeX) and figure (PNG and SVG) of the analysis; returns the paths."""
    frame = ResultsStore(results_path).read()
    figures_dir = Path(figures_dir)
    tables_dir = Path(tables_dir or figures_dir / "tables")
    tables_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tables = (("retrieval", retrieval_table(frame)), ("generation", generation_table(frame)),
              ("cross_lingual_compositional", cross_lingual_table(results_path, frame)),
              ("claims_audit", audit_claims(results_path, frame).set_index("claim")),
              ("seed_agreement", seed_agreement(frame)))
    for name, table in tables:
        if table.empty:
            continue
        for suffix, text in ((".md", to_markdown(table)), (".tex", table.to_latex(escape=True))):
            path = tables_dir / f"{name}{suffix}"
            path.write_text(text + "\n")
            written.append(path)
    written += save_figure(quality_cost_figure(frame), figures_dir / "quality_vs_cost")
    written += save_figure(parameter_efficiency_figure(frame), figures_dir / "quality_vs_parameters")
    written += save_figure(language_bars(frame), figures_dir / "consistency_by_language")
    if not frame.empty and (run_budget(frame["run_id"]) < 1.0).any():  # drawn once the grid has curve points
        written += save_figure(learning_curve_figure(frame), figures_dir / "learning_curves")
    return written


__all__ = ["cross_lingual_table", "curve_points", "generation_table", "language_bars", "learning_curve_figure",
           "parameter_efficiency_figure", "quality_cost_figure", "retrieval_table", "write_analysis"]


def side_by_side_grid(output_dir: str | Path, preset: str = "toy", seed: int = 0, prompt_index: int = 0,
                      languages: tuple[str, ...] = LANGUAGES, steps: int = 25,
                      guidance_scale: float = 4.0):
    """The same prompt in every language through every trained method (rows) and the English backbone,
    with the same noise: what cross-lingual consistency measures, as pictures. Methods not trained for a
    language (per-language methods) leave that square empty. Returns the figure."""
    from .cell import ENGLISH_BACKBONE
    from .evaluate.generation import seeds_for
    from .serving import Catalogue

    use_world_fonts()
    catalogue = Catalogue(output_dir, preset, seed, languages=languages, steps=steps, guidance_scale=guidance_scale)
    prompt = catalogue.world.generation_prompts()[prompt_index]
    noise = seeds_for([prompt], seed)[0]  # the noise the evaluation gave this prompt
    names = [ENGLISH_BACKBONE] + [name for name, entry in catalogue.entries.items()
                                  if entry.folders or not entry.trainable]
    fig, axes = plt.subplots(len(names), len(languages), figsize=(1.25 * len(languages) + 1.6, 1.25 * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        drawn = catalogue.draw_languages(name, {lang: prompt.captions[lang] for lang in languages}, seed=noise)
        for c, (lang, result) in enumerate(zip(languages, drawn)):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if result.ok:
                ax.imshow(result.image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            else:
                ax.set_facecolor("#eeeeee")
            if r == 0:
                ax.set_title(lang, fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"One prompt in {len(languages)} languages, same noise (seed {seed}), every method; grey: not "
                 "trained for that language", fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.text(0.02, 0.005, "\n".join(f"{lang}: {prompt.captions[lang]}" for lang in languages), fontsize=6, va="bottom")
    return fig


def trained_everywhere(output_dir: str | Path, preset: str, seed: int, languages: tuple[str, ...]) -> bool:
    """Whether every trainable method has its training run in `output_dir` (for all of `languages` if
    per-language)."""
    from .cell import Cell, train_dir
    from .methods._base import UntrainableMethod
    from .registry import METHODS

    for name in METHODS.names():
        cls = METHODS.get(name)
        if issubclass(cls, UntrainableMethod):
            continue
        scopes = [lang for lang in languages if lang != "en"] if cls.per_language else ["all"]
        for scope in scopes:
            if not (train_dir(output_dir, Cell(preset, name, scope, seed), cls.per_language) / "method" / "method.json").exists():
                return False
    return True
