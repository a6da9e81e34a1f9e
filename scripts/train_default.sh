#!/usr/bin/env bash
# Reproduces checkpoints/default.pth (the packaged model) from nothing, on the CPU.
#
#   bash scripts/train_default.sh            # or: make default-checkpoint
#
# Measured on the 2-core development machine: data ~3 min, frame encoding ~15 min, 3000 steps
# ~57 min (1.0-1.2 s a step; slower while other jobs share the CPU).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VLA=${VLA:-$ROOT/.venv/bin/vla}
DATA=${DATA:-$ROOT/data}
RUN=${RUN:-$ROOT/runs/default}
[ -f "$DATA/train/dataset.json" ] || "$VLA" data generate --out "$DATA/train" --episodes 240 --seed 1
[ -f "$DATA/eval/dataset.json" ] || "$VLA" data generate --out "$DATA/eval" --episodes 64 --seed 1000 --split eval
"$VLA" train --data "$DATA/train" --out "$RUN" --steps 3000 --val-every 250 --half-frames
"$ROOT/.venv/bin/python" - "$RUN/best.pth" "$ROOT/checkpoints/default.pth" <<'PY'
import sys
from vla_ros.checkpoint import load_checkpoint, save_checkpoint
model, payload = load_checkpoint(sys.argv[1])
save_checkpoint(model, sys.argv[2], meta=payload["meta"], half=True)  # float16 weights: half the size
print("wrote", sys.argv[2])
PY
"$VLA" eval --data "$DATA/eval" --json "$RUN/eval.json" --plot "$RUN/eval.png"
