"""Corrupt or hostile files: each is a clear error naming the file and what is wrong; where a safe
fallback exists (the previous checkpoint) it is used. Nothing is unpickled."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xlcore import data
from xlcore.errors import DataFormatError
from xlcore.methods._base import build_method, load_method
from xlcore.results import ResultsStore, file_sha256

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "real"


def truncate(path: Path) -> None:
    """The file cut in half."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bit(path: Path) -> None:
    """One bit of the tensor data flipped."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) - 7] ^= 0x10  # inside the tensor data, past the header: safetensors alone cannot tell
    path.write_bytes(bytes(raw))


@pytest.fixture
def trained(tmp_path, jobs):
    """A run folder with two checkpoints (steps 4 and 8)."""
    jobs.checkpoint_trainer(tmp_path, steps=8, every=4).fit()
    return tmp_path


def resume(folder, jobs):
    trainer = jobs.checkpoint_trainer(folder, steps=8, every=4)
    trainer.load_checkpoint()
    return trainer


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(trained, damage, ledger, caplog, jobs):
    folder = trained
    damage(folder / "checkpoint" / "trainable-model.safetensors")
    trainer = resume(folder, jobs)
    assert trainer.step == 4  # the previous checkpoint, not a crash and not a silent start from zero
    assert "trainable-model.safetensors" in caplog.text
    ledger.fault(f"checkpoint weights: {damage.__doc__.lower().rstrip('.')}", True,
                 how="SHA-256 in state.json caught it; resumed from checkpoint.prev (4 steps redone)")


def test_when_every_checkpoint_is_damaged_the_error_names_them(trained, ledger, jobs):
    folder = trained
    truncate(folder / "checkpoint" / "trainable-model.safetensors")
    flip_bit(folder / "checkpoint.prev" / "optimizer.pt")
    with pytest.raises(DataFormatError) as caught:
        resume(folder, jobs)
    message = str(caught.value)
    assert "checkpoint/trainable-model.safetensors" in message and "checkpoint.prev/optimizer.pt" in message
    assert "delete the run folder to start over" in message
    ledger.bad_input("every checkpoint of a run damaged", True, message)


def test_a_pickled_object_in_the_optimizer_state_is_refused(trained, ledger, jobs):
    folder = trained
    evil = folder / "checkpoint" / "optimizer.pt"
    torch.save({"state": {}, "param_groups": [], "payload": Path("/etc/passwd")}, evil)  # not tensors: needs unpickling
    state = json.loads((folder / "checkpoint" / "state.json").read_text())
    state["files"]["optimizer.pt"] = file_sha256(evil)  # a consistent checksum: only the loader can refuse it
    (folder / "checkpoint" / "state.json").write_text(json.dumps(state))
    trainer = resume(folder, jobs)
    assert trainer.step == 4  # weights_only=True refused the object; the previous checkpoint was used
    ledger.fault("optimizer state carrying a pickled object", True,
                 how="torch.load(weights_only=True) refused it; resumed from the previous checkpoint")


def test_nothing_is_loaded_with_pickle():
    offenders = []
    for path in (REPO / "xlcore").rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.M):
            offenders.append(f"{path.name}: imports a pickle library")
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=True" not in call:
                offenders.append(f"{path.name}: {call}")
    assert not offenders


@pytest.fixture(scope="module")
def saved_method(tmp_path_factory):
    from xlcore.backbone import load_backbone

    backbone = load_backbone("toy")
    folder = tmp_path_factory.mktemp("method") / "pea"
    build_method("pea", backbone, language="de").save(folder)
    return folder, backbone


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
def test_damaged_method_weights_are_a_clear_error(saved_method, damage, tmp_path, ledger):
    source, backbone = saved_method
    folder = Path(shutil.copytree(source, tmp_path / "pea"))
    damage(folder / "trainable.safetensors")
    with pytest.raises(DataFormatError, match=r"trainable\.safetensors: checksum mismatch") as caught:
        load_method(folder, backbone)
    ledger.bad_input(f"exported method weights: {damage.__doc__.lower().rstrip('.')}", True, str(caught.value))


def test_a_method_file_naming_an_unknown_method_lists_the_registered_ones(saved_method, tmp_path, ledger):
    source, backbone = saved_method
    folder = Path(shutil.copytree(source, tmp_path / "pea"))
    meta = json.loads((folder / "method.json").read_text())
    (folder / "method.json").write_text(json.dumps({**meta, "method": "imagen-xl"}))
    with pytest.raises(DataFormatError, match=r"method\.json: names a method nobody registered .*'imagen-xl'.*trikd"
                       ) as caught:
        load_method(folder, backbone)
    ledger.bad_input("checkpoint config naming an unknown method", True, str(caught.value))


def test_a_malformed_results_row_names_the_file_and_line(tmp_path, ledger):
    store = ResultsStore(tmp_path / "results.csv")
    store.append(store.make_rows(run_id="r", config={}, seed=0, method="none", stage="data", language="en",
                                 benchmark="b", metrics={"m": 1.0, "n": 2.0}))
    lines = store.path.read_text().splitlines()
    lines[2] = lines[2].replace(",2.0,", ",two,")
    store.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"results\.csv, line 3") as caught:
        store.read()
    ledger.bad_input("results table row with a non-number value", True, str(caught.value))


def test_a_malformed_caption_file_names_the_file_and_line(tmp_path, ledger):
    root = Path(shutil.copytree(FIXTURES / "multi30k", tmp_path / "multi30k"))
    path = root / "task1" / "test_2016_flickr.de"
    lines = path.read_bytes().split(b"\n")
    lines[3] = "Ein Mädchen".encode("latin-1")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"test_2016_flickr\.de, line 4: not valid UTF-8") as caught:
        data.load_multi30k_task1(root, "de")
    ledger.bad_input("benchmark caption file with a line in Latin-1", True, str(caught.value))


@pytest.mark.slow
def test_a_notebook_parameter_of_the_wrong_type_is_named(tmp_path, ledger):
    from xlcore.sweep import ensure_kernel

    ensure_kernel()
    out = tmp_path / "out.ipynb"
    result = subprocess.run([sys.executable, "-m", "papermill", str(REPO / "notebooks" / "methods" / "untrained.ipynb"),
                             str(out), "--kernel", "xlcore", "-p", "seed", "zero", "-p", "smoke", "True",
                             "-p", "output_dir", str(tmp_path / "runs")], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode != 0
    message = "notebook parameter 'seed' must be int, got str 'zero'"
    assert message in result.stderr + result.stdout
    ledger.bad_input("notebook parameter of the wrong type (seed='zero')", True, "ConfigError: " + message)
