#!/usr/bin/env bash
# The prepared GPU run (issue: performance): the sd15 throughput table on one GPU, within 8 minutes.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [extra throughput.py options]
#
# Installs nothing and downloads nothing (the architectures come from in-code configs with random
# weights). Writes into OUT_DIR: nvidia-smi.csv, throughput.csv (tidy rows), throughput.md (the table),
# device.json, throughput.log; prints the table. Rows not started by the deadline are listed as skipped.
# On a CPU, pass e.g. `--small --resolution 64 --steps 1` to check the script itself (tests do).
set -euo pipefail
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR [throughput.py options]}
shift
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
mkdir -p "$OUT"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
    > "$OUT/nvidia-smi.csv" || echo "no nvidia-smi: running on the CPU" | tee "$OUT/nvidia-smi.csv"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# 6 minutes of rows (the batch-size search included), then the table; the hard limit leaves a margin.
timeout 470 "$PY" benchmarks/throughput.py --out "$OUT" --max-batch --deadline 330 "$@" 2>&1 | tee "$OUT/throughput.log"
