"""How aligned the toy multilingual encoders' languages are: bitext retrieval on held-out parallel captions.

The measure issue 20 asks for. For each target language X, the world's retrieval-test scenes (never in any
training regime) captioned in X and in English are embedded by a frozen multilingual encoder, its hidden
states mean-pooled over the attention mask, at the last layer and at the middle layer (XTREME's Tatoeba
protocol pools a middle layer). The score is top-1 accuracy of finding a sentence's translation among all
the English ones (X -> en, Tatoeba's direction), and the reverse (en -> X), by cosine, with ties counted
against the query (`retrieval_scores`). Chance is 1 / pairs. Real encoders are partly aligned by their
pretraining alone, so this is the premise MuLan and TriKD, trained on English only, rest on; the published
figures for XLM-R and mBERT on Tatoeba are printed beside (`PUBLISHED`).

    .venv/bin/python benchmarks/encoder_alignment.py --out benchmarks/results/encoder_alignment_toy
    .venv/bin/python benchmarks/encoder_alignment.py --encoders default --pairs 100     # quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.toy import ASSETS, load_toy_backbone, load_toy_multilingual_encoder  # noqa: E402
from xlcore.evaluate.retrieval import retrieval_scores  # noqa: E402
from xlcore.losses import masked_mean  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.world import World  # noqa: E402


# Tatoeba top-1 accuracy (X -> en, cosine nearest neighbour, mean-pooled middle layer, no fine-tuning):
# XTREME (Hu et al., ICML 2020, arXiv 2003.11080v3), Table 13; XLM-R is XLM-R large there (appendix B),
# pooled at layer 13 (scripts/run_tatoeba.sh). Czech is not among XTREME's 36 Tatoeba languages.
PUBLISHED = {
    "xlm-r large": {"de": 88.8, "fr": 73.7, "zh": 68.3, "ja": 60.6, "36-language mean": 57.3},
    "mbert": {"de": 77.2, "fr": 66.3, "zh": 71.6, "ja": 42.0, "36-language mean": 38.7},
}
PUBLISHED_SOURCE = "XTREME (Hu et al. 2020, arXiv 2003.11080v3) Table 13 and Table 2: Tatoeba top-1, X -> en"
ENCODERS = {"default": "", "unaligned": "toy:unaligned", "strong": "toy:strong", "llm": "toy:llm"}


@torch.no_grad()
def pooled(backbone, encoder, texts: list[str], batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Mask-mean of the last and the middle layer's states, per text."""
    out = {"last": [], "middle": []}
    for start in range(0, len(texts), batch_size):
        tokens = backbone.tokenize_multilingual(texts[start:start + batch_size])
        hidden = encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                         output_hidden_states=True).hidden_states
        for layer, states in (("last", hidden[-1]), ("middle", hidden[len(hidden) // 2])):
            out[layer].append(masked_mean(states.float(), tokens["attention_mask"]))
    return {layer: torch.cat(chunks) for layer, chunks in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000, help="held-out parallel pairs per language (at most 1,000)")
    parser.add_argument("--backbone", default="", help="folder of toy backbone weights (default: the shipped ones)")
    parser.add_argument("--encoders", default="default,unaligned",
                        help=f"which of the toy's encoders: {', '.join(ENCODERS)} (default: the backbone's own)")
    parser.add_argument("--out", default="", help="folder for results.json")
    args = parser.parse_args()
    directory = Path(args.backbone) if args.backbone else ASSETS
    backbone = load_toy_backbone(directory)
    world = World()
    test = world.retrieval_test()
    items = [test.item(i) for i in range(min(args.pairs, len(test)))]
    results = {}
    for name in args.encoders.split(","):
        if name not in ENCODERS:
            parser.error(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
        encoder = load_toy_multilingual_encoder(ENCODERS[name], directory) if ENCODERS[name] else backbone.multilingual
        english = pooled(backbone, encoder, [item.captions["en"] for item in items])
        rows = {}
        for lang in world.target_languages:
            target = pooled(backbone, encoder, [item.captions[lang] for item in items])
            rows[lang] = {}
            for layer in ("last", "middle"):
                scores = retrieval_scores(english[layer], target[layer], list(range(len(items))), ks=(1,))
                rows[lang][f"x_to_en_top1_{layer}"] = scores.text_to_image[1]  # "images" = the English side
                rows[lang][f"en_to_x_top1_{layer}"] = scores.image_to_text[1]
            published = PUBLISHED["xlm-r large"].get(lang)
            print(f"{name} encoder, {lang}: top-1 {lang} -> en {rows[lang]['x_to_en_top1_last']:.1f}% (last layer), "
                  f"{rows[lang]['x_to_en_top1_middle']:.1f}% (middle); en -> {lang} {rows[lang]['en_to_x_top1_last']:.1f}%"
                  f" (chance {100 / len(items):.1f}%; XLM-R large on Tatoeba: "
                  f"{'not published' if published is None else f'{published:g}%'})", flush=True)
        results[name] = {"encoder": ENCODERS[name] or "the backbone's multilingual.safetensors", "rows": rows,
                         "x_to_en_top1_middle_mean": sum(r["x_to_en_top1_middle"] for r in rows.values()) / len(rows)}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"hardware": hardware(), "pairs": len(items), "backbone": str(directory),
                   "pooling": "mask-mean of the last and of the middle hidden states", "encoders": results,
                   "published": PUBLISHED, "published_source": PUBLISHED_SOURCE}
        (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
