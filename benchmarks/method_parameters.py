"""Trainable parameters of every method at its paper's backbone dimensions, beside the paper figures.

Each method's trainable modules are built from the project's own classes on the `meta` device (no
memory, no weights) at the dimensions its paper used, and counted; the share is of the whole system the
method runs in (UNet + VAE + CLIP text and image towers + multilingual encoder, the SD 1.5 / ViT-L/14 /
XLM-R base `sd15` preset; TriKD's own system is CLIP ViT-B/32 + XLM-R base). Also prints the counts on
the toy backbone, from the real methods.

    .venv/bin/python benchmarks/method_parameters.py            # table to stdout
    .venv/bin/python benchmarks/method_parameters.py --markdown  # the table in docs/methods.md (python -m xlcore docs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.methods._base import paper_dimension_rows, paper_parameter_table, parameter_count as count  # noqa: E402


def toy_rows() -> list[tuple[str, int, int]]:
    """Counts on the shipped toy backbone, from the real methods (every optional stage on)."""
    from xlcore.backbone.toy import load_toy_backbone
    from xlcore.methods._base import build_method
    from xlcore.registry import METHODS

    backbone = load_toy_backbone()
    system = sum(count(m) for name, m in backbone.named_modules_dict().items() if name != "scorer")
    rows = []
    for name in METHODS.names():
        options = {"trikd": {"mte": True}}.get(name)
        language = "de" if METHODS.get(name).per_language else None
        method = build_method(name, backbone, options, language=language)
        for stage in method.stages:
            rows.append((f"{name}/{stage}", sum(p.numel() for p in method.trainable_parameters(stage).values()), system))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--no-toy", action="store_true", help="skip the toy backbone rows")
    args = parser.parse_args()
    if args.markdown:
        print(paper_parameter_table())
    else:
        print(f"{'method (paper dimensions)':58s} {'measured':>14s} {'paper':>10s} {'share':>8s}  note")
        for row in paper_dimension_rows():
            paper = "-" if row.paper is None else f"{row.paper / 1e6:.2f}M"
            print(f"{row.row:58s} {row.trainable:14,d} {paper:>10s} {100.0 * row.trainable / row.system:7.2f}%  {row.note}")
    if not args.no_toy:
        print()
        print(f"{'method/stage (toy backbone)':44s} {'trainable':>14s} {'share':>8s}")
        for name, trainable, system in toy_rows():
            print(f"{name:44s} {trainable:14,d} {100.0 * trainable / system:7.2f}%")


if __name__ == "__main__":
    main()
