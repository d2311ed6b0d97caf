"""Write `notebooks/methods/<method>.ipynb` for every registered method, `evaluate.ipynb` and `analysis.ipynb`.

    .venv/bin/python notebooks/make_method_notebooks.py

Every method notebook has the same steps, and each step is one call into `xlcore.cell.CellRun`: no model
or loss code lives in a notebook. The prose (what is frozen, what trains, the loss and its source, the
data flow) is per method and lives here, so it is written once. The notebooks are committed without
outputs; executed copies land in `papermill_runs/<preset>/<method>/<language>/<seed>/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.registry import METHODS  # noqa: E402

OUT = Path(__file__).resolve().parent / "methods"
KERNEL = {"name": "xlcore", "display_name": "Python (xlcore)", "language": "python"}

PROSE = {
    "untrained": ("The floor: no alignment at all",
                  "The multilingual encoder's last hidden states go straight into the English UNet's cross-attention "
                  "as if they were the English text tower's (the widths match: 128 on toy, 768 for XLM-R base with SD "
                  "1.5), and their masked mean is the retrieval embedding. Nothing trains. Every method must beat this "
                  "row; if one does not, it learned nothing that transfers.",
                  "prompt (any language) -> multilingual encoder (frozen) -> UNet (frozen) -> image"),
    "translate_oracle": ("The ceiling: exact translation",
                         "The world's own grammars translate the prompt into English exactly, and the untouched English "
                         "pipeline draws it. Not a method (no real system translates perfectly): it is the upper bound "
                         "the English backbone allows, labelled as such in the results.",
                         "prompt (X) -> exact translation (lexicon) -> English CLIP text (frozen) -> UNet (frozen) -> image"),
    "translate": ("Translate, then generate",
                  "A machine-translation model turns the prompt into English for the untouched English pipeline: "
                  "NLLB-200-distilled-600M on `sd15` (AltDiffusion's baseline), a small Marian model trained on the "
                  "world's parallel text on `toy`. Only the toy translator trains (cross-entropy on parallel text); "
                  "the diffusion side is never touched.",
                  "prompt (X) -> translator -> English text -> English CLIP text (frozen) -> UNet (frozen) -> image"),
    "trikd": ("mCLIP: Triangle Knowledge Distillation (Chen et al., ACL 2023)",
              "Frozen: CLIP's image and text towers and the multilingual encoder (XLM-R). Trains: an X-projector (two "
              "transformer layers on the encoder's states, pooled at `</s>`) and a bias-free CLIP-projector. Loss "
              "(paper section 3): ITC(h_X, h_I) + 0.1 TTC(h_X, h_T), both symmetric InfoNCE, learnable temperature for "
              "ITC. English image-text only; other languages come from the encoder's alignment, or from the optional "
              "`mte` stage (mCLIP+), which first aligns the encoder on parallel text. mCLIP never generated images: the "
              "study adds a token-level alignment to the English text states so the projector can condition the UNet "
              "(labelled as the study's extension).",
              "caption (en) -> XLM-R (frozen) -> X-projector --ITC--> CLIP image (frozen)\n"
              "                                               \\--TTC--> CLIP text (frozen)\n"
              "prompt (X) -> XLM-R -> X-projector token head -> UNet (frozen) -> image"),
    "mclip_plus": ("mCLIP+: TriKD after MTE enhancement (Chen et al., ACL 2023, section 3.3)",
                   "TriKD as in the `trikd` notebook, preceded by stage `mte`: a copy of the multilingual encoder is "
                   "trained on parallel text (each sentence against its English translation) with a contrastive loss on "
                   "its mask-mean-pooled states (temperature 0.1; token and position embeddings frozen, as upstream's "
                   "`xlmr_2stage`). TriKD then runs on the enhanced encoder, frozen again. Deviation (labelled): "
                   "upstream's MTE also trains a translation decoder with cross-entropy; the toy keeps the contrastive "
                   "term only. The write-up's retrieval numbers for mCLIP are mCLIP+'s.",
                   "stage mte:   sentence (X) -> XLM-R copy (trained) --InfoNCE-- XLM-R copy <- translation (en)\n"
                   "stage trikd: caption (en) -> enhanced XLM-R (frozen) -> X-projector --ITC/TTC--> CLIP (frozen)\n"
                   "prompt (X) -> enhanced XLM-R -> X-projector token head -> UNet (frozen) -> image"),
    "altclip": ("AltCLIP (Chen et al., 2022, arXiv 2211.06679)",
                "Frozen: the CLIP image tower and the English CLIP text tower (the teacher). Trains: the whole "
                "multilingual encoder plus a transformation into CLIP's text space. Stage `teacher`: MSE between the "
                "student's pooled output and CLIP's on parallel text (the teacher reads English, the student both "
                "languages). Stage `contrastive`: InfoNCE of the student against frozen CLIP image embeddings, on "
                "image-text in every language.",
                "parallel text: English -> CLIP text (frozen) --MSE-- student(X) <- XLM-R + transformation (trained)\n"
                "image-text:    image -> CLIP image (frozen) --InfoNCE-- student(caption)"),
    "altdiffusion": ("AltDiffusion (Ye et al., 2023, arXiv 2308.09991)",
                     "AltCLIP's two stages give an aligned multilingual text encoder; then stage `concept` trains only "
                     "the UNet's cross-attention key and value projections (`attn2.to_k`, `attn2.to_v`) on multilingual "
                     "prompts with the denoising loss, and stage `quality` trains the whole UNet (a copy; the backbone "
                     "is never changed). `upstream_all_attn2=True` reproduces the upstream code's condition, which is "
                     "always true and trains all of attn2.",
                     "prompt (X) -> AltCLIP text encoder -> UNet copy (attn2 k/v, then all) -> denoising loss"),
    "iap": ("Image as Pivot (Hu et al., 2023, arXiv 2305.11540)",
            "A new text encoder for one target language is trained while the UNet and the image side stay frozen. For "
            "an image with an English and a target caption, the UNet's cross-attention outputs, queried by the "
            "image's own latents, should be the same under either caption: MSE between them. No public code; the "
            "study reconstructs it from the paper (labelled). One run per target language.",
            "image -> noisy latent -> UNet queries (frozen)\n"
            "   English caption -> CLIP text (frozen) -> attn2 outputs --MSE-- attn2 outputs <- new encoder(target caption)"),
    "mulan": ("MuLan language adapter (Xing et al., 2024)",
              "A small adapter between a frozen multilingual encoder and the frozen UNet: an input projection, 120 "
              "learned queries, one encoder and one decoder transformer layer. Trained on English image-text only "
              "with the ordinary denoising loss through the frozen UNet; other languages come for free from the "
              "encoder's cross-lingual alignment, which the study measures rather than assumes.",
              "caption (en) -> multilingual encoder (frozen) -> adapter (trained) -> UNet (frozen) -> denoising loss"),
    "pea": ("PEA-Diffusion (Ma et al., ECCV 2024)",
            "A LayerNorm plus bias-free three-layer MLP maps the multilingual encoder's states to what the UNet reads; "
            "UNet frozen. Loss (PEA code): denoising on target-language samples + MSE to the teacher's noise "
            "prediction under the English caption + 0.1 x MSE between student and teacher UNet block features (all "
            "down, mid and up blocks). One run per target language.",
            "caption (X) -> encoder (frozen) -> PEA adapter -> UNet (frozen) --KD-- UNet(English caption) teacher"),
    "full_finetune": ("Full fine-tuning: the cost reference",
                      "The multilingual encoder (plus a projection) and the whole UNet train on multilingual "
                      "image-text with the denoising loss. Copies of both train; the backbone is never changed. "
                      "This is the 100% row of every cost table.",
                      "caption (X) -> encoder copy (trained) -> UNet copy (trained) -> denoising loss"),
}

PARAMETERS = '''preset: str = "toy"  # backbone scale: "toy" (built-in world, CPU) or "sd15" (weights in the Hugging Face cache)
language: str = "de"  # the language this cell evaluates in (and trains for, for per-language methods)
seed: int = 0  # seed of the initial weights, the training batches and noise, and the evaluation noise
budget: float = 1.0  # share of each stage's training steps to run, in (0, 1]
n_prompts: int = 40  # generation prompts evaluated in this language
smoke: bool = False  # shrink every size for a quick check (the tests run this)
output_dir: str = "papermill_runs"  # runs, checkpoints and the results table live under <output_dir>/<preset>/
overrides: dict = {}  # study settings changed from the preset, by dotted name, e.g. {"evaluation.n_culture": 10}'''


def with_kernel(cells: list) -> nbformat.NotebookNode:
    """A notebook of `cells` that names the project's kernel (the one `make lab` registers)."""
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def notebook(name: str) -> nbformat.NotebookNode:
    title, prose, diagram = PROSE[name]
    cls = METHODS.get(name)
    scope = ("trains one model per target language" if cls.per_language
             else "trains once for all languages (the first cell trains, the others reuse it)")
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# `{name}`: {title}\n\n{prose}\n\n```\n{diagram}\n```\n\nThis method {scope}. The sweep "
            "(`python -m xlcore sweep`) runs this notebook once per language and seed with papermill; every number "
            "it appends to the results table carries its protocol. Stages, deviations and parameter counts: "
            "README, *The methods*."),
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from IPython.display import Markdown, display\n\n"
            "from xlcore.cell import Cell, CellRun, generation_figure\n"
            "from xlcore.plotting import show\n\n"
            f"run = CellRun(Cell(preset, {name!r}, language, seed), smoke=smoke, output_dir=output_dir, budget=budget,\n"
            "              n_prompts=n_prompts, overrides=overrides)\n"
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
            "`xlcore.evaluate`'s (README, *Evaluation*)."),
        nbformat.v4.new_code_cell(
            PARAMETERS.replace('budget: float = 1.0  # share of each stage\'s training steps to run, in (0, 1]\n', "")
            .replace('preset: str = "toy"', 'method: str = "english-backbone"  # "english-backbone" or a trained method\n'
                     'preset: str = "toy"').replace('language: str = "de"', 'language: str = "en"'),
            metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from xlcore.cell import Cell, CellRun, generation_figure\n"
            "from xlcore.plotting import show\n\n"
            "run = CellRun(Cell(preset, method, language, seed), smoke=smoke, output_dir=output_dir, n_prompts=n_prompts,\n"
            "              overrides=overrides)\n"
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
            "(README, *Evaluation*), not comparable with published numbers."),
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


def main() -> None:
    OUT.mkdir(exist_ok=True)
    missing = sorted(set(METHODS.names()) - set(PROSE))
    if missing:
        raise SystemExit(f"write the prose for {missing} in {__file__} first")
    for name in METHODS.names():
        nb = notebook(name)
        for index, cell in enumerate(nb.cells):
            cell["id"] = f"{name}-{index}"  # stable ids: regenerating an unchanged notebook changes nothing
        nbformat.write(nb, OUT / f"{name}.ipynb")
        print(OUT / f"{name}.ipynb")
    for stem, nb in (("evaluate", evaluation_notebook()), ("analysis", analysis_notebook())):
        for index, cell in enumerate(nb.cells):
            cell["id"] = f"{stem}-{index}"
        nbformat.write(nb, OUT.parent / f"{stem}.ipynb")
        print(OUT.parent / f"{stem}.ipynb")


if __name__ == "__main__":
    main()
