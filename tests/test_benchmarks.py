"""The prepared GPU script runs unchanged on a CPU (sd15's small configs at 64 px, one method), and its
outputs are the table, the tidy rows and the device record."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlcore.results import ResultsStore

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_script_runs_on_the_cpu(tmp_path):
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(tmp_path), "--small", "--resolution", "64",
                             "--steps", "1", "--warmup", "1", "--methods", "pea"], cwd=REPO, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (tmp_path / "throughput.md").read_text()
    assert "| reference/unet | default |" in table and "| pea/adapter | default |" in table
    assert "| reference/unet | default | 8.5M |" in table and "| 1.00 |" in table  # the yardstick's own ratio
    frame = ResultsStore(tmp_path / "throughput.csv").read()
    assert set(frame["method"]) == {"reference_unet_finetune", "pea"}
    assert (frame[frame["metric"] == "samples_per_s"]["value"] > 0).all()
    device = json.loads((tmp_path / "device.json").read_text())
    assert device["preset"] == "sd15 (small configs)" and device["resolution"] == 64
    assert "no nvidia-smi" in (tmp_path / "nvidia-smi.csv").read_text()


@pytest.mark.slow
def test_the_data_loader_benchmark_runs_and_reports_every_path(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/data_loader.py",
                             "--samples", "32", "--batch-size", "8", "--workers", "0,2", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert len(rows) == 6 and all(value > 0 for value in rows.values())
    assert any("full SD 1.5 shapes" in name for name in rows)


def test_the_sampler_benchmark_reports_time_and_judgement_against_its_reference(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/sampler_steps.py", "--prompts", "3",
                             "--settings", "ddim:3,dpm++:2", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["sampler"], r["steps"]) for r in rows] == [("ddim", 3), ("dpm++", 2)]
    assert rows[0]["agreement_with_reference_pct"] == 100.0 and rows[0]["time_ratio_to_reference"] == 1.0
    assert all(r["seconds_per_image"] > 0 and 0 <= r["compositional_all"] <= 100 for r in rows)
    bad = subprocess.run([sys.executable, "benchmarks/sampler_steps.py", "--settings", "euler:5"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "bad setting 'euler:5'" in bad.stderr


def test_the_encoder_alignment_benchmark_scores_every_target_language(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/encoder_alignment.py", "--pairs", "20", "--encoders",
                             "default", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    payload = json.loads((tmp_path / "results.json").read_text())
    rows = payload["encoders"]["default"]["rows"]
    assert payload["pairs"] == 20 and set(rows) == {"de", "fr", "cs", "zh", "ja"}
    assert all(set(row) == {f"{d}_top1_{layer}" for d in ("x_to_en", "en_to_x") for layer in ("last", "middle")}
               and all(0 <= v <= 100 for v in row.values()) for row in rows.values())
    assert payload["published"]["xlm-r large"]["de"] == 88.8 and "Table 13" in payload["published_source"]


def test_the_backbone_curve_measures_each_snapshot_once_and_draws_the_curve(tmp_path):
    import csv
    import shutil

    from xlcore.backbone.toy import ASSETS

    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    shutil.copy(ASSETS / "unet.safetensors", snapshots / "unet_step000010.safetensors")
    command = [sys.executable, "benchmarks/backbone_curve.py", "--snapshots", str(snapshots), "--prompts", "8",
               "--scales", "2", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shipped = json.loads((ASSETS / "backbone.json").read_text())["components"]["unet"]["steps"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "curve.csv")))
    assert sorted(int(r["unet_step"]) for r in rows) == sorted([10, shipped])
    assert rows[0]["single_all"] == rows[1]["single_all"]  # the same weights judge the same at both points
    assert (tmp_path / "out" / "curve.png").stat().st_size > 0
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "step " not in again.stdout  # nothing measured twice


def test_the_seed_timer_splits_a_smoke_seed_into_training_and_the_rest(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/seed_time.py", "--smoke", "--methods", "translate",
                             "--languages", "de", "--seed", "0", "--scratch", str(tmp_path / "runs"),
                             "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["cells"] == 2 and payload["cells_skipped"] == 0  # the English reference + translate in German
    translate = payload["per_method"]["translate"]
    assert translate["cells"] == 1 and 0 < translate["train_seconds"] < translate["wall_seconds"]
    assert payload["ratio_to_reference"] == payload["total_seconds"] / 7860.0 and "x the reference" in result.stdout


def test_the_gpu_toy_study_script_runs_a_seed_with_the_python_executor_on_the_cpu(tmp_path):
    """The prepared GPU run (issue 21), checked here at smoke size: cells run without Jupyter (`xlcore cell`,
    the notebooks' steps), the rows land, the timing is written, and a rerun resumes (nothing is run twice)."""
    env = {**os.environ, "WORKERS": "1", "LIMIT": "800"}
    command = ["bash", "benchmarks/gpu_toy_study.sh", str(tmp_path), "--smoke", "--methods", "translate",
               "--languages", "en,de"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["cells_done"] == 3 and not timing["timed_out"]  # the English reference, translate in en and de
    assert not list((tmp_path / "runs").glob("toy/*/*/*/*.ipynb"))  # no notebook was executed
    rows = (tmp_path / "results.csv").read_text()
    assert "consistency_clip_cos" in rows and "translate" in rows
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0 and "3 already finished" in (tmp_path / "sweep.log").read_text()


@pytest.mark.slow
def test_the_encoder_dependence_benchmark_trains_one_method_per_encoder_and_tabulates_them(tmp_path):
    """Each encoder is its own cell (its setting reaches the cell's config) and gets its own row."""
    out = tmp_path / "table"
    result = subprocess.run([sys.executable, "benchmarks/encoder_dependence.py", "--smoke", "--methods", "mulan",
                             "--encoders", "unaligned,aligned", "--languages", "de", "--backbone",
                             "xlcore/assets/toy_backbone_next", "--output-dir", str(tmp_path / "runs"), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (out / "table.md").read_text()
    for column in ("consistency", "clip_raw", "compositional_shape_colour"):  # MuLan generates; it has no retrieval
        section = table.split(f"### {column}")[1].split("###")[0]
        assert "| mulan | unaligned |" in section and "| mulan | aligned |" in section, table
    frame = ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()
    cells = frame[frame["run_id"].str.startswith("cell-mulan-de")]
    assert cells["run_id"].nunique() == 2  # one cell per encoder, not one cell read twice
