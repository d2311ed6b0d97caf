"""Command line: `python -m xlcore <command>` (the Makefile's targets call these)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .config import LANGUAGES, StudyConfig, help_texts, load_preset, parse_override
from .errors import ConfigError, XlcoreError

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> StudyConfig:
    """The resolved settings tree of `--preset`/`--config`, `--smoke` and `--set` (see xlcore.settings)."""
    from .settings import read_study_config, resolve_study

    base = read_study_config(args.config) if getattr(args, "config", "") else None
    overrides = dict(parse_override(text) for text in getattr(args, "set", []))
    if getattr(args, "data", ""):
        overrides["data"] = str(Path(args.data).expanduser().resolve())
    preset = base.preset if base is not None else args.preset
    return resolve_study(preset, smoke=getattr(args, "smoke", False), overrides=overrides, base=base)


def _study(args: argparse.Namespace) -> int:
    from .study import run_study

    config = _settings(args)
    start = time.monotonic()
    ctx = run_study(config)
    print(f"\nStudy finished in {(time.monotonic() - start) / 60:.1f} min (work already in the results table is "
          "skipped). Outputs:")
    for path in dict.fromkeys(ctx.written):
        print(f"  {path}")
    return 0


def _config(args: argparse.Namespace) -> int:
    """Every settings field with its help text; with --file/--preset/--set also its resolved value."""
    import json

    from .config import to_dict
    from .registry import METHODS

    texts = {k: v for k, v in help_texts(StudyConfig).items() if k != "methods"}
    for name in METHODS.names():
        texts.update({f"methods.{name}.{k}": v for k, v in help_texts(METHODS.get(name).config_class).items()})
    if not (args.file or args.set or args.show_values):
        for name, text in texts.items():
            print(f"{name:40s} {text}")
        return 0
    args.config = args.file
    values = to_dict(_settings(args))

    def value_of(dotted: str):
        node = values
        for part in dotted.split("."):
            node = node[part]
        return node

    for name, text in texts.items():
        value = value_of(name)
        if not isinstance(value, dict):
            print(f"{name:40s} {json.dumps(value, ensure_ascii=False):24s} {text}")
    return 0


def _world_sample(args: argparse.Namespace) -> int:
    from .world import World

    config = load_preset(args.preset)
    world = World(config.world)
    test = world.retrieval_test()
    for index in range(args.n):
        item = test.item(index)
        print(item.scene.key())
        for lang, caption in item.captions.items():
            print(f"  {lang}: {caption}")
    return 0


def _world_chars(args: argparse.Namespace) -> int:
    from .world.scene import CULTURE_SHAPES
    from .world.grammars import get_grammar
    from .world.lexicon import all_captions

    chars = set()
    for lang in ("zh", "ja"):
        chars.update("".join(all_captions(get_grammar(lang), CULTURE_SHAPES.get(lang, ()))))
    print("".join(sorted(c for c in chars if ord(c) > 0x2000)))
    return 0


def _pretrain_toy(args: argparse.Namespace) -> int:
    from .backbone.pretrain import ToyPretrainConfig, pretrain_toy_backbone, smoke_config
    from .backbone.toy import ASSETS
    from .config import override

    config = smoke_config() if args.smoke else ToyPretrainConfig()
    overrides = dict(parse_override(text) for text in args.set)
    if args.components:
        overrides["components"] = args.components.split(",")
    if overrides:
        config = override(config, **overrides)
    out = pretrain_toy_backbone(config, args.work_dir, args.out_dir or ASSETS)
    print(f"toy backbone written to {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import backbone_quality_table, cost_table, methods_table

    config = load_preset(args.preset)
    table = methods_table if args.methods else cost_table if args.cost else backbone_quality_table
    print(table(config.results_path))
    return 0


def _cell(args: argparse.Namespace) -> int:
    from .cell import execute_cell

    try:
        parameters = json.loads(args.parameters)
    except json.JSONDecodeError as err:
        raise ConfigError(f"the cell's parameters are not JSON ({err})") from None
    print(json.dumps(execute_cell(parameters)))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .sweep import SweepConfig, grid, run_cell, run_sweep, slurm_script, summary

    def listed(text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())

    try:
        seeds = tuple(int(s) for s in listed(args.seeds))
        gpus = tuple(int(g) for g in listed(args.gpus))
        curve_seeds = tuple(int(s) for s in listed(args.curve_seeds))
        curve_budgets = tuple(float(b) for b in listed(args.curve_budgets))
    except ValueError as err:
        raise ConfigError(f"--seeds, --gpus, --curve-seeds and --curve-budgets take comma-separated numbers ({err})") from None
    config = SweepConfig(preset=args.preset, methods=listed(args.methods), languages=listed(args.languages),
                         seeds=seeds, budget=args.budget, curve_budgets=curve_budgets, curve_seeds=curve_seeds,
                         n_prompts=args.prompts, smoke=args.smoke,
                         output_dir=args.output_dir, kernel=args.kernel, gpus=gpus, executor=args.executor,
                         english_reference=not args.no_english_reference, retrain=args.retrain,
                         overrides=tuple(args.set) + ((f"data={Path(args.data).expanduser().resolve()}",) if args.data else ()),
                         config_file=args.config)
    cells = grid(config)
    if args.emit_slurm:
        print(f"wrote {slurm_script(config, args.emit_slurm)} ({len(cells)} tasks); submit it with sbatch")
        return 0
    if args.cell_index is not None:
        if not 0 <= args.cell_index < len(cells):
            raise ConfigError(f"--cell-index {args.cell_index} is outside the grid's {len(cells)} cells")
        outcomes = [run_cell(cells[args.cell_index], config)]
    else:
        start = time.monotonic()
        outcomes = run_sweep(config, cells)
        print(f"sweep wall time {time.monotonic() - start:.0f} s")
    print(summary(outcomes))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _train(args: argparse.Namespace) -> int:
    from .cell import train_run
    from .distributed import end_processes

    overrides = dict(parse_override(text) for text in args.set)
    if args.data:
        overrides["data"] = str(Path(args.data).expanduser().resolve())
    folder = train_run(args.method, _settings(args).preset if args.config else args.preset, args.language, args.seed,
                       args.output_dir, args.budget, args.smoke, overrides, config_file=args.config)
    end_processes()
    print(f"trained run: {folder}")
    return 0


def _export_world(args: argparse.Namespace) -> int:
    from .data.export import export_world
    from .world import World

    path = export_world(World(_settings(args).world), args.out, limit=args.limit or None, shard_size=args.shard_size)
    print(f"wrote the world's regimes and their data file {path}; train on them with --data {path}")
    return 0


def _docs(args: argparse.Namespace) -> int:
    """Rewrite (or, with --check, only check) the generated blocks of README.md and docs/."""
    from .docs import stale_blocks

    stale = stale_blocks(write=not args.check)
    if args.check and stale:
        print("stale generated blocks (run `python -m xlcore docs`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    print(f"{len(stale)} generated block(s) {'stale' if args.check else 'rewritten'}" + (": " + ", ".join(stale) if stale else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xlcore", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    # Flags several commands share, declared once.
    preset_flag = argparse.ArgumentParser(add_help=False)
    preset_flag.add_argument("--preset", default="toy", help="backbone scale: toy (default) or sd15")
    settings_flags = argparse.ArgumentParser(add_help=False)
    settings_flags.add_argument("--smoke", action="store_true", help="shrink every size for a quick check")
    settings_flags.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                                help="change a setting by dotted name, e.g. --set world.seed=1 or --set pea.train.lr=1e-5 "
                                     "(repeatable; `python -m xlcore config` lists every field)")
    settings_flags.add_argument("--config", default="", metavar="FILE",
                                help="start from a resolved settings file (a cell's config.json) instead of the preset")
    settings_flags.add_argument("--data", default="", metavar="FILE",
                                help="train on the corpora a data file names (YAML/JSON, see examples/data/sd15.yaml) "
                                     "instead of the built-in world")
    output_flag = argparse.ArgumentParser(add_help=False)
    output_flag.add_argument("--output-dir", default="papermill_runs", help="where runs and the results table go")

    study = commands.add_parser("study", parents=[preset_flag, settings_flags],
                                help="run the whole study for a preset (the main job)")
    study.set_defaults(func=_study)

    config = commands.add_parser("config", parents=[preset_flag],
                                 help="list every settings field (study and methods) with its help text")
    config.add_argument("--file", default="", help="show the values a resolved settings file (config.json) holds")
    config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="show values with this change")
    config.add_argument("--values", dest="show_values", action="store_true", help="show the preset's resolved values")
    config.set_defaults(func=_config)

    sample = commands.add_parser("world-sample", parents=[preset_flag],
                                 help="print test scenes with their captions in every language")
    sample.add_argument("-n", type=int, default=5)
    sample.set_defaults(func=_world_sample)

    chars = commands.add_parser("world-chars", help="print the CJK characters the grammars use (font subset)")
    chars.set_defaults(func=_world_chars)

    pretrain = commands.add_parser("pretrain-toy", help="pretrain the toy backbone (hours on a CPU; resumable)")
    pretrain.add_argument("--work-dir", default="papermill_runs/toy/backbone_pretrain",
                          help="checkpoints and loss logs (a rerun resumes from here)")
    pretrain.add_argument("--out-dir", default=None, help="where the weights go (default: the package's assets)")
    pretrain.add_argument("--components", default="", help="comma-separated subset of scorer,clip,multilingual,unet")
    pretrain.add_argument("--smoke", action="store_true", help="a few steps of each component")
    pretrain.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a budget, e.g. --set unet.steps=5000")
    pretrain.set_defaults(func=_pretrain_toy)

    sweep = commands.add_parser("sweep", parents=[preset_flag, settings_flags, output_flag],
                                help="run the grid methods x languages x seeds with papermill")
    sweep.add_argument("--methods", default="", help="comma-separated registered methods (default: all)")
    sweep.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated languages")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    sweep.add_argument("--budget", type=float, default=1.0, help="share of each stage's training steps, in (0, 1]")
    sweep.add_argument("--curve-budgets", default="", help="learning-curve points: further budgets, e.g. 0.25,0.5")
    sweep.add_argument("--curve-seeds", default="0", help="seeds the learning-curve points run for")
    sweep.add_argument("--prompts", type=int, default=40, help="generation prompts per cell")
    sweep.add_argument("--kernel", default="xlcore", help="Jupyter kernel (registered for this environment if missing)")
    sweep.add_argument("--gpus", default="", help="comma-separated GPU indices: one worker per GPU (repeat an index "
                       "for several workers on one GPU, e.g. 0,0,0,0)")
    sweep.add_argument("--executor", default="papermill", choices=("papermill", "python"),
                       help="run each cell's notebook with papermill (default), or its steps in a plain Python process")
    sweep.add_argument("--retrain", action="store_true",
                       help="rerun cells already in the results table whose training run is not here (gets the weights)")
    sweep.add_argument("--no-english-reference", action="store_true", help="skip the English backbone's cells")
    sweep.add_argument("--emit-slurm", metavar="PATH", help="write a SLURM job array (one task per cell) and exit")
    sweep.add_argument("--cell-index", type=int, help="run only this cell of the grid (what a SLURM task does)")
    sweep.set_defaults(func=_sweep)

    cell = commands.add_parser("cell", help="run one cell as its notebook would (the sweep's python executor)")
    cell.add_argument("parameters", help='the notebook\'s parameters as JSON, with "method", e.g. {"method": "pea", '
                                         '"preset": "toy", "language": "de", "seed": 0, "smoke": true}')
    cell.set_defaults(func=_cell)

    train = commands.add_parser("train", parents=[preset_flag, settings_flags, output_flag],
                                help="train one method's run (also under `accelerate launch`: data parallel)")
    train.add_argument("--method", required=True)
    train.add_argument("--language", default="de", help="the language of per-language methods (IAP, PEA)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--budget", type=float, default=1.0, help="share of each stage's training steps, in (0, 1]")
    train.set_defaults(func=_train)

    export = commands.add_parser("export-world", parents=[preset_flag, settings_flags],
                                 help="write the built-in world's regimes as webdataset shards, parallel-text files "
                                      "and a data file (what real corpora look like)")
    export.add_argument("out", help="folder to write into")
    export.add_argument("--limit", type=int, default=0, help="at most this many samples per regime (0: the world's sizes)")
    export.add_argument("--shard-size", type=int, default=1000, help="samples per tar shard")
    export.set_defaults(func=_export_world)

    docs = commands.add_parser("docs", help="rewrite the generated tables of README.md and docs/ from their sources")
    docs.add_argument("--check", action="store_true", help="only say which blocks are stale (exit 1 if any)")
    docs.set_defaults(func=_docs)

    report = commands.add_parser("report", parents=[preset_flag],
                                 help="print a table from the results table (default: the toy backbone's quality)")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--methods", action="store_true", help="print the methods' evaluation table instead")
    which.add_argument("--cost", action="store_true", help="print the training-cost table (measured and extrapolated)")
    report.set_defaults(func=_report)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except XlcoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
