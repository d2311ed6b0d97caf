"""How aligned the toy multilingual encoder's languages are: bitext retrieval on held-out parallel captions.

The measure issue 20 asks for. For each target language X, the world's retrieval-test scenes (never in any
training regime) captioned in X and in English are embedded by the frozen multilingual encoder, its
last hidden states mean-pooled over the attention mask. The score is top-1 accuracy of finding a
sentence's translation among all the English ones (X -> en), and the reverse (en -> X), by cosine, with
ties counted against the query (`retrieval_scores`). Chance is 1 / pairs. Real encoders are partly aligned
by their pretraining alone, so this is the premise MuLan and TriKD, trained on English only, rest on.

    .venv/bin/python benchmarks/encoder_alignment.py --out benchmarks/results/encoder_alignment_toy
    .venv/bin/python benchmarks/encoder_alignment.py --pairs 100     # quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.toy import load_toy_backbone  # noqa: E402
from xlcore.evaluate.retrieval import retrieval_scores  # noqa: E402
from xlcore.methods._base import masked_mean  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.world import World  # noqa: E402


@torch.no_grad()
def pooled(backbone, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    out = []
    for start in range(0, len(texts), batch_size):
        states, mask = backbone.encode_multilingual(texts[start:start + batch_size])
        out.append(masked_mean(states.float(), mask))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000, help="held-out parallel pairs per language (at most 1,000)")
    parser.add_argument("--backbone", default="", help="folder of toy backbone weights (default: the shipped ones)")
    parser.add_argument("--out", default="", help="folder for results.json")
    args = parser.parse_args()
    backbone = load_toy_backbone(args.backbone) if args.backbone else load_toy_backbone()
    world = World()
    test = world.retrieval_test()
    items = [test.item(i) for i in range(min(args.pairs, len(test)))]
    english = pooled(backbone, [item.captions["en"] for item in items])
    rows = {}
    for lang in world.target_languages:
        target = pooled(backbone, [item.captions[lang] for item in items])
        scores = retrieval_scores(english, target, list(range(len(items))), ks=(1,))  # "images" = English
        rows[lang] = {"x_to_en_top1": scores.text_to_image[1], "en_to_x_top1": scores.image_to_text[1]}
        print(f"{lang}: top-1 {lang} -> en {rows[lang]['x_to_en_top1']:.1f}%, en -> {lang} "
              f"{rows[lang]['en_to_x_top1']:.1f}% (chance {100 / len(items):.1f}%)", flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"hardware": hardware(), "pairs": len(items), "pooling": "mask-mean of the last hidden states",
                   "encoder": backbone.info.get("directory", "shipped toy backbone"), "rows": rows}
        (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
