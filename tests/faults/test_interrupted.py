"""Interrupted work: SIGKILL mid-training, mid-sweep, mid-write. Nothing finished is redone or lost."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from xlcore.results import ResultsStore

REPO = Path(__file__).resolve().parents[2]
JOBS = Path(__file__).with_name("jobs.py")


def start(job: str, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(JOBS), job, str(folder)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def kill_after(process: subprocess.Popen, prefix: str, count: int, timeout: float = 300) -> list[str]:
    """Read the job's announcements until `count` lines start with `prefix`, then SIGKILL it (mid-work:
    it carries straight on). Returns the announcements read."""
    seen, deadline = [], time.monotonic() + timeout
    while len([s for s in seen if s.startswith(prefix)]) < count:
        line = process.stdout.readline()
        assert line or process.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "the job is too slow"
        seen.append(line.strip())
    time.sleep(random.uniform(0.0, 0.3))  # land anywhere in the next step or write
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return seen


def test_training_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, ledger):
    whole = subprocess.run([sys.executable, str(JOBS), "train", str(tmp_path / "whole")], cwd=REPO,
                           capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = start("train", tmp_path / "killed")
    kill_after(killed, "checkpoint", 3)  # step 6 is on disk; the kill lands in steps 7-8
    resumed = subprocess.run([sys.executable, str(JOBS), "train", str(tmp_path / "killed")], cwd=REPO,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint 2\n" not in resumed.stdout  # it resumed, it did not start over
    a = load_file(str(tmp_path / "whole" / "method" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "killed" / "method" / "trainable.safetensors"))
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    # Same seed, same batches, the random state restored from the checkpoint: bit-identical on a CPU.
    assert a.keys() == b.keys() and not differing, differing
    ledger.fault("training run SIGKILLed mid-step", True, weights_lost=len(differing),
                 how="resumed from its last checkpoint; final weights bit-identical to an uninterrupted run")


def test_a_kill_while_the_results_table_is_written_loses_no_finished_row(tmp_path, ledger):
    total_lost = 0
    for _attempt in range(3):
        job = start("results", tmp_path)
        said = kill_after(job, "appended", random.randint(2, 6))
        announced = max(int(s.split()[1]) for s in said if s.startswith("appended"))
        frame = ResultsStore(tmp_path / "results.csv").read()  # parses: no torn row
        batches = frame.groupby("run_id").size()
        assert (batches == 50).all(), "a batch was half written"
        kept = {int(r.split("-")[1]) for r in batches.index}
        lost = len([b for b in range(announced + 1) if b not in kept])
        assert lost == 0
        total_lost += lost
    ledger.fault("process SIGKILLed while appending to the results table (x3)", True, rows_lost=total_lost * 50,
                 how="atomic write (temp file, fsync, rename): the table is the old or the new one, whole")


def test_a_kill_while_a_checkpoint_is_written_leaves_one_to_resume_from(tmp_path, ledger, jobs):
    lost = 0
    for _attempt in range(3):
        said = kill_after(start("checkpoints", tmp_path), "checkpoint", random.randint(3, 8))
        last = max(int(s.split()[1]) for s in said if s.startswith("checkpoint"))
        trainer = jobs.checkpoint_trainer(tmp_path)
        assert trainer.load_checkpoint()
        assert trainer.step >= last, (trainer.step, last)
        lost += max(0, last - trainer.step)
    ledger.fault("process SIGKILLed while writing checkpoints (x3)", True, weights_lost=lost,
                 how="checkpoint written beside the last one, then swapped; resume found the newest whole one")


@pytest.mark.slow
def test_the_sweep_resumes_after_a_kill_without_redoing_cells_or_duplicating_rows(tmp_path, ledger):
    args = [sys.executable, "-m", "xlcore", "sweep", "--smoke", "--methods", "untrained,translate", "--languages",
            "de,zh", "--seeds", "0", "--prompts", "2", "--no-english-reference", "--output-dir", str(tmp_path / "runs")]
    first_cell = tmp_path / "runs" / "toy" / "untrained" / "de" / "0"
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while not (first_cell / "done.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before its first cell finished"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and the cell it was running, mid-run
    process.wait()
    finished_at = (first_cell / "untrained.ipynb").stat().st_mtime
    second = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 already finished" in second.stdout
    assert (first_cell / "untrained.ipynb").stat().st_mtime == finished_at  # not redone
    frame = ResultsStore(tmp_path / "runs" / "toy" / "results.csv").read()
    cells = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "toy").glob("*/*/0/done.json")]
    assert len(cells) == 4
    assert sum(c["rows"] for c in cells) == len(frame[frame["run_id"].str.startswith("cell-")])
    duplicated = frame.duplicated(subset=["run_id", "benchmark", "metric", "protocol", "language"]).sum()
    assert duplicated == 0
    # a fresh clone has the table but no cell folders: nothing the table holds is recomputed
    for method in ("untrained", "translate"):
        shutil.rmtree(tmp_path / "runs" / "toy" / method)
    third = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "4 already finished" in third.stdout, third.stdout + third.stderr
    ledger.fault("sweep and its running cell SIGKILLed mid-cell", True,
                 how="rerun skipped the finished cell, redid the killed one; no duplicate rows")
