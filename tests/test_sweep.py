"""The papermill sweep: grid, failure isolation, resume after a kill, parallel workers, SLURM arrays."""

import dataclasses
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from xlcore.cell import Cell
from xlcore.errors import ConfigError, UnknownLanguageError, UnknownMethodError
from xlcore.registry import METHODS
from xlcore.results import ResultsStore
from xlcore.sweep import NOTEBOOKS, SweepConfig, grid, run_sweep, slurm_script, summary

REPO = Path(__file__).resolve().parents[1]


def test_every_registered_method_has_a_notebook_and_every_notebook_a_method():
    notebooks = {p.stem for p in (NOTEBOOKS / "methods").glob("*.ipynb")}
    assert notebooks == set(METHODS.names())


def test_the_grid_trains_once_per_method_and_skips_english_for_per_language_methods():
    config = SweepConfig(methods=("pea", "trikd"), languages=("en", "de", "zh"), seeds=(0, 1))
    cells = grid(config)
    assert cells[0] == Cell("toy", "english-backbone", "en", 0)
    assert [c.key for c in cells if c.seed == 0] == [
        "english-backbone/en/0", "pea/de/0", "pea/zh/0", "trikd/en/0", "trikd/de/0", "trikd/zh/0"]
    assert len(cells) == 12
    with pytest.raises(UnknownLanguageError):
        grid(SweepConfig(languages=("de", "xx")))
    with pytest.raises(UnknownMethodError):
        grid(SweepConfig(methods=("nope",)))
    with pytest.raises(ConfigError, match="seed"):
        grid(SweepConfig(seeds=()))


def test_slurm_script_has_one_task_per_cell(tmp_path):
    config = SweepConfig(methods=("pea",), languages=("de", "zh"), seeds=(0, 1), output_dir=str(tmp_path))
    text = slurm_script(config, tmp_path / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-5" in text  # 2 seeds x (English reference + pea de + pea zh)
    assert "--cell-index $SLURM_ARRAY_TASK_ID" in text and "--methods pea" in text and "--seeds 0,1" in text


def sweep(tmp_path, **kw) -> SweepConfig:
    return SweepConfig(smoke=True, seeds=(0,), n_prompts=2, output_dir=str(tmp_path / "runs"), english_reference=False, **kw)


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, notebooks)
    broken = nbformat.read(notebooks / "methods" / "untrained.ipynb", as_version=4)
    broken.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('injected failure')"))
    nbformat.write(broken, notebooks / "methods" / "untrained.ipynb")
    config = sweep(tmp_path, methods=("untrained", "translate_oracle"), languages=("de",), notebooks=str(notebooks))
    outcomes = run_sweep(config, progress=False)
    assert [o.status for o in outcomes] == ["failed", "done"]
    error = (tmp_path / "runs" / "toy" / "untrained" / "de" / "0" / "error.txt").read_text()
    assert "injected failure" in error and "Traceback" in error
    assert "FAILED untrained/de/0" in summary(outcomes) and "1 failed" in summary(outcomes)
    frame = ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()
    assert set(frame["method"]) == {"translate_oracle"}
    # fixing the notebook and rerunning runs only the failed cell
    shutil.copy(NOTEBOOKS / "methods" / "untrained.ipynb", notebooks / "methods" / "untrained.ipynb")
    assert [o.status for o in run_sweep(config, progress=False)] == ["done", "skipped"]


def test_study_settings_reach_every_cell(tmp_path):
    config = sweep(tmp_path, methods=("translate_oracle",), languages=("de",),
                   overrides=("retrieval_captions_per_image=1", "evaluation.guidance_scale=2.5"))
    assert [o.status for o in run_sweep(config, progress=False)] == ["done"]
    params = json.loads((tmp_path / "runs" / "toy" / "translate_oracle" / "de" / "0" / "params.json").read_text())
    assert params["evaluation"]["retrieval_captions_per_image"] == 1
    assert params["evaluation"]["generation"]["guidance_scale"] == 2.5
    frame = ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()
    assert set(frame[frame["metric"] == "mean_recall"]["protocol"].str.split(" ").str[0]) == {"all-captions"}
    assert [o.status for o in run_sweep(config, progress=False)] == ["skipped"]  # recorded under the same settings


def test_two_workers_share_one_training_run(tmp_path):
    """Parallel workers (one per GPU on a GPU box; here two CPU workers) start two languages of a method
    trained once for all languages at the same time: one trains, the other waits and reuses it."""
    config = sweep(tmp_path, methods=("translate",), languages=("de", "zh"), gpus=(0, 1))
    outcomes = run_sweep(config, progress=False)
    assert [o.status for o in outcomes] == ["done", "done"]
    frame = ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()
    assert frame[frame["run_id"].str.startswith("train-")]["run_id"].nunique() == 1
    assert (tmp_path / "runs" / "toy" / "translate" / "all" / "0" / "train" / "method" / "method.json").exists()
    # A fresh clone: the table is there, the runs are not. A plain rerun skips everything; --retrain
    # trains the weights again without writing a single row twice.
    rows = len(frame)
    shutil.rmtree(tmp_path / "runs" / "toy" / "translate")
    assert [o.status for o in run_sweep(config, progress=False)] == ["skipped", "skipped"]
    retrain = dataclasses.replace(config, retrain=True, gpus=())
    assert [o.status for o in run_sweep(retrain, progress=False)] == ["done", "done"]
    assert (tmp_path / "runs" / "toy" / "translate" / "all" / "0" / "train" / "method" / "method.json").exists()
    assert len(ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()) == rows


def test_learning_curve_points_are_cells_of_their_own_for_trained_methods_and_curve_seeds():
    config = SweepConfig(methods=("translate", "untrained"), languages=("de",), seeds=(0, 1), curve_budgets=(0.25, 0.5),
                         curve_seeds=(0,))
    keys = [c.key for c in grid(config)]
    assert keys == ["english-backbone/en/0", "translate/de/0", "untrained/de/0", "translate/de/0-b0.25",
                    "translate/de/0-b0.5", "english-backbone/en/1", "translate/de/1", "untrained/de/1"]
    with pytest.raises(ConfigError, match="in \\(0, 1\\]"):
        grid(dataclasses.replace(config, curve_budgets=(1.5,)))
    text = slurm_script(config, Path("/tmp") / "curve.sbatch").read_text()
    assert "--array=0-7" in text and "--curve-budgets 0.25,0.5 --curve-seeds 0" in text


def test_a_learning_curve_point_trains_its_own_shorter_run_beside_the_full_one(tmp_path):
    config = sweep(tmp_path, methods=("translate",), languages=("de",), curve_budgets=(0.5,))
    assert [o.status for o in run_sweep(config, progress=False)] == ["done", "done"]
    root = tmp_path / "runs" / "toy" / "translate"
    full, half = root / "all" / "0" / "train", root / "all" / "0-b0.5" / "train"
    assert (full / "method" / "method.json").exists() and (half / "method" / "method.json").exists()
    assert (root / "de" / "0-b0.5" / "done.json").exists()
    frame = ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()
    steps = frame[frame["metric"] == "train_steps"].groupby("run_id")["value"].sum().sort_values().tolist()
    assert len(steps) == 2 and steps[0] < steps[1]  # two training runs, the curve point shorter
    assert [o.status for o in run_sweep(config, progress=False)] == ["skipped", "skipped"]


def test_other_method_settings_in_the_same_folder_train_their_own_run_and_keep_the_first(tmp_path):
    """A cell and a train folder are named by method, language, seed and budget only: a sweep with another
    setting must not take the finished cell (or resume the other run's checkpoints) as its own."""
    first = sweep(tmp_path, methods=("translate",), languages=("de",), executor="python")
    assert [o.status for o in run_sweep(first, progress=False)] == ["done"]
    other = dataclasses.replace(first, overrides=("translate.width=64",))
    assert [o.status for o in run_sweep(other, progress=False)] == ["done"]  # run, not skipped
    root = tmp_path / "runs" / "toy" / "translate" / "all" / "0"
    frame = ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()
    training_ids = sorted(frame[frame["run_id"].str.startswith("train-")]["run_id"].unique())
    assert len(training_ids) == 2 and frame["run_id"].str.startswith("cell-translate-de").sum() > 0
    assert frame[frame["run_id"].str.startswith("cell-")]["run_id"].nunique() == 2
    held = (root / "train" / "training_id").read_text().strip()
    aside = [p for p in root.iterdir() if p.name.startswith("train-")]
    assert len(aside) == 1 and (aside[0] / "method" / "method.json").exists()  # the first run, kept
    assert {held, aside[0].name.removeprefix("train-")} == set(training_ids)
    # back to the first settings: everything is recorded, nothing trains
    assert [o.status for o in run_sweep(first, progress=False)] == ["skipped"]


def test_a_train_folder_holding_another_run_moves_aside_and_comes_back(tmp_path):
    from xlcore.cell import claim_train_dir

    folder = tmp_path / "train"
    claim_train_dir(folder, "train-a")
    (folder / "stage").mkdir()
    (folder / "stage" / "weights").write_text("a's")
    claim_train_dir(folder, "train-a")  # the same run: kept in place
    assert (folder / "stage" / "weights").read_text() == "a's"
    claim_train_dir(folder, "train-b")
    assert not (folder / "stage").exists() and (folder / "training_id").read_text().strip() == "train-b"
    assert (tmp_path / "train-train-a" / "stage" / "weights").read_text() == "a's"
    (folder / "stage").mkdir()
    claim_train_dir(folder, "train-a")  # back: b's moves aside, a's returns
    assert (folder / "stage" / "weights").read_text() == "a's" and (tmp_path / "train-train-b" / "stage").exists()
    # written before training ids: kept only if its saved method is this run (settings, seed, backbone)
    legacy = tmp_path / "legacy" / "train"
    (legacy / "method").mkdir(parents=True)
    (legacy / "method" / "method.json").write_text(json.dumps({"config": {"width": 128}}))
    claim_train_dir(legacy, "train-c", lambda meta: meta["config"] == {"width": 128})
    assert (legacy / "method").exists() and (legacy / "training_id").read_text().strip() == "train-c"
    (legacy / "training_id").unlink()
    claim_train_dir(legacy, "train-d", lambda meta: meta["config"] == {"width": 64})
    assert (tmp_path / "legacy" / "train-unrecorded" / "method" / "method.json").exists()
    assert (legacy / "training_id").read_text().strip() == "train-d" and not (legacy / "method").exists()
