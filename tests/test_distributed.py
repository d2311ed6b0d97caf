"""Data-parallel training on the CPU (gloo): two processes with the global batch split between them end
where one process with the whole batch ends, through `torchrun` (what `accelerate launch --multi_gpu`
runs) and through accelerate's in-process launcher (the CPU form of `notebook_launcher`)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "tests" / "distributed_job.py"


def torchrun() -> list[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]


def run(command, **kw):
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}, **kw)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def final(folder: Path) -> tuple[dict, str]:
    with safe_open(str(folder / "final.safetensors"), "pt") as handle:
        processes = handle.metadata()["processes"]
    return load_file(str(folder / "final.safetensors")), processes


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    folder = tmp_path_factory.mktemp("single")
    run([sys.executable, str(JOB), str(folder)])
    return final(folder)


def assert_same_run(a: dict, b: dict) -> None:
    for key in a:  # summation order differs between one batch and two halves: float rounding only
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_two_processes_with_torchrun_match_one_process(single, tmp_path):
    run([*torchrun(), str(JOB), str(tmp_path)])
    weights, processes = final(tmp_path)
    assert processes == "2" and single[1] == "1"
    assert_same_run(single[0], weights)
    logged = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, 7))  # one log, written by the main process
    assert (tmp_path / "checkpoint" / "state.json").exists()


def test_a_contrastive_loss_sees_the_whole_global_batch(tmp_path):
    """The InfoNCE rows of every process are gathered, so two processes step as one with the whole batch
    (a process contrasting only its own 8 rows would end elsewhere: checked by hand without the gather)."""
    run([sys.executable, str(JOB), str(tmp_path / "one"), "contrastive"])
    run([*torchrun(), str(JOB), str(tmp_path / "two"), "contrastive"])
    (one, _), (two, processes) = final(tmp_path / "one"), final(tmp_path / "two")
    assert processes == "2"
    assert_same_run(one, two)
    log = [json.loads(line)["loss"] for line in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1] < log[0], "the contrastive job learns"


def test_the_in_process_launcher_matches_one_process(single, tmp_path):
    code = ("import sys; sys.path.insert(0, 'tests'); from accelerate import debug_launcher; "
            f"import distributed_job; debug_launcher(distributed_job.run, ({str(tmp_path)!r},), num_processes=2)")
    run([sys.executable, "-c", code])
    weights, processes = final(tmp_path)
    assert processes == "2"
    assert_same_run(single[0], weights)


@pytest.mark.slow
def test_a_method_trains_data_parallel_through_the_cli(tmp_path):
    from xlcore.backbone import load_backbone
    from xlcore.methods._base import load_method

    result = run([*torchrun(), "-m", "xlcore", "train", "--method", "pea", "--language", "de", "--smoke",
                  "--output-dir", str(tmp_path)])
    # one data-parallel run, not two processes each training alone (and racing for the checkpoint)
    assert "training pea on 2 process(es)" in result.stdout + result.stderr
    folder = tmp_path / "toy" / "pea" / "de" / "0" / "train"
    method = load_method(folder / "method", load_backbone("toy"))
    assert method.trained_stages == ["adapter"]
    assert (folder / "adapter" / "train_log.jsonl").read_text().count("\n") >= 1
