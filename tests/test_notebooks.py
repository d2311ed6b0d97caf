"""Notebooks run through papermill at smoke size; the values they print are read back and checked."""

import ast
import json
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def parameters_cell(path: Path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    return notebook, tagged[0]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.rglob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_have_a_literal_parameters_cell_and_no_outputs(path):
    notebook, cell = parameters_cell(path)
    for statement in ast.parse(cell.source).body:
        assert isinstance(statement, ast.AnnAssign), f"{path.name}: parameters are typed assignments"
        ast.literal_eval(statement.value)  # literals only: derived values belong in later cells
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "commit notebooks without outputs"


def last_json_output(executed: Path) -> dict:
    notebook = nbformat.read(executed, as_version=4)
    texts = ["".join(o.get("text", "")) for c in notebook.cells if c.cell_type == "code" for o in c.outputs
             if o.get("name") == "stdout"]
    return json.loads(texts[-1][texts[-1].index("{"):])


@pytest.mark.slow
def test_pretraining_notebook_runs_at_smoke_size(tmp_path):
    executed = tmp_path / "pretrain.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "00_pretrain_toy_backbone.ipynb"), str(executed), kernel_name="python3", progress_bar=False,
        parameters={"smoke": True, "work_dir": str(tmp_path / "work"), "out_dir": str(tmp_path / "weights")},
    )
    metrics = last_json_output(executed)
    assert 0 <= metrics["mean_recall"] <= 100 and 0 <= metrics["scorer_all_heads_acc"] <= 100
    assert {"g1_single_shape_colour", "g4_pair_all"} <= set(metrics)
    info = json.loads((tmp_path / "weights" / "backbone.json").read_text())
    assert set(info["components"]) == {"scorer", "clip", "multilingual_unaligned", "multilingual", "language_model", "unet"}
    assert (tmp_path / "work" / "unet" / "train_log.jsonl").exists()
