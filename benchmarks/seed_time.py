"""The wall time of one seed of the toy grid, split into training and evaluation per method (issue 21).

Runs the study's sweep for one seed (every method, English plus the target languages, the English
backbone's reference cell) into a scratch output folder, so nothing recorded is reused and the committed
results table is untouched, then prints, per method: cells, wall seconds of its cells, training seconds
(from its training rows: the time the Trainer measured, summed over stages and, for per-language methods,
languages) and the rest (evaluation, loading, notebook start-up), and the seed's total against the
committed reference of 7,860 s (seed 2 on 2 CPU cores, docs/status.md). The target is a ratio of 0.5.

    .venv/bin/python benchmarks/seed_time.py --out benchmarks/results/seed_time_cpu      # about 2 hours on 2 cores
    .venv/bin/python benchmarks/seed_time.py --smoke --methods translate,iap --languages en,de   # seconds (tests)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.config import LANGUAGES  # noqa: E402
from xlcore.provenance import git_commit, hardware  # noqa: E402
from xlcore.results import ResultsStore  # noqa: E402
from xlcore.sweep import SweepConfig, run_sweep, summary  # noqa: E402

REFERENCE_SECONDS = 7860.0  # one seed, 65 cells, 2 CPU cores (docs/status.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2, help="the seed to run (the reference timed seed 2)")
    parser.add_argument("--methods", default="", help="comma-separated methods (default: all)")
    parser.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated languages")
    parser.add_argument("--smoke", action="store_true", help="smoke-sized cells (tests; the ratio then means nothing)")
    parser.add_argument("--scratch", default="/tmp/xlcore_seed_time", help="output folder of the sweep (reused: "
                        "delete it to time again from nothing)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting changed in every cell, as for `xlcore sweep --set` (what a speed-up is tried with)")
    parser.add_argument("--out", default="", help="folder for results.json")
    args = parser.parse_args()
    methods = tuple(m for m in args.methods.split(",") if m)
    config = SweepConfig(methods=methods, languages=tuple(args.languages.split(",")), seeds=(args.seed,),
                         smoke=args.smoke, output_dir=args.scratch, overrides=tuple(args.set))
    start = time.perf_counter()
    outcomes = run_sweep(config)
    total = time.perf_counter() - start
    print(summary(outcomes))
    if any(o.status == "failed" for o in outcomes):
        sys.exit(1)
    frame = ResultsStore(Path(args.scratch) / "toy" / "results.csv").read()
    trained = frame[(frame["run_id"].str.startswith("train-")) & (frame["metric"] == "train_seconds")]
    train_seconds = trained.groupby("method")["value"].sum().to_dict()
    per_method: dict[str, dict] = defaultdict(lambda: {"cells": 0, "wall_seconds": 0.0})
    for outcome in outcomes:
        row = per_method[outcome.cell.method]
        row["cells"] += 1
        row["wall_seconds"] += outcome.seconds
    print(f"{'method':<20} {'cells':>5} {'wall s':>9} {'train s':>9} {'other s':>9}")
    for name, row in sorted(per_method.items(), key=lambda item: -item[1]["wall_seconds"]):
        row["train_seconds"] = float(train_seconds.get(name, 0.0))
        row["other_seconds"] = row["wall_seconds"] - row["train_seconds"]
        print(f"{name:<20} {row['cells']:>5} {row['wall_seconds']:>9.0f} {row['train_seconds']:>9.0f} "
              f"{row['other_seconds']:>9.0f}")
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(f"seed {args.seed}: {total:.0f} s for {len(outcomes)} cells ({skipped} already in {args.scratch}, not timed); "
          f"{total / REFERENCE_SECONDS:.2f} x the reference {REFERENCE_SECONDS:,.0f} s (target 0.50)")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"hardware": hardware(), "commit": git_commit(), "seed": args.seed, "smoke": args.smoke,
                   "settings": args.set, "cells": len(outcomes), "cells_skipped": skipped, "total_seconds": total,
                   "reference_seconds": REFERENCE_SECONDS, "ratio_to_reference": total / REFERENCE_SECONDS,
                   "per_method": dict(per_method)}
        (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
