"""How much the English-only methods owe to their multilingual encoder's own alignment (issue 20).

MuLan and TriKD train on English only: what they do in German or Japanese rests on the multilingual encoder
placing a translation near its English source. This benchmark trains each of them over several toy encoders
on the same backbone (the staged one: its default encoder is the aligned one, `toy:unaligned` its masked-LM-
only twin, `toy:strong` the same recipe with a stronger ranking term; bitext top-1 in benchmarks/README.md),
with the study's own sweep and protocol, and tabulates per language the cross-lingual consistency, the raw
CLIP score, retrieval mean recall and compositional accuracy, with each encoder's difference from the
unaligned one. Cells already in the output's results table are not run again.

    .venv/bin/python benchmarks/encoder_dependence.py --output-dir papermill_runs/encoder_dependence \\
        --encoders aligned,unaligned --out benchmarks/results/encoder_dependence_toy
    .venv/bin/python benchmarks/encoder_dependence.py ... --no-run        # only redraw the table
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENCODERS = {"aligned": "", "unaligned": "toy:unaligned", "strong": "toy:strong"}  # name -> multilingual_encoder
METRICS = {  # column -> (metric, protocol prefix or None); retrieval: the all-captions protocol
    "consistency": ("consistency_clip_cos", None),
    "clip_raw": ("clip_score_raw_cos", None),
    "retrieval_mean_recall": ("mean_recall", "all-captions"),
    "compositional_shape_colour": ("compositional_shape_colour", None),
}


def run_sweeps(args, methods: list[str], encoders: list[str]) -> None:
    for name in encoders:
        command = [sys.executable, "-m", "xlcore", "sweep", "--preset", "toy", "--methods", ",".join(methods),
                   "--languages", args.languages, "--seeds", str(args.seed), "--executor", "python",
                   "--no-english-reference", "--output-dir", args.output_dir,
                   "--set", f"toy_backbone_dir={args.backbone}"]
        for method in methods:
            command += ["--set", f"{method}.multilingual_encoder={ENCODERS[name]}"]
        command += ["--smoke"] if args.smoke else []
        print(f"encoder {name}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})


def find_setting(config, key: str):
    """The first value of `key` anywhere in a nested config (None if absent)."""
    if isinstance(config, dict):
        if key in config:
            return config[key]
        for value in config.values():
            found = find_setting(value, key)
            if found is not None:
                return found
    return None


def collect(results_dir: Path, methods: list[str], seed: int) -> tuple[dict[tuple[str, str, str, str], float], set[str]]:
    """(method, encoder name, language, column) -> value, from the cells' rows; and the backbone fingerprints
    the methods trained on (the start of one, from their `train-<name>-<language>-s<seed>-<fingerprint>-<hash>`
    rows)."""
    by_spec = {spec: name for name, spec in ENCODERS.items()}
    configs: dict[str, dict] = {}
    values, fingerprints = {}, set()
    with open(results_dir / "results.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["method"] not in methods or int(row["seed"]) != seed:
                continue
            if row["run_id"].startswith("train-"):
                fingerprints.add(row["run_id"].split("-")[4])
            if not row["run_id"].startswith("cell-"):
                continue
            if row["config_hash"] not in configs:  # the cell's config names its training run, whose config the method's
                cell = json.loads((results_dir / "configs" / f"{row['config_hash']}.json").read_text())
                training_hash = cell["trained"].rsplit("-", 1)[1]
                configs[row["config_hash"]] = json.loads((results_dir / "configs" / f"{training_hash}.json").read_text())
            encoder = by_spec.get(find_setting(configs[row["config_hash"]], "multilingual_encoder") or "")
            for column, (metric, protocol) in METRICS.items():
                if row["metric"] == metric and (protocol is None or row["protocol"].startswith(protocol)):
                    values[(row["method"], encoder, row["language"], column)] = float(row["value"])
    return values, fingerprints


def table(values, methods: list[str], encoders: list[str], languages: list[str]) -> str:
    lines = []
    for column in METRICS:
        lines += [f"### {column}", "", "| method | encoder | " + " | ".join(languages) + " | mean | vs unaligned |",
                  "| --- | --- | " + " | ".join("---:" for _ in languages) + " | ---: | ---: |"]
        for method in methods:
            means = {}
            for encoder in encoders:
                cells = [values.get((method, encoder, lang, column)) for lang in languages]
                if any(v is None for v in cells):
                    continue
                means[encoder] = statistics.fmean(cells)
                delta = means[encoder] - means["unaligned"] if "unaligned" in means and encoder != "unaligned" else None
                lines.append(f"| {method} | {encoder} | " + " | ".join(f"{v:.3f}" for v in cells)
                             + f" | {means[encoder]:.3f} | " + (f"{delta:+.3f}" if delta is not None else "") + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="xlcore/assets/toy_backbone_next", help="toy backbone folder")
    parser.add_argument("--output-dir", default="papermill_runs/encoder_dependence", help="the sweep's output")
    parser.add_argument("--methods", default="mulan,trikd", help="English-only methods")
    parser.add_argument("--encoders", default="unaligned,aligned,strong", help=f"of {', '.join(ENCODERS)}")
    parser.add_argument("--languages", default="de,fr,cs,zh,ja")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/encoder_dependence_toy", help="folder for table.md")
    parser.add_argument("--no-run", action="store_true", help="only tabulate the rows already there")
    parser.add_argument("--smoke", action="store_true", help="the sweep's smoke sizes (a check of the script)")
    args = parser.parse_args()
    methods, encoders, languages = args.methods.split(","), args.encoders.split(","), args.languages.split(",")
    unknown = sorted(set(encoders) - set(ENCODERS))
    if unknown:
        parser.error(f"unknown encoders {unknown}; known: {', '.join(ENCODERS)}")
    if not args.no_run:
        run_sweeps(args, methods, encoders)
    values, fingerprints = collect(REPO / args.output_dir / "toy", methods, args.seed)
    text = (f"English-only methods over the toy's multilingual encoders: backbone {args.backbone} (fingerprint "
            f"{', '.join(sorted(fingerprints))}), seed {args.seed}, the study's cell protocol "
            f"(`benchmarks/encoder_dependence.py`)\n\n" + table(values, methods, encoders, languages))
    out = REPO / args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
