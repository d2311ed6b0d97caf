"""The study's Gradio demo: every trained method drawing one prompt side by side, one method across six
languages, and the cost/quality results.

    make demo                      # http://127.0.0.1:7860, the toy study's seed-0 runs
    python demo/app.py --help      # preset, seed, port, host, share

Everything here is presentation: the models, the prompt checks and the numbers come from `xlcore`
(`xlcore.serving.Catalogue` loads each trained run once and keeps it; `xlcore.analysis` reads the
results table). Every callback turns an `XlcoreError` into a message in the page, never a traceback,
and requests are queued with one drawing at a time (the models are shared).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xlcore.cell import ENGLISH_BACKBONE  # noqa: E402
from xlcore.errors import XlcoreError  # noqa: E402

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "demo" / "weights"  # half-precision copies of the toy study's seed-0 runs
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech", "zh": "Chinese", "ja": "Japanese"}
MAX_QUEUE = 16  # requests waiting beyond this are turned away by the queue, not left to pile up
CSS = ".xl-note {font-size: 0.9em}"


# --------------------------------------------------------------------------------------------------
# Callbacks (plain functions of the catalogue and the inputs: the unit tests call them directly)


def _image(tensor) -> np.ndarray:
    return (tensor.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def _error_markdown(err: Exception) -> str:
    return f"**Cannot draw:** {err}"


def examples(catalogue, language: str) -> list[str]:
    """Example prompts in `language`: parallel world prompts, then its culture concepts."""
    world = catalogue.world
    if world is None or language not in catalogue.languages:
        return []
    prompts = [item.captions[language] for item in world.generation_prompts()[:8]]
    if language != "en":
        prompts += [item.captions[language] for item in world.culture_prompts(language)[:4]]
    return prompts


def generate(catalogue, prompt: str, language: str, seed: float = 0, steps: float = 25, guidance: float = 4.0):
    """Generate tab: (gallery items, message). Every system draws the prompt with the same noise."""
    try:
        checked, drawn = catalogue.draw(prompt, language, seed=int(seed), steps=int(steps), guidance_scale=float(guidance))
    except XlcoreError as err:
        return [], _error_markdown(err)
    items = [(_image(d.image), d.caption()) for d in drawn if d.ok]
    lines = [f"Drew **{checked.text}** ({LANGUAGE_NAMES.get(language, language)}) with {len(items)} systems."]
    lines += [f"- note: {note}" for note in checked.notes]
    if items:
        lines += ["", "| system | seconds | trainable parameters | note |", "| --- | ---: | ---: | --- |"]
        lines += [f"| {d.name} | {d.seconds:.2f} | {d.trainable_parameters:,} | {d.message} |" for d in drawn if d.ok]
    missing = [d for d in drawn if not d.ok]
    if missing:
        lines.append("\nUnavailable here:")
        lines += [f"- **{d.name}**: {d.message}" for d in missing]
    return items, "\n".join(lines)


def compare(catalogue, method: str, english_prompt: str, seed: float = 0, steps: float = 25, guidance: float = 4.0):
    """Compare tab: one method, the same world prompt in every language. Returns (gallery items, message)."""
    world = catalogue.world
    if world is None:
        return [], "The compare view uses the built-in world's parallel prompts (toy preset)."
    by_english = {item.captions["en"]: item for item in world.generation_prompts()}
    item = by_english.get(english_prompt)
    if item is None:
        return [], _error_markdown(f"{english_prompt!r} is not one of the world's parallel prompts; pick one from the list")
    if method != ENGLISH_BACKBONE and method not in catalogue.entries:
        return [], _error_markdown(f"unknown method {method!r}")
    languages = [lang for lang in catalogue.languages
                 if not (method == ENGLISH_BACKBONE and lang != "en")]
    drawn = catalogue.draw_languages(method, {lang: item.captions[lang] for lang in languages}, seed=int(seed),
                                     steps=int(steps), guidance_scale=float(guidance))
    items = [(_image(d.image), f"{d.label}: {item.captions[d.label]} · {d.seconds:.2f} s") for d in drawn if d.ok]
    lines = [f"**{method}**: the same prompt and noise in {len(items)} languages."]
    lines += [f"- **{d.name}**: {d.message}" for d in drawn if not d.ok]
    return items, "\n".join(lines)


def results_frame(results_path: Path) -> pd.DataFrame | None:
    from xlcore.results import ResultsStore

    if not results_path.exists():
        return None
    try:
        return ResultsStore(results_path).read()
    except XlcoreError as err:
        log.warning("results table unreadable: %s", err)
        return None


def quality_plot(frame: pd.DataFrame | None, metric: str, cost: str, language: str) -> tuple[pd.DataFrame, str]:
    """Results tab: the scatter's points (method, cost, quality, Pareto front) and a caption."""
    from xlcore.analysis import COST_AXES, quality_points

    columns = ["method", "cost", "quality", "front"]
    if frame is None:
        return pd.DataFrame(columns=columns), "No results table yet: run `make study`."
    points = quality_points(frame, metric, None if language == "all" else language)
    points = points.dropna(subset=[cost, "mean"])
    points = points[points[cost] > 0]
    if points.empty:
        return pd.DataFrame(columns=columns), f"No method has both {metric} and {COST_AXES[cost]} here."
    data = pd.DataFrame({"method": points["method"], "cost": np.log10(points[cost].astype(float)),
                         "quality": points["mean"].astype(float),
                         "front": np.where(points[f"front_{cost}"], "Pareto front", "dominated")})
    front = ", ".join(points.loc[points[f"front_{cost}"], "method"])
    return data, f"x: log10 of {COST_AXES[cost]}. On the Pareto front: {front or '-'}."


def filtered_table(table: pd.DataFrame, methods: Sequence[str], languages: Sequence[str]) -> pd.DataFrame:
    """A results table (method index, or (method, language) index, language columns) cut to the selection."""
    if table.empty:
        return table
    flat = table.reset_index()
    if methods:
        flat = flat[flat["method"].isin(methods)]
    if "language" in flat.columns:
        if languages:
            flat = flat[flat["language"].isin(languages)]
    elif languages:
        keep = [c for c in flat.columns if c not in LANGUAGE_NAMES or c in languages]
        flat = flat[keep]
    return flat


# --------------------------------------------------------------------------------------------------
# The app


def create_demo(output_dir: str | Path = REPO / "papermill_runs", preset: str = "toy", seed: int = 0,
                shipped: Sequence[str | Path] = (SHIPPED,), catalogue=None, steps: int = 25,
                max_queue: int = MAX_QUEUE) -> gr.Blocks:
    """The demo over the trained runs of `preset` and `seed` under `output_dir` (falling back to the
    shipped copies) and its results table."""
    from xlcore.analysis import COST_AXES, GENERATION_METRICS, audit_claims, generation_table, retrieval_table
    from xlcore.serving import Catalogue

    output_dir = Path(output_dir)
    if catalogue is None:
        catalogue = Catalogue(output_dir, preset, seed, shipped=shipped, steps=steps)
    results_path = output_dir / preset / "results.csv"
    frame = results_frame(results_path)
    systems = [ENGLISH_BACKBONE, *catalogue.entries]
    language_choices = [(f"{LANGUAGE_NAMES.get(code, code)} ({code})", code) for code in catalogue.languages]
    metrics = {"consistency_clip_cos": GENERATION_METRICS["consistency_clip_cos"][0],
               **{m: label for m, (label, _, _) in GENERATION_METRICS.items()}, "mean_recall": "retrieval mean recall"}

    with gr.Blocks(title="Cross-lingual adaptation of a frozen text-to-image model") as demo:
        gr.Markdown(f"# Cross-lingual adaptation of a frozen text-to-image model\n"
                    f"Preset **{preset}**, seed {seed}. Every method adapts the same frozen English model; "
                    "the English reference draws the English version of the prompt.")
        if not catalogue.available():
            gr.Markdown("**No trained method is here yet.** Run `make study` (or the command under each method "
                        "below); the baselines that train nothing still draw.", elem_id="no-runs")

        with gr.Tab("Generate", id="generate"):
            with gr.Row():
                prompt = gr.Textbox(label="Prompt", lines=2, scale=4, elem_id="prompt",
                                    value=(examples(catalogue, "de") or [""])[0])
                language = gr.Dropdown(language_choices, value="de", label="Language", scale=1, elem_id="language")
            example = gr.Dropdown(examples(catalogue, "de"), label="Examples (world prompts, then culture concepts)",
                                  value=None, elem_id="examples")
            with gr.Accordion("Advanced", open=False):
                seed_box = gr.Number(value=0, precision=0, label="Seed", minimum=0)
                steps_box = gr.Slider(1, 50, value=steps, step=1, label="Sampling steps (DDIM)")
                guidance_box = gr.Slider(1.0, 10.0, value=4.0, step=0.5, label="Guidance scale")
            button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            message = gr.Markdown(elem_id="generate-message", elem_classes="xl-note")
            gallery = gr.Gallery(label="One prompt, every method (same noise)", columns=6, height="auto",
                                 elem_id="generate-gallery", format="png")
            status = pd.DataFrame(catalogue.status()).fillna("")
            with gr.Accordion("Systems and where their weights are", open=False):
                gr.Dataframe(status, interactive=False, wrap=True)

            language.change(lambda lang: gr.update(choices=examples(catalogue, lang), value=None), language, example)
            example.change(lambda text, current: text or current, [example, prompt], prompt)
            button.click(lambda *a: generate(catalogue, *a), [prompt, language, seed_box, steps_box, guidance_box],
                         [gallery, message], concurrency_limit=1, concurrency_id="draw", api_name="generate")

        with gr.Tab("Compare languages", id="compare"):
            english_prompts = [item.captions["en"] for item in catalogue.world.generation_prompts()[:20]] \
                if catalogue.world is not None else []
            with gr.Row():
                method = gr.Dropdown(systems, value="altdiffusion" if "altdiffusion" in systems else systems[0],
                                     label="Method", elem_id="compare-method")
                parallel = gr.Dropdown(english_prompts, value=english_prompts[0] if english_prompts else None,
                                       label="Prompt (shown in English; drawn in each language)")
            compare_button = gr.Button("Draw in every language", variant="primary", elem_id="compare-button")
            compare_message = gr.Markdown(elem_id="compare-message", elem_classes="xl-note")
            compare_gallery = gr.Gallery(label="One method, six languages", columns=6, height="auto", format="png",
                                         elem_id="compare-gallery")
            compare_button.click(lambda m, p, s, n, g: compare(catalogue, m, p, s, n, g),
                                 [method, parallel, seed_box, steps_box, guidance_box], [compare_gallery, compare_message],
                                 concurrency_limit=1, concurrency_id="draw", api_name="compare")

        with gr.Tab("Results", id="results"):
            if frame is None:
                gr.Markdown(f"No results table at `{results_path}` yet: run `make study`.", elem_id="no-results")
            with gr.Row():
                metric = gr.Dropdown([(label, m) for m, label in metrics.items()], value="consistency_clip_cos",
                                     label="Quality metric")
                cost = gr.Dropdown([(label, c) for c, label in COST_AXES.items()], value="trainable_parameters",
                                   label="Cost")
                plot_language = gr.Dropdown([("all target languages (mean)", "all"), *language_choices], value="all",
                                            label="Language")
            first, first_caption = quality_plot(frame, "consistency_clip_cos", "trainable_parameters", "all")
            plot = gr.ScatterPlot(first, x="cost", y="quality", color="front", tooltip=["method", "cost", "quality"],
                                  x_title="log10 cost", y_title="quality", height=380, elem_id="quality-plot",
                                  color_map={"Pareto front": "#d62728", "dominated": "#1f77b4"})
            plot_caption = gr.Markdown(first_caption, elem_id="plot-caption")

            def redraw(m, c, lang):
                data, caption = quality_plot(frame, m, c, lang)
                return gr.update(value=data, y_title=metrics[m]), caption

            for control in (metric, cost, plot_language):
                control.change(redraw, [metric, cost, plot_language], [plot, plot_caption])

            tables = {"retrieval": retrieval_table(frame) if frame is not None else pd.DataFrame(),
                      "generation": generation_table(frame) if frame is not None else pd.DataFrame()}
            with gr.Row():
                pick_methods = gr.CheckboxGroup(systems, label="Methods (none ticked: all)")
                pick_languages = gr.CheckboxGroup(list(catalogue.languages), label="Languages (none ticked: all)")
            gr.Markdown("### Retrieval: mean recall (world, first-caption protocol; mean ± std over seeds)")
            retrieval_view = gr.Dataframe(filtered_table(tables["retrieval"], [], []), interactive=False,
                                          elem_id="retrieval-table")
            gr.Markdown("### Generation (world; mean ± std over seeds)")
            generation_view = gr.Dataframe(filtered_table(tables["generation"], [], []), interactive=False,
                                           elem_id="generation-table")

            def refilter(ms, langs):
                return (filtered_table(tables["retrieval"], ms, langs), filtered_table(tables["generation"], ms, langs))

            for control in (pick_methods, pick_languages):
                control.change(refilter, [pick_methods, pick_languages], [retrieval_view, generation_view])

            gr.Markdown("### Claims audit: the original write-up's claims beside what this study measured")
            audit = audit_claims(results_path, frame) if frame is not None else pd.DataFrame()
            gr.Dataframe(audit, interactive=False, wrap=True, elem_id="claims-table")

    demo.queue(max_size=max_queue, default_concurrency_limit=1)
    return demo


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="toy")
    parser.add_argument("--seed", type=int, default=0, help="which seed's trained runs to serve")
    parser.add_argument("--output-dir", default=str(REPO / "papermill_runs"))
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--steps", type=int, default=25, help="default sampling steps (the Advanced slider)")
    parser.add_argument("--max-queue", type=int, default=MAX_QUEUE, help="requests that may wait; more are turned away")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo = create_demo(args.output_dir, args.preset, args.seed, steps=args.steps, max_queue=args.max_queue)
    # No allowed_paths: the server hands out only the files its own components produced.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False)


if __name__ == "__main__":
    main()
