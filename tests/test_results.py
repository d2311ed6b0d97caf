"""The results table: tidy rows with provenance, atomic appends, clear errors on malformed files."""

import multiprocessing
import os

import pandas as pd
import pytest

from xlcore.config import load_preset
from xlcore.errors import DataFormatError
from xlcore.results import COLUMNS, ResultsStore


def rows_for(store, run_id="r1", metrics=None, language="de"):
    return store.make_rows(
        run_id=run_id, config=load_preset("toy", smoke=True), seed=0, method="trikd", stage="itc",
        language=language, benchmark="polyglot-shapes/retrieval-test", metrics=metrics or {"mean_recall": 71.5},
        protocol="t2i+i2t, one caption", notes="",
    )


def test_append_and_read_round_trip_with_provenance(tmp_path):
    store = ResultsStore(tmp_path / "results.csv")
    assert store.read().empty and list(store.read().columns) == list(COLUMNS)
    store.append(rows_for(store, metrics={"r@1": 40.0, "r@5": 80.25}))
    store.append(rows_for(store, run_id="r2", language="ja"))
    frame = store.read()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    assert frame["value"].tolist() == [40.0, 80.25, 71.5]
    assert frame["value"].dtype == "float64" and frame["seed"].dtype == "int64"
    first = frame.iloc[0]
    assert first["preset"] == "toy" and first["method"] == "trikd" and first["config_hash"]
    assert first["git_commit"] and first["hardware"] and first["timestamp"].endswith("+00:00")
    assert store.run_ids() == {"r1", "r2"}


def test_config_is_kept_once_per_hash(tmp_path):
    store = ResultsStore(tmp_path / "results.csv")
    config = load_preset("toy", smoke=True)
    path = store.save_config(config)
    assert path.exists() and store.save_config(config) == path
    assert len(list(store.configs_dir.iterdir())) == 1


def test_per_prompt_outcomes_round_trip_by_language_and_benchmark(tmp_path):
    import math

    store = ResultsStore(tmp_path / "results.csv")
    store.save_per_prompt("cell-x", "de", "prompts", {"compositional_all": [1, 0, -1]})
    store.save_per_prompt("cell-x", "en", "prompts", {"compositional_all": [0, 0, 1]})
    stored = store.per_prompt("cell-x")
    assert stored["en"]["prompts"]["compositional_all"] == [0.0, 0.0, 1.0]
    de = stored["de"]["prompts"]["compositional_all"]
    assert de[:2] == [1.0, 0.0] and math.isnan(de[2])
    assert store.per_prompt("cell-unknown") == {}
    (tmp_path / "per_prompt" / "cell-x.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="cell-x.json.*not JSON"):
        store.per_prompt("cell-x")


def test_a_crash_during_write_leaves_the_previous_table_intact(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "results.csv")
    store.append(rows_for(store))
    before = store.path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        store.append(rows_for(store, run_id="r2"))
    assert store.path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "temporary file left behind"


@pytest.mark.parametrize("corrupt,problem", [
    ("r9,toy,trikd\n", "expected 15 fields, found 3"),
    ("{},toy,m,s,de,b,metric,not-a-number,,,h,0,c,hw,t\n", "value 'not-a-number' is not a number"),
    ("{},toy,m,s,de,b,metric,1.0,,,h,zero,c,hw,t\n", "seed 'zero' is not an integer"),
])
def test_malformed_rows_name_the_file_and_line(tmp_path, corrupt, problem):
    store = ResultsStore(tmp_path / "results.csv")
    store.append(rows_for(store))
    with open(store.path, "a") as handle:
        handle.write(corrupt.replace("{}", "r9"))
    with pytest.raises(DataFormatError) as err:
        store.read()
    assert "results.csv, line 3" in str(err.value) and problem in str(err.value)
    with pytest.raises(DataFormatError):  # and nothing is appended onto a corrupt table
        store.append(rows_for(store, run_id="r3"))


def test_wrong_header_is_reported(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataFormatError, match="line 1: header"):
        ResultsStore(path).read()


def test_values_must_be_numbers(tmp_path):
    store = ResultsStore(tmp_path / "results.csv")
    row = rows_for(store)[0]
    import dataclasses

    with pytest.raises(TypeError, match="must be a number"):
        store.append([dataclasses.replace(row, value="high")])


def _append_many(path, worker):
    store = ResultsStore(path)
    for i in range(15):
        store.append(rows_for(store, run_id=f"w{worker}-{i}"))


def test_concurrent_writers_never_lose_or_interleave_rows(tmp_path):
    path = tmp_path / "results.csv"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    frame = ResultsStore(path).read()
    assert len(frame) == 45 and frame["run_id"].nunique() == 45
