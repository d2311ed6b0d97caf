"""The sweep: execute the grid methods x languages x seeds with papermill, one notebook per cell.

Each cell runs `notebooks/methods/<method>.ipynb` (or `notebooks/evaluate.ipynb` for the English
backbone's reference cells) in a fresh papermill process into `<output_dir>/<preset>/<method>/<lang>/<seed>/`
(see `xlcore.cell` for what lands there). The study's settings are resolved once (`xlcore.settings`),
written into each cell's folder as `config.json` and handed to its notebook as the `config_file`
parameter, so every cell runs with the same settings, method settings included. The sweep

- skips cells already finished (`done.json`, or their rows already in the results table), so a rerun after an interruption continues where it stopped,
  and an interrupted cell resumes from its training checkpoints; rows are appended once per cell, so a
  resumed sweep never duplicates them;
- keeps going when a cell fails: the failure's log tail (with the traceback) is kept in the cell's
  `error.txt`, the summary lists it, and the exit status is non-zero;
- shows overall progress; orders cells so that a method trained once for all languages trains in its
  first cell and the other languages reuse it;
- spreads cells over several GPUs of one box (`gpus=(0, 1, ...)`: one worker per GPU, each cell's process
  sees only its GPU through CUDA_VISIBLE_DEVICES), and writes a SLURM job array (`slurm_script`) whose
  task i runs cell i, for users who outgrow a box.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .cell import ENGLISH_BACKBONE, Cell, cell_dir
from .config import LANGUAGES, option
from .errors import ConfigError, UnknownLanguageError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KERNEL = "xlcore"
LOG_TAIL = 6000  # characters of a failed cell's log kept in error.txt


@dataclass(frozen=True)
class SweepConfig:
    """Which cells to run and how."""

    preset: str = option("toy", "Backbone scale: 'toy' or 'sd15'.")
    methods: tuple[str, ...] = option(lambda: (), "Registered methods (empty: all).")
    languages: tuple[str, ...] = option(lambda: LANGUAGES,
                                        "Languages to evaluate in (per-language methods skip English).")
    seeds: tuple[int, ...] = option(lambda: (0, 1, 2), "Seeds; every cell runs once per seed.")
    budget: float = option(1.0, "Share of each stage's training steps to run, in (0, 1].")
    curve_budgets: tuple[float, ...] = option(
        lambda: (), "Learning-curve points: further budgets (shares of each stage's steps, below `budget`) at which "
        "every trained method is also trained, each an independent run with its own schedule, and evaluated.")
    curve_seeds: tuple[int, ...] = option(lambda: (0,), "Seeds the learning-curve points run for (a subset of seeds).")
    n_prompts: int = option(40, "Generation prompts per cell.")
    smoke: bool = option(False, "Shrink every cell (tests).")
    overrides: tuple[str, ...] = option(lambda: (), "Settings changed from the preset, as 'dotted.name=value' (study "
                                        "fields, or a method's as 'pea.train.lr=1e-5'); every cell runs with them.")
    config_file: str = option("", "A resolved settings file (config.json) to run every cell with instead of the "
                                  "preset's; `overrides` apply on top.")
    output_dir: str = option("papermill_runs", "Where cells and the results table go.")
    kernel: str = option(KERNEL, "Jupyter kernel that runs the notebooks (registered by `ensure_kernel`).")
    executor: str = option(
        "papermill", "How a cell runs: 'papermill' (its notebook, executed into the cell's folder: what users step "
        "through) or 'python' (the same steps, `xlcore.cell.execute_cell`, in a fresh Python process without Jupyter: "
        "no kernel start per cell, and no Jupyter needed where the environment has none, e.g. a GPU machine).")
    gpus: tuple[int, ...] = option(lambda: (), "GPU indices, one worker each; empty: one worker, no GPU pinning.")
    retrain: bool = option(False, "Rerun cells whose rows the results table already holds but whose training run is "
                           "not on this machine (a fresh clone's way to get the weights); no row is written twice.")
    english_reference: bool = option(True, "Also evaluate the untouched English backbone (cells in English, per seed).")
    notebooks: str = option(str(NOTEBOOKS), "Folder holding methods/<method>.ipynb and evaluate.ipynb.")


@dataclass
class CellOutcome:
    cell: Cell
    status: str  # 'done', 'skipped' (finished before) or 'failed'
    seconds: float = 0.0
    error: str = ""


def study_settings(config: SweepConfig):
    """The resolved settings tree every cell of the sweep runs with (see `xlcore.settings`)."""
    from .config import parse_override
    from .settings import read_study_config, resolve_study

    base = read_study_config(config.config_file) if config.config_file else None
    overrides = dict(parse_override(text) for text in config.overrides)
    return resolve_study(config.preset, smoke=config.smoke, overrides=overrides, base=base)


def grid(config: SweepConfig) -> list[Cell]:
    """The cells in execution order: by seed, then budget (the full one first), then method, then language."""
    from .config import load_preset
    from .methods._base import UntrainableMethod
    from .registry import METHODS

    methods = config.methods or tuple(METHODS.names())
    for name in methods:
        METHODS.get(name)  # an unknown name fails here, before anything runs
    world_languages = load_preset(config.preset).world.languages
    for lang in config.languages:
        if lang not in world_languages:
            raise UnknownLanguageError(lang, world_languages)
    if not config.seeds:
        raise ConfigError("a sweep needs at least one seed")
    for budget in (config.budget, *config.curve_budgets):
        if not 0 < budget <= 1:
            raise ConfigError(f"a budget is a share of each stage's steps, in (0, 1]; got {budget}")
    cells = []
    for seed in config.seeds:
        if config.english_reference:
            cells.append(Cell(config.preset, ENGLISH_BACKBONE, "en", seed))
        budgets = (config.budget, *(config.curve_budgets if seed in config.curve_seeds else ()))
        for budget in budgets:
            for name in methods:
                if budget != config.budget and issubclass(METHODS.get(name), UntrainableMethod):
                    continue  # nothing trains: the point is the same at every budget
                for lang in config.languages:
                    if lang == "en" and METHODS.get(name).per_language:
                        continue
                    cells.append(Cell(config.preset, name, lang, seed, budget))
    return cells


def notebook_for(cell: Cell, notebooks: str | Path = NOTEBOOKS) -> Path:
    if cell.method == ENGLISH_BACKBONE:
        return Path(notebooks) / "evaluate.ipynb"
    return Path(notebooks) / "methods" / f"{cell.method}.ipynb"


def ensure_kernel(name: str = KERNEL) -> None:
    """Register this environment's Python as the Jupyter kernel `name` (inside the environment; idempotent)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name in KernelSpecManager().find_kernel_specs():
        return
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
                    "--display-name", f"Python ({name})"], check=True, capture_output=True)
    log.info("registered the Jupyter kernel %r for %s", name, sys.executable)


@functools.lru_cache(maxsize=4)
def _fingerprint(preset: str, directory: str) -> str:
    from .backbone import load_backbone

    return load_backbone(preset, **({"directory": directory} if directory else {})).fingerprint()


def study_backbone_fingerprint(preset: str, study) -> str:
    """The fingerprint of the backbone the study's cells load (on toy, its `toy_backbone_dir` if set)."""
    return _fingerprint(preset, study.toy_backbone_dir if preset == "toy" else "")


def finished_with_other_settings(cell: Cell, out: Path, config: SweepConfig, study) -> str | None:
    """The run id a finished cell folder holds when it is not the one these settings give (None when it is,
    or when the folder predates run ids in done.json)."""
    from .cell import cell_identity

    held = json.loads((out / "done.json").read_text()).get("run_id")
    if held is None:
        return None
    fingerprint = study_backbone_fingerprint(cell.preset, study)
    wanted = cell_identity(cell, study, fingerprint, budget=cell.budget, n_prompts=config.n_prompts)[3]
    return held if held != wanted else None


def recorded_run_ids(config: SweepConfig, study) -> dict[Cell, str]:
    """Cells of the grid whose rows are already in the results table (a fresh clone of a repository that
    ships its table has no cell folders, and must not recompute what the table holds)."""
    from .cell import cell_identity
    from .results import ResultsStore

    store = ResultsStore(Path(config.output_dir) / config.preset / "results.csv")
    recorded = store.run_ids()
    if not recorded:
        return {}
    fingerprint = study_backbone_fingerprint(config.preset, study)
    out = {}
    for cell in grid(config):
        run_id = cell_identity(cell, study, fingerprint, budget=cell.budget, n_prompts=config.n_prompts)[3]
        if run_id in recorded:
            out[cell] = run_id
    return out


def run_cell(cell: Cell, config: SweepConfig, gpu: int | None = None, recorded: dict[Cell, str] | None = None,
             study=None) -> CellOutcome:
    """Execute one cell's notebook with papermill in its own process (skipped if finished), with the
    sweep's resolved settings (`study`, resolved from `config` when not given) in its `config.json`."""
    from .settings import write_study_config

    study = study if study is not None else study_settings(config)
    out = cell_dir(Path(config.output_dir).resolve(), cell)
    if cell in (recorded or {}) and not config.retrain:
        return CellOutcome(cell, "skipped")
    if (out / "done.json").exists():
        other = finished_with_other_settings(cell, out, config, study)
        if other is None:
            return CellOutcome(cell, "skipped")
        # The folder holds one cell: its rows stay in the results table under their own run id, and the
        # training run it read is kept aside by the cell (xlcore.cell.claim_train_dir).
        log.warning("%s finished before with other settings (%s); running it with these", cell.key, other)
        (out / "done.json").unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / "error.txt").unlink(missing_ok=True)
    settings = write_study_config(study, out / "config.json")
    parameters = {"preset": cell.preset, "language": cell.language, "seed": cell.seed, "budget": cell.budget,
                  "n_prompts": config.n_prompts, "smoke": config.smoke, "output_dir": str(Path(config.output_dir).resolve()),
                  "config_file": str(settings)}
    if cell.method == ENGLISH_BACKBONE:
        parameters = {k: v for k, v in parameters.items() if k not in ("budget",)} | {"method": cell.method}
    if config.executor == "python":
        command = [sys.executable, "-m", "xlcore", "cell", json.dumps(parameters | {"method": cell.method})]
    else:
        notebook = notebook_for(cell, config.notebooks)
        command = [sys.executable, "-m", "papermill", str(notebook), str(out / notebook.name),
                   "--kernel", config.kernel, "--cwd", str(REPO), "--no-progress-bar", "--log-output",
                   "-y", json.dumps(parameters)]
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    start = time.monotonic()
    with open(out / "cell.log", "w") as log_file:
        status = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
    seconds = time.monotonic() - start
    if status == 0 and (out / "done.json").exists():
        return CellOutcome(cell, "done", seconds)
    tail = (out / "cell.log").read_text(errors="replace")[-LOG_TAIL:]
    (out / "error.txt").write_text(f"cell {cell.key} failed (exit status {status}); log tail:\n{tail}")
    return CellOutcome(cell, "failed", seconds, tail.strip().splitlines()[-1] if tail.strip() else f"exit {status}")


def run_sweep(config: SweepConfig, cells: list[Cell] | None = None, progress: bool = True,
              study=None) -> list[CellOutcome]:
    """Run `cells` (default: the whole grid) with one worker per GPU (or one worker), every cell with the
    resolved settings `study` (default: resolved from `config`)."""
    cells = grid(config) if cells is None else cells
    if config.executor not in ("papermill", "python"):
        raise ConfigError(f"executor must be 'papermill' or 'python', got {config.executor!r}")
    if config.executor == "papermill":
        for notebook in sorted({notebook_for(cell, config.notebooks) for cell in cells}):
            if not notebook.exists():
                raise ConfigError(f"no notebook {notebook}; run notebooks/make_method_notebooks.py")
        ensure_kernel(config.kernel)
    study = study if study is not None else study_settings(config)
    recorded = recorded_run_ids(config, study)
    todo: queue.Queue[Cell] = queue.Queue()
    for cell in cells:
        todo.put(cell)
    outcomes: list[CellOutcome] = []
    lock = threading.Lock()
    bar = tqdm(total=len(cells), desc=f"sweep ({config.preset})", unit="cell", disable=not progress)

    def worker(gpu: int | None) -> None:
        while True:
            try:
                cell = todo.get_nowait()
            except queue.Empty:
                return
            bar.set_postfix_str(cell.key)
            outcome = run_cell(cell, config, gpu, recorded, study)
            with lock:
                outcomes.append(outcome)
                bar.update(1)
            if outcome.status == "failed":
                log.error("cell %s failed: %s (see %s)", cell.key, outcome.error,
                          cell_dir(config.output_dir, cell) / "error.txt")

    # Trained-once methods train in their first cell: with several workers the others wait on its lock.
    threads = [threading.Thread(target=worker, args=(gpu,)) for gpu in (config.gpus or (None,))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bar.close()
    order = {cell: i for i, cell in enumerate(cells)}
    return sorted(outcomes, key=lambda o: order[o.cell])


def summary(outcomes: list[CellOutcome]) -> str:
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    lines = [f"{len(outcomes)} cells: {counts['done']} run, {counts['skipped']} already finished, {counts['failed']} failed"]
    lines += [f"  FAILED {o.cell.key}: {o.error}" for o in outcomes if o.status == "failed"]
    return "\n".join(lines)


def slurm_script(config: SweepConfig, path: str | Path, *, partition: str = "", hours: int = 4) -> Path:
    """A SLURM job array with one task per cell (task i runs cell i of the grid); submit with sbatch. The
    resolved settings go beside it (`<path>.config.json`), so every task runs with the same tree."""
    from .settings import write_study_config

    cells = grid(config)
    path = Path(path)
    settings = write_study_config(study_settings(config), path.with_name(path.name + ".config.json")).resolve()
    args = [f"--preset {config.preset}", f"--seeds {','.join(map(str, config.seeds))}",
            f"--languages {','.join(config.languages)}", f"--budget {config.budget:g}", f"--prompts {config.n_prompts}",
            f"--output-dir {Path(config.output_dir).resolve()}"]
    if config.curve_budgets:
        args += [f"--curve-budgets {','.join(f'{b:g}' for b in config.curve_budgets)}",
                 f"--curve-seeds {','.join(map(str, config.curve_seeds))}"]
    if config.methods:
        args.append(f"--methods {','.join(config.methods)}")
    if config.smoke:
        args.append("--smoke")
    args.append(f"--config {shlex.quote(str(settings))}")
    if not config.english_reference:
        args.append("--no-english-reference")
    lines = ["#!/bin/bash", f"#SBATCH --job-name=xlcore-{config.preset}", f"#SBATCH --array=0-{len(cells) - 1}",
             "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=8", f"#SBATCH --time={hours}:00:00",
             f"#SBATCH --output={Path(config.output_dir).resolve()}/slurm-%A_%a.log"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    lines += ["# One cell per task; cells of a method trained once for all languages share its training run",
              "# (a file lock makes the first task train and the others wait for it).",
              f"cd {REPO}", f"{sys.executable} -m xlcore sweep {' '.join(args)} --cell-index $SLURM_ARRAY_TASK_ID", ""]
    path.write_text("\n".join(lines))
    return path

