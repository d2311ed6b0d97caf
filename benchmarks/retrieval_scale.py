"""Time and memory of retrieval evaluation at Crossmodal-3600 scale: 36 languages x 3,600 images x 2 captions.

A stand-in system returns seeded random 768-d embeddings (the width of CLIP ViT-L/14's joint space), so
what is measured is the evaluator: text encoding is free, and the 36 languages share one image gallery
(embedded once). Prints wall time, the process's peak resident memory before and after, and what the
similarity matrices would take if they were not computed in chunks.

    .venv/bin/python benchmarks/retrieval_scale.py [--languages 36 --images 3600 --captions 2 --dim 768]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.data import ALL_CAPTIONS  # noqa: E402
from xlcore.evaluate.retrieval import RetrievalSet, evaluate_retrieval  # noqa: E402
from xlcore.methods._base import Conditioning  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402


class RandomSystem:
    """Caption 'i/j' and image i get nearby random vectors, so recall is high but not perfect."""

    name = "random-768"

    def __init__(self, images: int, dim: int):
        generator = torch.Generator().manual_seed(0)
        self.image_vectors = torch.randn(images, dim, generator=generator)
        self.dim = dim

    def encode(self, texts, lang):
        owners = torch.tensor([int(t.split("/")[0]) for t in texts])
        generator = torch.Generator().manual_seed(zlib.crc32(f"{lang}|{texts[0]}".encode()))
        return Conditioning(None, self.image_vectors[owners] + 1.5 * torch.randn(len(texts), self.dim, generator=generator))

    def encode_images(self, pixels):
        return self.image_vectors[pixels[:, 0, 0, 0].long()]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", type=int, default=36)
    parser.add_argument("--images", type=int, default=3600)
    parser.add_argument("--captions", type=int, default=2, help="captions per image and language")
    parser.add_argument("--dim", type=int, default=768)
    args = parser.parse_args()
    system = RandomSystem(args.images, args.dim)
    captions = tuple(tuple(f"{i}/{j}" for j in range(args.captions)) for i in range(args.images))

    def load(indices):  # the image index rides in the first pixel; the system looks its vector up
        return torch.tensor(list(indices), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 1, 1)

    sets = [RetrievalSet("xm3600-standin", f"l{k}", ALL_CAPTIONS, captions, "standin-gallery", load, "none")
            for k in range(args.languages)]
    before = peak_mb()
    start = time.perf_counter()
    measured = evaluate_retrieval(system, sets)
    seconds = time.perf_counter() - start
    texts = args.languages * args.images * args.captions
    print(f"{hardware()}; torch threads {torch.get_num_threads()}")
    print(f"{args.languages} languages x {args.images} images x {args.captions} captions = {texts:,} text queries, "
          f"{args.dim}-d; both protocols: {len(measured)} measurements")
    print(f"wall time {seconds:.1f} s ({seconds / args.languages:.2f} s per language)")
    print(f"peak RSS {before:.0f} MB before, {peak_mb():.0f} MB after")
    unchunked = texts * args.images * 4 / 2**20
    print(f"similarities unchunked: {unchunked:,.0f} MB for all languages at once, "
          f"{unchunked / args.languages:,.0f} MB per language; chunked (1,024 queries): "
          f"{1024 * max(args.images, args.images * args.captions) * 4 / 2**20:.0f} MB")
    print("mean recall of the first language (all-captions):", round(measured[0].metrics["mean_recall"], 1))


if __name__ == "__main__":
    main()
