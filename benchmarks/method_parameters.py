"""Trainable parameters of every method at its paper's backbone dimensions, beside the paper figures.

Each method's trainable modules are built from the project's own classes on the `meta` device (no
memory, no weights) at the dimensions its paper used, and counted; the share is of the whole system the
method runs in (UNet + VAE + CLIP text and image towers + multilingual encoder, the SD 1.5 / ViT-L/14 /
XLM-R base `sd15` preset; TriKD's own system is CLIP ViT-B/32 + XLM-R base). Also prints the counts on
the toy backbone, from the real methods.

    .venv/bin/python benchmarks/method_parameters.py            # table to stdout
    .venv/bin/python benchmarks/method_parameters.py --markdown  # the table in docs/methods.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.sd15 import PUBLISHED_PARAMETER_COUNTS, sd15_architectures  # noqa: E402
from xlcore.methods._base import cross_attention_modules  # noqa: E402
from xlcore.methods.altclip import StudentTextEncoder  # noqa: E402
from xlcore.methods.iap import ProjectedEncoder  # noqa: E402
from xlcore.methods.mulan import LanguageAdapter  # noqa: E402
from xlcore.methods.pea import PEAAdapter  # noqa: E402
from xlcore.methods.trikd import XProjector  # noqa: E402

# What the papers (or their code) say; None where they give no figure.
PAPER = {
    "trikd": (14.6e6, "mCLIP paper (X-projector + CLIP-projector)"),
    "trikd+token_head": (None, "study's extension, not in the paper"),
    "mulan": (20.37e6, "MuLan paper, SD 1.5 with a 4096-wide encoder"),
    "pea": (7.87e6, "PEA code, SD 1.5 variant 1024->2048->2048->768"),
    "altdiffusion/concept": (19.17e6, "AltDiffusion: attn2.to_k/to_v of SD 1.5"),
    "altdiffusion/concept (upstream all-attn2)": (43.96e6, "upstream `if 'to_k' or ...` trains all of attn2"),
    "altdiffusion/quality": (None, "whole UNet"),
    "altclip/teacher+contrastive": (None, "whole multilingual encoder + transformation"),
    "iap": (None, "no public code; the original write-up's 100M is unsupported"),
    "full_finetune": (None, "multilingual encoder + whole UNet: the 100% reference"),
    "translate": (0, "NLLB-600M used as released: nothing trains"),
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def paper_dimension_rows() -> list[tuple[str, int, int]]:
    """(row, trainable parameters, size of the system it runs in)."""
    with torch.device("meta"):
        modules = sd15_architectures("xlm-roberta-base", device="meta")
        unet, vae, clip, xlmr = modules["unet"], modules["vae"], modules["clip"], modules["multilingual"]
        sd_system = count(unet) + count(vae) + count(clip) + count(xlmr)
        # mCLIP: CLIP ViT-B/32 (151.3M published) + XLM-R base, frozen.
        mclip_system = 151_277_313 + PUBLISHED_PARAMETER_COUNTS.get("xlm-roberta-base", count(xlmr))
        x_projector = XProjector(768, 2, 12, 3072, 0.3)
        clip_projector = torch.nn.Linear(512, 768, bias=False)
        trikd = count(x_projector) + count(clip_projector) + 1  # + the ITC logit scale
        token_head = count(torch.nn.Linear(768, 768, bias=False))
        mulan = count(LanguageAdapter(4096, 768, 120, 8, 3072))
        pea = count(PEAAdapter(1024, 2048, 768))
        kv = upstream = 0
        for _, attention in cross_attention_modules(unet):
            kv += count(attention.to_k) + count(attention.to_v)
            upstream += count(attention)
        student = count(StudentTextEncoder(xlmr, 768))
        iap = count(ProjectedEncoder(xlmr, 768))
    return [
        ("trikd", trikd, mclip_system),
        ("trikd+token_head", trikd + token_head, mclip_system),
        ("mulan", mulan, sd_system),
        ("pea", pea, sd_system),
        ("altdiffusion/concept", kv, sd_system),
        ("altdiffusion/concept (upstream all-attn2)", upstream, sd_system),
        ("altdiffusion/quality", count(unet), sd_system),
        ("altclip/teacher+contrastive", student, sd_system),
        ("iap", iap, sd_system),
        ("full_finetune", iap + count(unet), sd_system),
        ("translate", 0, sd_system),
    ]


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
    rows = paper_dimension_rows()
    if args.markdown:
        print("| method (paper dimensions) | trainable (measured) | paper figure | share of system | note |")
        print("| --- | ---: | ---: | ---: | --- |")
    else:
        print(f"{'method (paper dimensions)':44s} {'measured':>14s} {'paper':>10s} {'share':>8s}  note")
    for name, trainable, system in rows:
        paper, note = PAPER[name]
        paper_text = "-" if paper is None else f"{paper / 1e6:.2f}M"
        share = 100.0 * trainable / system
        if args.markdown:
            print(f"| {name} | {trainable:,} | {paper_text} | {share:.2f}% | {note} |")
        else:
            print(f"{name:44s} {trainable:14,d} {paper_text:>10s} {share:7.2f}%  {note}")
    if not args.no_toy:
        print()
        print(f"{'method/stage (toy backbone)':44s} {'trainable':>14s} {'share':>8s}")
        for name, trainable, system in toy_rows():
            print(f"{name:44s} {trainable:14,d} {100.0 * trainable / system:7.2f}%")


if __name__ == "__main__":
    main()
