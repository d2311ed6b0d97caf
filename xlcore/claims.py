"""The claims audit: each claim of the comparison write-up (`CLAIMS.md`) beside what this study measured or
what the methods' own sources support, with a verdict: supported, contradicted, or not measurable here.

Measured figures are read from the study's artefacts, never typed in: trainable parameters and FLOPs of
the full-size sd15 architectures (`benchmarks/results/sd15_cost.csv`, written by `benchmarks/sd15_cost.py`),
published budgets with their sources (each method's `published_budgets`), extrapolated GPU-hours, GPU-hours
at the speed measured on a GPU (`benchmarks/results/throughput_sd15_h200/`, written by
`benchmarks/gpu_check.sh`) and toy quality from the results table. The verdict rules are written next to each claim, so a rerun with new
numbers can change a verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from .evaluate.cost import SCALE_FLOPS_FILE, PriceTable, extrapolate, flops_at_published_scale, published_budgets
from .results import ResultsStore

SUPPORTED, CONTRADICTED, NOT_MEASURABLE, PARTLY = "supported", "contradicted", "not measurable here", "partly supported"

# The write-up's mCLIP+ row (Multi30K en, de, fr, cs; MS-COCO en, ja, zh), from CLAIMS.md.
MCLIP_PLUS_ROW = (77.1, 76.6, 76.1, 74.5, 59.2, 55.6, 71.8)
# Paper figures at the papers' own dimensions (DESIGN.md section 5; reproduced by benchmarks/method_parameters.py).
PAPER_PARAMETERS = {"trikd": 14.6e6, "mulan": 20.37e6, "pea": 7.87e6, "altdiffusion/concept": 19.17e6}


def _sd15_parameters(path: Path = SCALE_FLOPS_FILE) -> dict[str, tuple[float, float]]:
    """'<method>/<stage>' -> (trainable parameters, share of system %) on the sd15 architectures."""
    if not Path(path).exists():
        return {}
    frame = ResultsStore(path).read()
    frame = frame[frame["benchmark"] == "cost/measured"]
    pivot = frame.pivot_table(index=["method", "stage"], columns="metric", values="value", aggfunc="last")
    return {f"{m}/{s}": (row["trainable_parameters"], row["trainable_share_pct"]) for (m, s), row in pivot.iterrows()}


GPU_THROUGHPUT_FILE = SCALE_FLOPS_FILE.parent / "throughput_sd15_h200" / "throughput.csv"


def _measured_gpu_hours(path: Path = GPU_THROUGHPUT_FILE) -> tuple[dict[str, float], str]:
    """'<method>/<stage>' -> GPU-hours for the published budget at the sd15 speed measured on a GPU, and the card."""
    if not Path(path).exists():
        return {}, ""
    frame = ResultsStore(path).read()
    frame = frame[frame["metric"] == "measured_gpu_hours"]
    hours = {f"{row.method}/{row.stage}": float(row.value) for row in frame.itertuples()}
    card = str(frame["hardware"].iloc[0]).removesuffix(" x1").removeprefix("NVIDIA ") if len(frame) else ""
    return hours, card


AUDITED_QUALITY = ("consistency_clip_cos", "culture_shape")  # the toy metrics the quality verdicts read


def claims_audit(quality: Mapping[str, pd.Series]) -> pd.DataFrame:
    """One row per audited claim: claim, as claimed, what the study has, verdict, why. `quality` maps each
    metric of `AUDITED_QUALITY` to its per-method mean over seeds and target languages (the analysis
    computes it: `xlcore.analysis.audit_claims`); the rest is read from the measured artefacts."""
    params = _sd15_parameters()
    budgets = published_budgets()
    prices = PriceTable.load()
    scale = flops_at_published_scale()
    measured_hours, card = _measured_gpu_hours()
    empty = pd.Series(dtype=float)
    consistency, culture = (quality.get(metric, empty) for metric in AUDITED_QUALITY)

    def p(key: str) -> str:
        return f"{params[key][0] / 1e6:.2f}M ({params[key][1]:.2f}% of SD 1.5 + ViT-L/14 + XLM-R base)" if key in params else "-"

    def extrapolated(key: str) -> str:
        metrics, _ = extrapolate(budgets.get(key), flops_per_sample=scale.get(key), prices=prices)
        parts = []
        if "published_gpu_hours" in metrics:
            parts.append(f"published {metrics['published_gpu_hours']:,.0f} GPU-h")
        if "extrapolated_gpu_hours" in metrics:
            parts.append(f"extrapolated {metrics['extrapolated_gpu_hours']:,.0f} A100-h from the published samples")
        return "; ".join(parts) or "no training budget published"

    rows = []

    def add(claim, claimed, measured, verdict, why):
        rows.append({"claim": claim, "as claimed": claimed, "this study / the sources": measured, "verdict": verdict,
                     "why": why})

    add("mCLIP trainable parameters", "13M (3%)", p("trikd/trikd") + f"; paper dimensions {PAPER_PARAMETERS['trikd'] / 1e6:.1f}M",
        SUPPORTED, "14.6M at ViT-B/32 + XLM-R base (3.4% of that system); the 13M is a rounding")
    v100 = extrapolate(budgets.get("trikd/trikd"), flops_per_sample=scale.get("trikd/trikd"), prices=prices,
                       gpu="V100-32GB")[0].get("extrapolated_gpu_hours")
    add("mCLIP training cost", "~256 GPU-h (8x V100), $1,000-2,000", extrapolated("trikd/trikd")
        + (f"; {v100:,.0f} V100-h at the same utilisation" if v100 else ""), NOT_MEASURABLE,
        "no source gives it (the released script trains on one GPU); the FLOPs estimate is of the same order")
    add("MuLan trainable parameters", "20M", p("mulan/adapter") + f"; paper {PAPER_PARAMETERS['mulan'] / 1e6:.2f}M", SUPPORTED,
        "20.37M with a 4096-wide encoder (MuLan paper); 17.8M with XLM-R base")
    add("MuLan training cost", "<768 GPU-h, <$1,000", extrapolated("mulan/adapter"), NOT_MEASURABLE,
        "MuLan publishes no training budget and no training code")
    add("PEA trainable parameters", "6M", p("pea/adapter") + f"; SD 1.5 variant {PAPER_PARAMETERS['pea'] / 1e6:.2f}M",
        PARTLY, "6M is the SDXL variant; the SD 1.5 variant is 7.87M (PEA code)")
    add("PEA training cost", "~100-200 GPU-h, $500-1,000", extrapolated("pea/adapter"), NOT_MEASURABLE,
        "PEA's scripts fix the batch but not the number of steps")
    add("IAP trainable parameters", "100M (10%)", p("iap/pivot"), CONTRADICTED,
        "IAP trains a whole new text encoder: as large as the encoder chosen (278M for XLM-R base); no source gives 100M")
    add("IAP training cost", "~500-1,000 GPU-h, $2,000-5,000", extrapolated("iap/pivot"), NOT_MEASURABLE,
        "no public code or budget")
    add("AltDiffusion trainable parameters", "500M (50%)",
        f"concept {p('altdiffusion/concept')}; quality {p('altdiffusion/quality')}", CONTRADICTED,
        "it trains 19.17M (attn2 k/v; 43.96M with the upstream bug) and then the whole 860M UNet, never 500M")
    hours = (budgets.get("altdiffusion/concept", {}).get("reported_gpu_hours") or 0) + \
            (budgets.get("altdiffusion/quality", {}).get("reported_gpu_hours") or 0)
    add("AltDiffusion training cost", "~21,000 A100-h, $47,700",
        f"published {hours:,.0f} A100-h for the two diffusion stages (64 A100 x 15 days), more with the CFG phase"
        + (f"; at the speed measured on one {card} (batch 8, bf16) their published samples take "
           f"{measured_hours['altdiffusion/concept'] + measured_hours['altdiffusion/quality']:,.0f} {card}-h"
           if {"altdiffusion/concept", "altdiffusion/quality"} <= measured_hours.keys() else ""),
        PARTLY, "the order of magnitude holds; the figure matches none of the published phases; the dollars have no source")
    add("Full fine-tuning", "~150,000 A100-h, $320,000, 1B (100%)",
        f"{p('full_finetune/joint')}; {extrapolated('full_finetune/joint')}"
        + (f"; {measured_hours['full_finetune/joint']:,.0f} {card}-h at the speed measured on one"
           if "full_finetune/joint" in measured_hours else ""), CONTRADICTED,
        "the only published run (Taiyi) took 3,200 A100-h and trained the text encoder only; AltDiffusion's whole-UNet "
        "stage saw about 1B samples in 10,752 A100-h, so 150,000 would mean about 14 times that data")
    mean = sum(MCLIP_PLUS_ROW) / len(MCLIP_PLUS_ROW)
    add("mCLIP+ 70.1 mean recall across 7 languages", "70.1", f"the plain average of its 7 table cells is {mean:.1f}",
        CONTRADICTED, "the 7 cells mix Multi30K and MS-COCO and count English twice: not a mean over 7 languages")
    add("Retrieval tables (Multi30K, MS-COCO)", "per-model mean recall", "loaders and protocol ready; needs the sd15 "
        "weights and the benchmark images", NOT_MEASURABLE, "no pretrained weights here; the IAP row is implausible "
        "(IAP is a Chinese generation method with no retrieval evaluation)")
    add("Generation table (MG-18 FID / CLIP / culture / text accuracy)", "AltDiffusion 21.3 FID ...",
        "protocol implemented (Inception FID, CLIP score conventions); needs the released models", NOT_MEASURABLE,
        "no pretrained weights here; the CLIP-score scale (0.31) matches AltDiffusion's raw-cosine convention")
    if not culture.empty and "altdiffusion" in culture.index:
        others = culture.drop(labels=[m for m in ("altdiffusion", "english-backbone") if m in culture.index])
        add("AltDiffusion excels at culture-specific concepts", "best culture understanding",
            f"toy culture-concept accuracy: AltDiffusion {culture['altdiffusion']:.1f}, best other "
            f"{others.max():.1f} ({others.idxmax()}); chance about 12.5", NOT_MEASURABLE if culture.max() < 20 else
            (SUPPORTED if culture["altdiffusion"] >= others.max() else CONTRADICTED),
            "within the toy budgets no method draws the culture concepts above chance, so the toy cannot decide it")
    claimed = ["altdiffusion", "mclip_plus", "iap", "mulan", "pea"]
    present = [m for m in claimed if m in consistency.index]
    if len(present) == len(claimed):  # every method of the claim evaluated
        measured = sorted(present, key=lambda m: -consistency[m])
        add("Quality ordering AltDiffusion > mCLIP+ > IAP > MuLan > PEA", " > ".join(claimed),
            "toy consistency: " + " > ".join(f"{m} {consistency[m]:.2f}" for m in measured),
            SUPPORTED if measured == present else PARTLY if measured[0] == present[0] else CONTRADICTED,
            "toy world, one protocol; mCLIP+ is TriKD after its MTE stage (MTE without the translation decoder)")
    if not consistency.empty:
        adapters = [m for m in ("mulan", "pea") if m in consistency.index]
        if adapters and "altdiffusion" in consistency.index:
            add("Adapters (MuLan, PEA) may lose some quality", "qualitative",
                ", ".join(f"{m} {consistency[m]:.2f}" for m in adapters) + f" vs AltDiffusion {consistency['altdiffusion']:.2f}",
                SUPPORTED if all(consistency[m] < consistency["altdiffusion"] for m in adapters) else CONTRADICTED,
                "on the toy world the adapters trail the method that aligns its encoder; part of it is the toy encoder's "
                "missing cross-lingual alignment (MuLan's premise)")
    add("IAP needs 5-10% of the data", "5-10%", "IAP's abstract says so; no code or data sizes published",
        NOT_MEASURABLE, "a data-size sweep needs IAP's data; the toy runs one budget")
    add("PEA is a 768->64->768 bottleneck trained with KL", "bottleneck + KL",
        "PEA code: LayerNorm + bias-free 3-layer MLP (1024->2048->2048->768), MSE losses", CONTRADICTED,
        "the published code disagrees")
    return pd.DataFrame(rows)
