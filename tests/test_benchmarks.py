"""The prepared GPU script runs unchanged on a CPU (sd15's small configs at 64 px, one method), and its
outputs are the table, the tidy rows and the device record."""

import json
import subprocess
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
