"""Real-data loading speed on the sd15 code path: JPEG shards against the feature cache, beside the speed of
the fastest training stage measured on a GPU.

    .venv/bin/python benchmarks/data_loader.py [--samples 512] [--workers 0,2] [--out benchmarks/results/data_loader_cpu]

1. Writes `--samples` JPEGs (640x480, quality 90: the size of an img2dataset CC3M/LAION image) into
   webdataset shards as img2dataset does (KEY.jpg, KEY.txt, KEY.json).
2. From the shards: `WebDatasetImageText` (index, decode, shorter side to 512, centre crop) through a
   DataLoader with each `--workers` count, in a training order (a permutation), samples/s.
3. From the cache: PEA's stage on the small sd15 architectures (VAE latents of the 512 px images, CLIP text
   states of the English caption, multilingual states of the caption) is cached once (`FeatureCache`,
   build time reported), then `FrozenFeatures.batch` reads random batches, samples/s. The same read at
   the full SD 1.5 feature shapes (latents 4x64x64, CLIP ViT-L states 77x768 and pooled, XLM-R base states
   77x768) is timed too, on arrays of those shapes in the same memory-mapped layout: reading cost is
   bytes, not the model that wrote them.
4. Prints each rate beside the fastest stage of `results/throughput_sd15_h200/throughput.csv` and the ratio
   (goal: the cached loader >= 10x what that stage consumes).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.backbone.sd15 import build_sd15_backbone_from_configs  # noqa: E402
from xlcore.cache import FeatureCache, FrozenFeatures  # noqa: E402
from xlcore.config import WorldConfig  # noqa: E402
from xlcore.data.corpus import RealCorpus  # noqa: E402
from xlcore.data.sources import WebDatasetImageText  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.world import World  # noqa: E402

GPU_TABLE = Path(__file__).resolve().parent / "results" / "throughput_sd15_h200" / "throughput.csv"
PEA_FEATURES = {"x0": "diffusion_input", "ml": "multilingual:caption", "en": "clip_text:caption_en",
                "has_english": "flag:has_english"}


def write_shards(root: Path, samples: int, per_shard: int = 128) -> str:
    """img2dataset-style shards of world scenes as 640x480 JPEGs, with English and German captions."""
    import webdataset as wds

    world = World(WorldConfig(image_size=64))
    data = world.pivot_image_text("de", samples)
    root.mkdir(parents=True, exist_ok=True)
    writer = None
    for i in range(samples):
        if i % per_shard == 0:
            if writer is not None:
                writer.close()
            writer = wds.TarWriter(str(root / f"{i // per_shard:05d}.tar"))
        item = data[i]
        image = Image.fromarray((item["pixel_values"] * 255).byte().permute(1, 2, 0).numpy()).resize((640, 480))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        meta = {"caption": item["caption"], "LANGUAGE": "de", "captions": {"de": item["caption"], "en": item["caption_en"]}}
        writer.write({"__key__": f"{i:09d}", "jpg": buffer.getvalue(), "txt": item["caption"].encode(),
                      "json": json.dumps(meta, ensure_ascii=False).encode()})
    writer.close()
    last = (samples - 1) // per_shard
    return str(root / f"{{00000..{last:05d}}}.tar")


def rate(read, batches: int, batch_size: int) -> float:
    read(0)  # warm: open files, first pages
    start = time.perf_counter()
    for b in range(1, batches + 1):
        read(b)
    return batches * batch_size / (time.perf_counter() - start)


def fastest_gpu_stage() -> tuple[str, float]:
    import pandas as pd

    frame = pd.read_csv(GPU_TABLE)
    rates = frame[frame["metric"] == "samples_per_s"]
    best = rates.loc[rates["value"].idxmax()]
    return f"{best['method']}/{best['stage']} ({best['hardware']})", float(best["value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", default="0,2", help="DataLoader worker counts to time the JPEG path with")
    parser.add_argument("--out", default="", help="folder for results.md and results.json (optional)")
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="xlcore-loader-bench-"))
    rows = []
    try:
        shards = write_shards(work / "shards", args.samples)
        start = time.perf_counter()
        source = WebDatasetImageText(shards, "de", image_size=512, index_dir=work / "index", english_caption=True)
        rows.append(("index + validate (decode) the shards", len(source) / (time.perf_counter() - start)))
        order = np.random.default_rng(0).permutation(len(source))
        for workers in [int(w) for w in args.workers.split(",")]:
            loader = torch.utils.data.DataLoader(torch.utils.data.Subset(source, order.tolist()),
                                                 batch_size=args.batch_size, num_workers=workers,
                                                 collate_fn=lambda samples: torch.stack([s["pixel_values"] for s in samples]))
            start = time.perf_counter()
            count = sum(len(batch) for batch in loader)
            rows.append((f"JPEG shards -> 512 px tensors, {workers} worker(s)", count / (time.perf_counter() - start)))

        backbone = build_sd15_backbone_from_configs(small=True, device="cpu")
        corpus = RealCorpus({"pivot_image_text": {"de": lambda: source}}, ["en", "de"], {"bench": True})
        start = time.perf_counter()
        features = FrozenFeatures(backbone, corpus.pivot_image_text("de"), PEA_FEATURES, cache=FeatureCache(work / "cache"))
        rows.append(("feature cache build (small sd15: VAE, CLIP text, XLM-R)", len(source) / (time.perf_counter() - start)))
        batches = len(source) // args.batch_size

        def read_cached(b: int, features=features) -> None:
            features.batch(order[(b % batches) * args.batch_size:((b % batches) + 1) * args.batch_size].tolist())

        rows.append(("cache -> batch, small sd15 shapes", rate(read_cached, 200, args.batch_size)))
        full_shapes = {"x0": (4, 64, 64), "ml.states": (77, 768), "ml.mask": (77,), "en.states": (77, 768),
                       "en.pooler": (768,), "en.pooled": (768,), "has_english": ()}
        arrays = {}
        for name, shape in full_shapes.items():
            dtype = np.int64 if name.endswith("mask") else np.bool_ if name == "has_english" else np.float32
            array = np.lib.format.open_memmap(work / f"{name}.npy", mode="w+", dtype=dtype, shape=(len(source), *shape))
            array[:] = 1
            array.flush()
            arrays[name] = np.load(work / f"{name}.npy", mmap_mode="r")
        features.arrays = arrays
        bytes_per_sample = sum(int(np.prod(shape or (1,))) * arrays[n].dtype.itemsize for n, shape in full_shapes.items())
        rows.append((f"cache -> batch, full SD 1.5 shapes ({bytes_per_sample / 1024:.0f} KiB/sample)",
                     rate(read_cached, 200, args.batch_size)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    stage, gpu_rate = fastest_gpu_stage()
    lines = [f"hardware: {hardware()}; {args.samples} samples, batch {args.batch_size}; fastest GPU stage: {stage} "
             f"at {gpu_rate:.0f} samples/s", "", "| path | samples/s | x fastest GPU stage |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {value:,.0f} | {value / gpu_rate:.1f}x |" for name, value in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(text + "\n")
        (out / "results.json").write_text(json.dumps({"hardware": hardware(), "gpu_stage": stage, "gpu_rate": gpu_rate,
                                                      "rows": dict(rows)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
