"""How fast the world feeds training: rendered samples per second, serially and through a DataLoader.

Prints a Markdown table; numbers are for the machine it runs on (name printed). Run:

    .venv/bin/python benchmarks/world_throughput.py [--samples 2000] [--image-size 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from torch.utils.data import DataLoader

from xlcore import provenance
from xlcore.config import WorldConfig
from xlcore.world import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    world = World(dataclasses.replace(WorldConfig(), image_size=args.image_size))
    dataset = world.english_image_text(size=args.samples)

    rows = []
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    rows.append(("serial __getitem__", args.samples / (time.perf_counter() - start)))
    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=workers)
        start = time.perf_counter()
        for _ in loader:
            pass
        rows.append((f"DataLoader, batch {args.batch_size}, {workers} workers", args.samples / (time.perf_counter() - start)))
    start = time.perf_counter()
    for i in range(args.samples):
        world.item("parallel", i, "de")
    rows.append(("parallel caption pairs (text only)", args.samples / (time.perf_counter() - start)))

    print(f"World throughput on {provenance.hardware()}, {args.image_size}px, {args.samples} samples\n")
    print("| path | samples/s |\n| --- | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
