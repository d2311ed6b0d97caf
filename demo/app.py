"""The study's Gradio demo: every trained method drawing one prompt side by side, one method across six
languages, and the cost/quality results.

    make demo                      # http://127.0.0.1:7860, the toy study's seed-0 runs
    python demo/app.py --help      # preset, seed, port, host, share

Everything here is presentation: the models, the prompt checks and readings and the numbers come from
`xlcore` (`xlcore.serving.Catalogue` loads each trained run once and keeps it; `xlcore.prompts` reads a
prompt with the world's grammars; `xlcore.analysis` reads the results table). Every callback turns an
`XlcoreError` into a message in the page, never a traceback; every text the user typed is shown as typed
(`literal`), never rendered; requests are queued with one drawing at a time (the models are shared).
The Generate tab's settings travel in the URL (`?prompt=...&lang=de&seed=3&steps=25&guidance=4`).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlencode

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from xlcore.cell import ENGLISH_BACKBONE  # noqa: E402
from xlcore.config import LANGUAGE_NAMES  # noqa: E402
from xlcore.errors import XlcoreError, code_span  # noqa: E402

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "demo" / "weights"  # half-precision copies of the toy study's seed-0 runs
MAX_QUEUE = 16  # requests waiting beyond this are turned away by the queue, not left to pile up
CSS = """
.xl-note {font-size: 0.9em}
.caption-label {white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  max-width: none !important}
"""


# --------------------------------------------------------------------------------------------------
# Callbacks (plain functions of the catalogue and the inputs: the unit tests call them directly)


def _image(tensor) -> np.ndarray:
    return (tensor.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def literal(text: object) -> str:
    """User text shown as typed, never rendered as Markdown or HTML (a code span, `xlcore.errors.code_span`)."""
    return code_span(text)


def _error_markdown(err: object) -> str:
    return f"**Cannot draw:** {err}"


def reading_note(catalogue, prompt: str, language: str) -> str:
    """What the world makes of the prompt (shown under the box as it is typed): the scene it parses to and
    its English, or the words the world does not use and a script or language mismatch."""
    if not prompt or not prompt.strip() or language not in catalogue.languages:
        return ""
    reading = catalogue.read(prompt, language)
    if reading is None:
        return ""
    if reading.parsed:
        return f"✓ {literal(prompt)} {reading.describe()}"
    return (f"⚠ {literal(prompt)}: {reading.describe()}. The systems still draw it, but the world's models never "
            "saw it (the examples are sentences they know).")


def examples(catalogue, language: str) -> list[str]:
    """Example prompts in `language`: parallel world prompts, then its culture concepts."""
    world = catalogue.world
    if world is None or language not in catalogue.languages:
        return []
    prompts = [item.captions[language] for item in world.generation_prompts()[:8]]
    if language != "en":
        prompts += [item.captions[language] for item in world.culture_prompts(language)[:4]]
    return prompts


def example_choices(catalogue, language: str) -> list[tuple[str, str]]:
    """(label, prompt) for the examples dropdown: each example with its English meaning."""
    out = []
    for text in examples(catalogue, language):
        english = catalogue.english_version(text, language)
        meaning = "" if language == "en" else f"  —  {english}" if english else "  —  (a culture concept English has no word for)"
        out.append((text + meaning, text))
    return out


def prompt_for(catalogue, prompt: str, old: str, new: str) -> str:
    """The prompt when the language changes from `old` to `new`: the same scene in the new language where
    the world reads the prompt, else the new language's first example (never the old text in the new box)."""
    reading = catalogue.read(prompt, old) if prompt and prompt.strip() and old in catalogue.languages else None
    translated = reading.said_in(new) if reading is not None else None
    return translated or (examples(catalogue, new) or [prompt])[0]


def system_captions(catalogue, frame: pd.DataFrame | None) -> dict[str, str]:
    """Per system, the gallery caption's fixed part: what it is, its trainable parameters (largest
    stage) and training time (from the results table)."""
    from xlcore.report import method_cost

    costs = method_cost(frame) if frame is not None and not frame.empty else pd.DataFrame()
    out = {ENGLISH_BACKBONE: f"{ENGLISH_BACKBONE} · the untouched English pipeline, drawing the English prompt"}
    for name, entry in catalogue.entries.items():
        parts = [name, entry.label]
        if name in costs.index:
            params, seconds = costs.at[name, "trainable_parameters"], costs.at[name, "train_seconds"]
            if pd.notna(params):
                parts.append(f"{int(params):,} trainable")
            if pd.notna(seconds):
                parts.append(f"trained {'≥' if not costs.at[name, 'time_complete'] else ''}{seconds / 60:.1f} min")
        elif not entry.trainable:
            parts.append("trains nothing")
        out[name] = " · ".join(parts)
    return out


def _download(drawn, prompt: str, language: str, seed: int, steps: int, guidance: float) -> str | None:
    """A zip of every image drawn (PNG) and rows.csv (system, prompt, settings, seconds, parameters, note)."""
    ok = [d for d in drawn if d.ok]
    if not ok:
        return None
    handle, path = tempfile.mkstemp(prefix="xlcore-demo-", suffix=".zip")
    os.close(handle)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["system", "prompt", "language", "seed", "steps", "guidance", "seconds", "trainable_parameters",
                     "note", "image"])
    with zipfile.ZipFile(path, "w") as archive:
        for d in ok:
            buffer = io.BytesIO()
            Image.fromarray(_image(d.image)).save(buffer, format="PNG")
            archive.writestr(f"{d.name}.png", buffer.getvalue())
            writer.writerow([d.name, prompt, language, seed, steps, guidance, f"{d.seconds:.3f}", d.trainable_parameters,
                             d.message, f"{d.name}.png"])
        archive.writestr("rows.csv", rows.getvalue())
    return path


def settings_link(prompt: str, language: str, seed, steps, guidance) -> str:
    """A link to the page with these settings filled in."""
    query = urlencode({"prompt": prompt, "lang": language, "seed": int(seed), "steps": int(steps),
                       "guidance": float(guidance)})
    return f"[Link to these settings](?{query})"


def generate_each(catalogue, captions: dict[str, str], prompt: str, language: str, names: Sequence[str] | None = None,
                  seed: float = 0, steps: float = 25, guidance: float = 4.0) -> Iterator[tuple]:
    """Generate tab: (gallery items, message, timing table, download) after each system finishes, so every
    image appears as its method is done. Every system draws the prompt with the same noise."""
    names = list(names) if names else [ENGLISH_BACKBONE, *catalogue.entries]
    try:
        checked = catalogue.check(prompt, language)
    except XlcoreError as err:
        yield [], _error_markdown(err), pd.DataFrame(), None
        return
    head = [f"Drawing {literal(checked.text)} ({LANGUAGE_NAMES.get(language, language)}) with {len(names)} systems"]
    head += [f"- note: {note}" for note in checked.notes]
    drawn, items = [], []
    for d in catalogue.draw_each(checked, language, names=names, seed=int(seed), steps=int(steps),
                                 guidance_scale=float(guidance)):
        drawn.append(d)
        if d.ok:
            extra = f" · {d.message}" if d.message else ""
            items.append((_image(d.image), f"{captions.get(d.name, d.name)} · {d.seconds:.2f} s{extra}"))
        progress = f"{len(drawn)} of {len(names)} drawn" + (f" (now: {d.name})" if len(drawn) < len(names) else "")
        yield list(items), _message(head, drawn, progress), _timings(drawn), None
    done = [f"Drew {literal(checked.text)} ({LANGUAGE_NAMES.get(language, language)}) with {len(items)} systems."]
    done += head[1:]
    yield items, _message(done, drawn, settings_link(checked.text, language, seed, steps, guidance)), _timings(drawn), \
        _download(drawn, checked.text, language, int(seed), int(steps), float(guidance))


def _message(head: list[str], drawn, tail: str) -> str:
    lines = list(head)
    missing = [d for d in drawn if not d.ok]
    if missing:
        lines.append("\nUnavailable here:")
        lines += [f"- **{d.name}**: {d.message}" for d in missing]
    return "\n".join(lines + ["", tail])


def _timings(drawn) -> pd.DataFrame:
    return pd.DataFrame([{"system": d.name, "seconds": round(d.seconds, 2), "trainable parameters": d.trainable_parameters,
                          "note": d.message} for d in drawn if d.ok])


def generate(catalogue, prompt: str, language: str, seed: float = 0, steps: float = 25, guidance: float = 4.0,
             names: Sequence[str] | None = None):
    """Every system at once: (gallery items, message) of the last step of `generate_each`."""
    *_, last = generate_each(catalogue, {}, prompt, language, names, seed, steps, guidance)
    return last[0], last[1]


def compare(catalogue, method: str, english_prompt: str, seed: float = 0, steps: float = 25, guidance: float = 4.0):
    """Compare tab: one method, the same world prompt in every language. Returns (gallery items, message)."""
    world = catalogue.world
    if world is None:
        return [], "The compare view uses the built-in world's parallel prompts (toy preset)."
    by_english = {item.captions["en"]: item for item in world.generation_prompts()}
    item = by_english.get(english_prompt)
    if item is None:
        return [], _error_markdown(f"{literal(english_prompt)} is not one of the world's parallel prompts; pick one "
                                   "from the list")
    if method != ENGLISH_BACKBONE and method not in catalogue.entries:
        return [], _error_markdown(f"unknown method {literal(method)}")
    languages = [lang for lang in catalogue.languages
                 if not (method == ENGLISH_BACKBONE and lang != "en")]
    drawn = catalogue.draw_languages(method, {lang: item.captions[lang] for lang in languages}, seed=int(seed),
                                     steps=int(steps), guidance_scale=float(guidance))
    items = [(_image(d.image), f"{d.label}: {item.captions[d.label]} · {d.seconds:.2f} s") for d in drawn if d.ok]
    lines = [f"**{method}**: the same prompt and noise in {len(items)} languages (seed {int(seed)}, {int(steps)} steps, "
             f"guidance {float(guidance):g})."]
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


def results_view(frame: pd.DataFrame | None, metric: str, cost: str, language: str):
    """Results tab, rebuilt whole on every change: (figure, the rows it plots, caption). The figure and the
    rows come from the same `quality_points`, so the plot can never show another selection's numbers."""
    from xlcore.analysis import COST_AXES, METRIC_LABELS, quality_figure, quality_points
    from xlcore.plotting import plt

    columns = ["method", "quality (mean)", "std", "seeds", "cost", "Pareto front"]
    if frame is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.text(0.5, 0.5, "no results table yet: run `make study`", ha="center", transform=ax.transAxes)
        return fig, pd.DataFrame(columns=columns), "No results table yet: run `make study`."
    points = quality_points(frame, metric, None if language == "all" else language)
    where = "over each method's target languages" if language == "all" else f"in {LANGUAGE_NAMES.get(language, language)}"
    fig = quality_figure(points, metric, cost, title=f"{METRIC_LABELS.get(metric, metric)}, {where}")
    shown = points.dropna(subset=["mean"])
    rows = pd.DataFrame({"method": shown["method"], "quality (mean)": shown["mean"].round(4),
                         "std": shown["std"].round(4), "seeds": shown["n"], "cost": shown[cost].round(1),
                         "Pareto front": shown[f"front_{cost}"].map({True: "yes", False: ""})})
    plotted = rows[rows["cost"].notna() & (rows["cost"] > 0)]
    front = ", ".join(plotted.loc[plotted["Pareto front"] == "yes", "method"])
    caption = (f"x: {COST_AXES[cost]}, log scale; y: {METRIC_LABELS.get(metric, metric)} {where}, mean over seeds with "
               f"its std as the error bar. On the Pareto front: {front or '-'}. Rows without a cost (the references) "
               "are drawn as lines.")
    return fig, rows, caption


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


def settings_from_url(request: gr.Request | None, languages: Sequence[str], default_prompt: str, steps: int):
    """The Generate tab's inputs from the page's query (`?prompt=...&lang=...&seed=...`), defaults otherwise."""
    query = dict(request.query_params) if request is not None else {}
    language = query.get("lang") if query.get("lang") in languages else "de"

    def number(key, default, kind):
        try:
            return kind(query[key])
        except (KeyError, ValueError):
            return default

    return (query.get("prompt") or default_prompt, language, number("seed", 0, int), number("steps", steps, int),
            number("guidance", 4.0, float))


# --------------------------------------------------------------------------------------------------
# The app


def create_demo(output_dir: str | Path = REPO / "papermill_runs", preset: str = "toy", seed: int = 0,
                shipped: Sequence[str | Path] = (SHIPPED,), catalogue=None, steps: int = 25,
                max_queue: int = MAX_QUEUE) -> gr.Blocks:
    """The demo over the trained runs of `preset` and `seed` under `output_dir` (falling back to the
    shipped copies) and its results table."""
    from xlcore.analysis import COST_AXES, METRIC_LABELS, audit_claims, generation_table, retrieval_table
    from xlcore.serving import Catalogue

    output_dir = Path(output_dir)
    if catalogue is None:
        catalogue = Catalogue(output_dir, preset, seed, shipped=shipped, steps=steps)
    results_path = output_dir / preset / "results.csv"
    frame = results_frame(results_path)
    systems = [ENGLISH_BACKBONE, *catalogue.entries]
    captions = system_captions(catalogue, frame)
    language_choices = [(f"{LANGUAGE_NAMES.get(code, code)} ({code})", code) for code in catalogue.languages]
    first_prompt = (examples(catalogue, "de") or [""])[0]

    with gr.Blocks(title="Cross-lingual adaptation of a frozen text-to-image model") as demo:
        gr.Markdown(f"# Cross-lingual adaptation of a frozen text-to-image model\n"
                    f"Preset **{preset}**, seed {seed}. Every method adapts the same frozen English model; "
                    "the English reference draws the English version of the prompt.")
        if not catalogue.available():
            gr.Markdown("**No trained method is here yet.** Run `make study` (or the command under each method "
                        "below); the baselines that train nothing still draw.", elem_id="no-runs")

        with gr.Tab("Generate", id="generate"):
            with gr.Row():
                prompt = gr.Textbox(label="Prompt", lines=2, scale=4, elem_id="prompt", value=first_prompt)
                language = gr.Dropdown(language_choices, value="de", label="Language", scale=1, elem_id="language")
            reading = gr.Markdown(reading_note(catalogue, first_prompt, "de"), elem_id="prompt-reading",
                                  elem_classes="xl-note")
            example = gr.Dropdown(example_choices(catalogue, "de"), value=None, elem_id="examples",
                                  label="Examples (what the world's models know), with their English meaning")
            picked = gr.CheckboxGroup(systems, value=systems, label="Systems to draw (none ticked: all)", elem_id="systems")
            with gr.Accordion("Settings", open=False, elem_id="settings-accordion"):
                seed_box = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="seed")
                steps_box = gr.Slider(1, 50, value=steps, step=1, label="Sampling steps (DDIM)", elem_id="steps")
                guidance_box = gr.Slider(1.0, 10.0, value=4.0, step=0.5, label="Guidance scale", elem_id="guidance")
            button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            gallery = gr.Gallery(label="One prompt, every method (same noise)", columns=6, height=None, object_fit="contain",
                                 elem_id="generate-gallery", format="png")
            message = gr.Markdown(elem_id="generate-message", elem_classes="xl-note")
            download = gr.File(label="All images and their rows (zip)", elem_id="download", interactive=False)
            with gr.Accordion("Timings", open=False):
                timings = gr.Dataframe(interactive=False, wrap=True, elem_id="timings")
            gr.Markdown("### Systems: what each is, and where its weights are")
            systems_table = pd.DataFrame(catalogue.status()).fillna("")
            systems_table = systems_table[[c for c in ("system", "label", "status", "weights", "train with")
                                           if c in systems_table]].rename(columns={"label": "what it is"})
            gr.Dataframe(systems_table, interactive=False, wrap=True, elem_id="systems-table",
                         column_widths=["14%", "40%", "10%", "16%", "20%"][:len(systems_table.columns)])

            def switch_language(lang, text, previous):
                if lang == previous:  # the dropdown can report one choice twice: the second must change nothing
                    return gr.update(), gr.update(), lang
                return (gr.update(choices=example_choices(catalogue, lang), value=None),
                        prompt_for(catalogue, text, previous, lang), lang)

            previous_language = gr.State("de")
            # .input: the user's changes only (a programmatic update, e.g. from the URL, must not re-fire them)
            language.input(switch_language, [language, prompt, previous_language], [example, prompt, previous_language])
            example.input(lambda text, current: text or current, [example, prompt], prompt)
            prompt.change(lambda text, lang: reading_note(catalogue, text, lang), [prompt, language], reading)
            def run_generate(text, lang, names, seed_value, steps_value, guidance_value):
                yield from generate_each(catalogue, captions, text, lang, names, seed_value, steps_value, guidance_value)

            def from_url(request: gr.Request):
                values = settings_from_url(request, catalogue.languages, first_prompt, steps)
                return (*values, values[1], reading_note(catalogue, values[0], values[1]),
                        gr.update(choices=example_choices(catalogue, values[1]), value=None))

            button.click(run_generate, [prompt, language, picked, seed_box, steps_box, guidance_box],
                         [gallery, message, timings, download], concurrency_limit=1, concurrency_id="draw",
                         api_name="generate")
            demo.load(from_url, None, [prompt, language, seed_box, steps_box, guidance_box, previous_language, reading,
                                       example])

        with gr.Tab("Compare languages", id="compare"):
            english_prompts = [item.captions["en"] for item in catalogue.world.generation_prompts()[:20]] \
                if catalogue.world is not None else []
            with gr.Row():
                method = gr.Dropdown(systems, value="altdiffusion" if "altdiffusion" in systems else systems[0],
                                     label="Method", elem_id="compare-method")
                parallel = gr.Dropdown(english_prompts, value=english_prompts[0] if english_prompts else None,
                                       label="Prompt (shown in English; drawn in each language)")
            with gr.Row():
                compare_seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="compare-seed")
                compare_steps = gr.Slider(1, 50, value=steps, step=1, label="Sampling steps (DDIM)",
                                          elem_id="compare-steps")
                compare_guidance = gr.Slider(1.0, 10.0, value=4.0, step=0.5, label="Guidance scale",
                                             elem_id="compare-guidance")
            compare_button = gr.Button("Draw in every language", variant="primary", elem_id="compare-button")
            compare_gallery = gr.Gallery(label="One method, six languages", columns=6, height="auto", format="png",
                                         elem_id="compare-gallery")
            compare_message = gr.Markdown(elem_id="compare-message", elem_classes="xl-note")
            compare_button.click(lambda m, p, s, n, g: compare(catalogue, m, p, s, n, g),
                                 [method, parallel, compare_seed, compare_steps, compare_guidance],
                                 [compare_gallery, compare_message], concurrency_limit=1, concurrency_id="draw",
                                 api_name="compare")

        with gr.Tab("Results", id="results"):
            if frame is None:
                gr.Markdown(f"No results table at `{results_path}` yet: run `make study`.", elem_id="no-results")
            measured = set(frame["metric"]) if frame is not None else set(METRIC_LABELS)  # only metrics with rows
            metrics = ["consistency_clip_cos", *[m for m in METRIC_LABELS if m != "consistency_clip_cos" and m in measured]]
            with gr.Row():
                metric = gr.Dropdown([(METRIC_LABELS[m], m) for m in metrics], value="consistency_clip_cos",
                                     label="Quality metric", elem_id="metric")
                cost = gr.Dropdown([(label, c) for c, label in COST_AXES.items()], value="trainable_parameters",
                                   label="Cost", elem_id="cost")
                plot_language = gr.Dropdown([("all target languages (mean)", "all"), *language_choices], value="all",
                                            label="Language", elem_id="plot-language")
            figure, rows, caption = results_view(frame, "consistency_clip_cos", "trainable_parameters", "all")
            plot = gr.Plot(figure, elem_id="quality-plot", format="png")
            plot_caption = gr.Markdown(caption, elem_id="plot-caption")
            plot_rows = gr.Dataframe(rows, interactive=False, elem_id="plot-rows", label="The rows behind the plot")
            for control in (metric, cost, plot_language):
                control.change(lambda m, c, lang: results_view(frame, m, c, lang), [metric, cost, plot_language],
                               [plot, plot_rows, plot_caption])

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
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False, css=CSS)


if __name__ == "__main__":
    main()
