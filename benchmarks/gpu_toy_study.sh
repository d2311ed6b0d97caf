#!/usr/bin/env bash
# One seed of the toy grid on one GPU (issue 21): every method's cells, training and evaluation, timed.
#
#   bash benchmarks/gpu_toy_study.sh OUT_DIR [extra `xlcore sweep` options]
#
# Environment: SEEDS (default 0), WORKERS (cells at a time on GPU 0, default 4: a toy cell leaves most of an
# H100 idle, so several share it), LIMIT (seconds before the sweep is stopped, default 540), WHEELS (a folder of
# wheels to install first, for a machine without diffusers / open_clip_torch / webdataset; nothing is fetched).
# Cells run with the sweep's `python` executor (the notebooks' steps without Jupyter, which the GPU machines
# lack). Writes into OUT_DIR: nvidia-smi.csv, sweep.log, results.csv (the sweep's rows; the hardware column names
# the card) and timing.json (wall seconds, cells, the ratio to the committed CPU seed's 7,860 s). An interrupted
# run resumes: rerun the same command. On a CPU, check the script itself with e.g.
#   WORKERS=1 bash benchmarks/gpu_toy_study.sh /tmp/out --smoke --methods translate --languages en,de
set -euo pipefail
OUT=${1:?usage: bash benchmarks/gpu_toy_study.sh OUT_DIR [xlcore sweep options]}
shift
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "${WHEELS:-}" ]; then
    "$PY" -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" "$WHEELS"/*.whl
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
    > "$OUT/nvidia-smi.csv" || echo "no nvidia-smi: running on the CPU" | tee "$OUT/nvidia-smi.csv"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
GPUS=$("$PY" -c "print(','.join(['0'] * int('${WORKERS:-4}')))")
start=$(date +%s)
status=0
timeout "${LIMIT:-540}" "$PY" -m xlcore sweep --preset toy --seeds "${SEEDS:-0}" --executor python --gpus "$GPUS" \
    --output-dir "$OUT/runs" "$@" > "$OUT/sweep.log" 2>&1 || status=$?
seconds=$(( $(date +%s) - start ))
cp "$OUT/runs/toy/results.csv" "$OUT/results.csv" 2> /dev/null || true
"$PY" - "$OUT" "$seconds" "$status" << 'EOF'
import json, sys
from pathlib import Path

out, seconds, status = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
done = sorted(p.parent for p in (out / "runs").glob("toy/*/*/*/done.json"))
timing = {"wall_seconds": seconds, "exit_status": status, "timed_out": status == 124, "cells_done": len(done),
          "ratio_to_cpu_seed": round(seconds / 7860.0, 4), "cpu_seed_reference": "7,860 s, seed 2, 2 CPU cores"}
(out / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
print(json.dumps(timing))
EOF
tail -3 "$OUT/sweep.log"
exit "$status"
