"""The study's notebooks, generated: one per registered method (the papermill unit of the sweep),
`evaluate.ipynb` (a system without training) and `analysis.ipynb` (tables and figures).

    .venv/bin/python notebooks/make_method_notebooks.py

Every method notebook has the same steps, and each step is one call into `xlcore.cell.CellRun`: no model
or loss code lives in a notebook. The description (what is frozen, what trains, the loss and its source,
the data flow) comes from the method's class (`xlcore.methods._base.describe`), so adding a method needs no
edit here. The notebooks are committed without outputs; executed copies land in
`papermill_runs/<preset>/<method>/<language>/<seed>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nbformat

from .errors import ConfigError
from .methods._base import describe
from .registry import METHODS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = {"name": "xlcore", "display_name": "Python (xlcore)", "language": "python"}

PARAMETERS = '''preset: str = "toy"  # backbone scale: "toy" (built-in world, CPU) or "sd15" (weights in the Hugging Face cache)
language: str = "de"  # the language this cell evaluates in (and trains for, for per-language methods)
seed: int = 0  # seed of the initial weights, the training batches and noise, and the evaluation noise
budget: float = 1.0  # share of each stage's training steps to run, in (0, 1]
n_prompts: int = 40  # generation prompts evaluated in this language
smoke: bool = False  # shrink every size for a quick check (the tests run this)
output_dir: str = "papermill_runs"  # runs, checkpoints and the results table live under <output_dir>/<preset>/
config_file: str = ""  # the resolved study config the sweep wrote for this cell (config.json); empty: the preset's
data_file: str = ""  # a data file naming real corpora (YAML/JSON, examples/data/sd15.yaml); empty: the built-in world
overrides: dict = {}  # settings changed on top, by dotted name: {"evaluation.n_prompts": 10}, {"methods.pea.train.lr": 1e-5}'''


def with_kernel(cells: list) -> nbformat.NotebookNode:
    """A notebook of `cells` that names the project's kernel (the one `make lab` registers)."""
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def method_notebook(name: str) -> nbformat.NotebookNode:
    """The notebook of registered method `name`: its description (from its class), then one `CellRun`
    call per step."""
    info = describe(name)
    if not (info.title and info.prose):
        raise ConfigError(f"method {name!r} has no title or prose; set them on its class ({info.cls.__module__})")
    title, prose, diagram = info.title, info.prose, info.diagram
    scope = ("trains one model per target language" if info.per_language
             else "trains once for all languages (the first cell trains, the others reuse it)")
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# `{name}`: {title}\n\n{prose}\n\n```\n{diagram}\n```\n\nThis method {scope}. The sweep "
            "(`python -m xlcore sweep`) runs this notebook once per language and seed with papermill; every number "
            "it appends to the results table carries its protocol. Stages, deviations and parameter counts: "
            "docs/methods.md."),
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from IPython.display import Markdown, display\n\n"
            "from xlcore.cell import Cell, CellRun, generation_figure\n"
            "from xlcore.plotting import show\n\n"
            f"run = CellRun(Cell(preset, {name!r}, language, seed), smoke=smoke, output_dir=output_dir, budget=budget,\n"
            "              n_prompts=n_prompts, config_file=config_file, data_file=data_file, overrides=overrides)\n"
            "display(Markdown(run.parameter_table()))"),
        nbformat.v4.new_markdown_cell("## Train\n\nEvery stage runs on the one `Trainer`: checkpoints every few minutes, "
                                      "resumes after an interruption, reuses a finished run."),
        nbformat.v4.new_code_cell("run.train()\nshow(run.loss_curves())"),
        nbformat.v4.new_markdown_cell("## Evaluate\n\nWorld retrieval (where the method has a joint image-text space) "
                                      "and generation in this language: compositional and culture accuracy, world FID, "
                                      "CLIP score, consistency with the English pipeline (`xlcore.evaluate`)."),
        nbformat.v4.new_code_cell("measurements, generation = run.evaluate()\nshow(generation_figure(generation))"),
        nbformat.v4.new_markdown_cell("## Record\n\nThe rows go to the results table in one atomic append; the "
                                      "summary line below is what the tests read back."),
        nbformat.v4.new_code_cell("import json\n\nrun.write(measurements)\nprint(json.dumps(run.summary()))"),
    ]
    return with_kernel(cells)


def evaluation_notebook() -> nbformat.NotebookNode:
    """Evaluate one system without training: the English backbone (the sweep's reference cells), or a
    method whose training run already exists."""
    cells = [
        nbformat.v4.new_markdown_cell(
            "# Evaluate one system\n\nThe untouched English pipeline (`method = \"english-backbone\"`, the reference "
            "row and the target of cross-lingual consistency), or any method whose training run exists under "
            "`<output_dir>/<preset>/<method>/<all|language>/<seed>/train/`. Nothing trains here. The protocol is "
            "`xlcore.evaluate`'s (docs/evaluation.md)."),
        nbformat.v4.new_code_cell(
            PARAMETERS.replace('budget: float = 1.0  # share of each stage\'s training steps to run, in (0, 1]\n', "")
            .replace('preset: str = "toy"', 'method: str = "english-backbone"  # "english-backbone" or a trained method\n'
                     'preset: str = "toy"').replace('language: str = "de"', 'language: str = "en"'),
            metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from xlcore.cell import Cell, CellRun, generation_figure\n"
            "from xlcore.plotting import show\n\n"
            "run = CellRun(Cell(preset, method, language, seed), smoke=smoke, output_dir=output_dir, n_prompts=n_prompts,\n"
            "              config_file=config_file, data_file=data_file, overrides=overrides)\n"
            "run.load_trained()\n"
            "measurements, generation = run.evaluate()\n"
            "show(generation_figure(generation))"),
        nbformat.v4.new_code_cell("import json\n\nrun.write(measurements)\nprint(json.dumps(run.summary()))"),
    ]
    return with_kernel(cells)


def analysis_notebook() -> nbformat.NotebookNode:
    """The study's tables and figures from the results table (`xlcore.analysis`; `make study` writes the
    same files into figures/)."""
    cells = [
        nbformat.v4.new_markdown_cell(
            "# Analysis\n\nEvery table and figure is drawn from the results table only: the mean over seeds of "
            "the latest run of each (method, language, seed) cell, with the standard deviation over seeds "
            "(\"n=1\" marks a single seed: no error bar is invented). On the toy preset these are world metrics "
            "(docs/evaluation.md), not comparable with published numbers."),
        nbformat.v4.new_code_cell(
            'results_path: str = "papermill_runs/toy/results.csv"  # the preset\'s results table\n'
            'figures_dir: str = "figures"  # where PNG/SVG figures and tables/ (Markdown, LaTeX) are written',
            metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from IPython.display import Markdown, display\n\n"
            "from xlcore import analysis\n"
            "from xlcore.plotting import show\n"
            "from xlcore.report import cost_table\n"
            "from xlcore.results import ResultsStore\n\n"
            "frame = ResultsStore(results_path).read()\n"
            "display(Markdown('## Retrieval: mean recall (first-caption protocol)\\n\\n' + "
            "analysis.to_markdown(analysis.retrieval_table(frame))))"),
        nbformat.v4.new_code_cell(
            "display(Markdown('## Generation\\n\\n' + analysis.to_markdown(analysis.generation_table(frame))))"),
        nbformat.v4.new_code_cell("display(Markdown('## Cost\\n\\n' + cost_table(results_path)))"),
        nbformat.v4.new_code_cell("show(analysis.quality_cost_figure(frame))"),
        nbformat.v4.new_code_cell("show(analysis.parameter_efficiency_figure(frame))"),
        nbformat.v4.new_code_cell("show(analysis.language_bars(frame))"),
        nbformat.v4.new_code_cell(
            "import json\n\nwritten = analysis.write_analysis(results_path, figures_dir)\n"
            "print(json.dumps({'written': [str(p) for p in written]}))"),
    ]
    return with_kernel(cells)


def write_notebook(nb: nbformat.NotebookNode, path: Path, stem: str) -> Path:
    """Write `nb` with stable cell ids (regenerating an unchanged notebook changes nothing)."""
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{stem}-{index}"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def write_notebooks(folder: str | Path = NOTEBOOKS, names: Sequence[str] | None = None) -> list[Path]:
    """Every registered method's notebook (`<folder>/methods/<name>.ipynb`), `evaluate.ipynb` and
    `analysis.ipynb`; returns the files written."""
    folder = Path(folder)
    written = [write_notebook(method_notebook(name), folder / "methods" / f"{name}.ipynb", name)
               for name in (names if names is not None else METHODS.names())]
    for stem, nb in (("evaluate", evaluation_notebook()), ("analysis", analysis_notebook())):
        written.append(write_notebook(nb, folder / f"{stem}.ipynb", stem))
    return written
