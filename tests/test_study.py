"""The main job end to end (smoke size): outputs written, a rerun adds no rows, errors are clear."""

import json
import subprocess
import sys

import nbformat
import pytest

from xlcore.cli import main
from xlcore.results import ResultsStore


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "xlcore", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1800)


def last_json_output(executed):
    """The last JSON line an executed notebook printed (its summary)."""
    notebook = nbformat.read(executed, as_version=4)
    texts = ["".join(o.get("text", "")) for c in notebook.cells if c.cell_type == "code" for o in c.outputs
             if o.get("name") == "stdout" and "{" in "".join(o.get("text", ""))]
    return json.loads(texts[-1][texts[-1].index("{"):])


def test_smoke_study_writes_results_and_figures_and_resumes(tmp_path):
    args = ["study", "--smoke", "--set", f"output_dir={tmp_path / 'runs'}", "--set", f"figures_dir={tmp_path / 'fig'}"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Study finished in" in first.stdout and "Outputs:" in first.stdout
    results = ResultsStore(tmp_path / "runs" / "toy" / "results.csv")
    frame = results.read()
    assert (tmp_path / "fig" / "world_samples.png").stat().st_size > 10_000
    assert set(frame["language"]) == {"en", "de", "fr", "cs", "zh", "ja", "all"}
    distinct = frame.query("benchmark == 'polyglot-shapes/retrieval-test' and metric == 'distinct_descriptions'")
    assert distinct["value"].item() == 64  # the smoke retrieval test: 64 unique scenes
    share = frame.query("metric == 'culture_share_measured'")["value"]
    assert len(share) == 5 and share.between(0.0, 0.6).all()
    assert frame.query("metric == 'render_images_per_s'")["value"].item() > 100
    # every registered method is trained, costed and evaluated; the English pipeline is the reference row
    from xlcore.registry import METHODS
    from xlcore.report import cost_table, methods_table

    evaluated = frame[frame["run_id"].str.startswith("cell-")]
    assert set(evaluated["method"]) == set(METHODS.names()) | {"english-backbone"}
    for metric in ("mean_recall", "compositional_all", "compositional_overall", "culture_shape", "fid_scorer256",
                   "clip_score_raw_cos", "clip_score_torchmetrics", "clip_score_heim", "clip_score_100cos",
                   "consistency_clip_cos", "cococrola_correctness", "cococrola_self_consistency",
                   "cococrola_inverse_specificity"):
        assert metric in set(evaluated["metric"]), metric
    assert set(evaluated[evaluated["metric"] == "mean_recall"]["protocol"].str.split(" ").str[0]) == {
        "all-captions", "first-caption"}
    measured = frame[frame["benchmark"] == "cost/measured"]
    assert {"trikd", "pea", "full_finetune"} <= set(measured["method"])
    assert (measured[measured["metric"] == "flops_per_step"]["value"] > 0).all()
    # every method ran through its notebook: the executed copy's summary line matches its rows in the table
    for name in set(evaluated["method"]):
        cell = tmp_path / "runs" / "toy" / name / ("en" if name == "english-backbone" else "de") / "0"
        notebook = cell / ("evaluate.ipynb" if name == "english-backbone" else f"{name}.ipynb")
        summary = last_json_output(notebook)
        done = json.loads((cell / "done.json").read_text())
        mine = frame[frame["run_id"] == done["run_id"]]
        assert summary["rows"] == done["rows"] == len(mine) > 5
        for metric in ("compositional_all", "consistency_clip_cos", "clip_score_raw_cos", "fid_scorer256"):
            assert summary[metric] == pytest.approx(mine[mine["metric"] == metric]["value"].item())
    for name in ("quality_vs_cost", "quality_vs_parameters", "consistency_by_language", "side_by_side"):
        assert (tmp_path / "fig" / f"{name}.png").stat().st_size > 5_000 and (tmp_path / "fig" / f"{name}.svg").exists()
    retrieval = (tmp_path / "fig" / "tables" / "retrieval.md").read_text()
    assert "| trikd |" in retrieval and "(n=1)" in retrieval
    assert "\\begin{tabular}" in (tmp_path / "fig" / "tables" / "generation.tex").read_text()
    table = methods_table(results.path)
    assert all(f"| {name} |" in table for name in set(evaluated["method"]))
    assert "| GenEval overall | correct images |" in table
    # m-GenEval's reading from the per-prompt outcomes kept beside the table, against a direct computation
    from xlcore.analysis import cross_lingual_table

    cross = cross_lingual_table(results.path, frame)
    assert "right in every target language" in (tmp_path / "fig" / "tables" / "cross_lingual_compositional.md").read_text()
    cells = evaluated[(evaluated["method"] == "translate_oracle") & (evaluated["metric"] == "compositional_all")]
    judged = {row.language: results.per_prompt(row.run_id)[row.language][row.benchmark]["compositional_all"]
              for row in cells.itertuples() if row.language != "en"}
    every = [all(judged[lang][i] == 1.0 for lang in judged) for i in range(len(judged["de"]))]
    assert cross.loc["translate_oracle", "right in every target language"] == f"{100 * sum(every) / len(every):.1f} (n=1)"
    english = results.per_prompt(cells[cells["language"] == "en"]["run_id"].item())["en"]
    english = next(iter(english.values()))["compositional_all"]
    agree = sum(a == b for a, b in zip(english, judged["de"])) / len(english)  # the oracle's German is its English
    assert agree == 1.0 and cross.loc["translate_oracle", "agreement with English"] == "100.0 (n=1)"
    assert "| trikd/trikd |" in cost_table(results.path)

    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert len(results.read()) == len(frame), "a rerun must not duplicate rows"


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    assert main(["study", "--preset", "nope"]) == 2
    assert "error: unknown preset 'nope'" in capsys.readouterr().err
    assert main(["study", "--smoke", "--set", "world.seed=abc", "--set", f"output_dir={tmp_path}"]) == 2
    assert "expected an integer" in capsys.readouterr().err
    assert main(["study", "--smoke", "--set", "world.languages=[\"en\",\"xx\"]",
                 "--set", f"output_dir={tmp_path}"]) == 2
    assert "unknown language 'xx'" in capsys.readouterr().err
