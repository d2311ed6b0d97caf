"""The toy UNet's quality against its training steps: the English quality bar at every pretraining snapshot.

`xlcore pretrain-toy` keeps the UNet's EMA weights at every checkpoint (`<work-dir>/unet/snapshots/
unet_stepNNNNNN.safetensors`) so the curve can be measured without slowing the training job. Each snapshot
(and, with `--backbone`, the backbone's current `unet.safetensors` at the step its backbone.json records)
is put into the toy backbone and judged by the world scorer on the English generation prompts
(`xlcore.backbone.quality.english_generation`, the study's protocol: DDIM 25 steps, every guidance scale),
rows cached in `curve.csv` so a rerun measures only new snapshots; the figure is redrawn from the CSV.
Targets (issue 20): one object with every attribute right >= 50%, two objects with both objects and the
relation right >= 35%, at the best guidance.

    .venv/bin/python benchmarks/backbone_curve.py --snapshots papermill_runs/toy/backbone_pretrain/unet/snapshots \\
        --backbone xlcore/assets/toy_backbone --out benchmarks/results/backbone_curve_toy
    .venv/bin/python benchmarks/backbone_curve.py ... --prompts 40 --every 2     # quicker, every other snapshot
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusers import UNet2DConditionModel  # noqa: E402

from xlcore.backbone import quality  # noqa: E402
from xlcore.backbone.toy import load_component, load_toy_backbone, unet_config  # noqa: E402
from xlcore.provenance import hardware  # noqa: E402
from xlcore.world import World  # noqa: E402

METRICS = ("single_shape_colour", "single_all", "pair_shape_colour", "pair_all")
TARGETS = {"single_all": 50.0, "pair_all": 35.0}
FIELDS = ("unet_step", "guidance_scale", *METRICS, "prompts", "seconds", "source", "hardware")


def snapshots(folder: Path) -> dict[int, Path]:
    found = {}
    for path in sorted(folder.glob("unet_step*.safetensors")):
        match = re.fullmatch(r"unet_step(\d+)\.safetensors", path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def measure(backbone_dir: Path, weights: Path, step: int, prompts: int, scales: tuple[float, ...]) -> list[dict]:
    backbone = load_toy_backbone(backbone_dir)
    unet = load_component(UNet2DConditionModel(**unet_config()), weights.name.removesuffix(".safetensors"),
                          weights.parent)
    backbone.unet.load_state_dict(unet.state_dict())
    start = time.perf_counter()
    results = quality.english_generation(backbone, World(), scales, n_prompts=prompts)
    seconds = (time.perf_counter() - start) / len(scales)
    return [{"unet_step": step, "guidance_scale": scale, **{m: round(results[scale].get(m, math.nan), 2) for m in METRICS},
             "prompts": prompts, "seconds": round(seconds, 1), "source": str(weights), "hardware": hardware()}
            for scale in scales]


def draw(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({int(r["unet_step"]) for r in rows})
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for axis, (metric, title) in zip(axes, (("single_all", "one object: shape, colour, size, position"),
                                           ("pair_all", "two objects: both objects and the relation"))):
        for scale in sorted({float(r["guidance_scale"]) for r in rows}):
            points = sorted((int(r["unet_step"]), float(r[metric])) for r in rows if float(r["guidance_scale"]) == scale)
            axis.plot(*zip(*points), marker="o", label=f"guidance {scale:g}")
        best = [max(float(r[metric]) for r in rows if int(r["unet_step"]) == s) for s in steps]
        axis.plot(steps, best, color="black", linewidth=2, label="best guidance")
        axis.axhline(TARGETS[metric], color="grey", linestyle="--", label=f"target {TARGETS[metric]:g}%")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("UNet optimizer steps (batch 32)")
        axis.set_ylabel("% of English prompts right (scorer)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("Toy backbone: English generation quality against pretraining steps", fontsize=11)
    figure.tight_layout()
    written = []
    for suffix in ("png", "svg"):
        path = out / f"curve.{suffix}"
        figure.savefig(path, dpi=130)
        written.append(path)
    plt.close(figure)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", default="papermill_runs/toy/backbone_pretrain/unet/snapshots",
                        help="folder of unet_stepNNNNNN.safetensors snapshots")
    parser.add_argument("--backbone", default="xlcore/assets/toy_backbone",
                        help="toy backbone folder (its CLIP, scorer and tokenizers; its own UNet is a point too)")
    parser.add_argument("--out", default="benchmarks/results/backbone_curve_toy", help="folder for curve.csv and the figure")
    parser.add_argument("--prompts", type=int, default=200, help="English generation prompts per point (protocol: 200)")
    parser.add_argument("--scales", default="1,2,4", help="guidance scales")
    parser.add_argument("--every", type=int, default=1, help="measure every n-th snapshot (the newest always)")
    args = parser.parse_args()
    out, backbone_dir = Path(args.out), Path(args.backbone)
    out.mkdir(parents=True, exist_ok=True)
    scales = tuple(float(s) for s in args.scales.split(","))
    points = snapshots(Path(args.snapshots))
    shipped = json.loads((backbone_dir / "backbone.json").read_text())["components"]["unet"]["steps"]
    points.setdefault(int(shipped), backbone_dir / "unet.safetensors")
    chosen = sorted(points)[::-1][::args.every][::-1]
    path = out / "curve.csv"
    rows = read_rows(path)
    done = {(int(r["unet_step"]), int(r["prompts"])) for r in rows}
    for step in chosen:
        if (step, args.prompts) in done:
            continue
        new = measure(backbone_dir, points[step], step, args.prompts, scales)
        rows += new
        with open(path, "w", newline="") as handle:  # rewritten after each point: an interruption keeps the rest
            writer = csv.DictWriter(handle, FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        best = {m: max(r[m] for r in new) for m in TARGETS}  # NaN where the prompts held no such scene
        print(f"step {step}: best single_all {best['single_all']:.1f} (target {TARGETS['single_all']:g}), "
              f"best pair_all {best['pair_all']:.1f} (target {TARGETS['pair_all']:g})", flush=True)
    if rows:
        for written in draw([r for r in rows if int(r["prompts"]) == args.prompts], out):
            print(f"wrote {written}")


if __name__ == "__main__":
    main()
