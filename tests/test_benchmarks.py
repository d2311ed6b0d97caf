"""The prepared GPU script runs unchanged on a CPU (sd15's small configs at 64 px, one method), and its
outputs are the table, the tidy rows and the device record."""

import json
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
    result = subprocess.run([sys.executable, "benchmarks/encoder_alignment.py", "--pairs", "20", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["pairs"] == 20 and set(payload["rows"]) == {"de", "fr", "cs", "zh", "ja"}
    assert all(0 <= v <= 100 for row in payload["rows"].values() for v in row.values())
