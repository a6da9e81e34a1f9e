#!/usr/bin/env bash
# Trains the language-grounded model (config/model_tokens.yaml: token fusion, goal token, target
# locator, phrasebook) from nothing, on the CPU:
#
#   bash scripts/train_tokens.sh            # RUN=runs/tokens DATA=data DAGGER_ROUNDS=3
#
# 1. 240 expert episodes (seed 1) and the held-out set (64 episodes, seed 1000, held-out wordings);
# 2. vla train --config config/model_tokens.yaml: the target locator pre-trained alone
#    (3200 steps, cosine-decayed), then 2000 steps of everything trainable, every state relabelled
#    for every command half the time (train.relabel_prob), the goal token teacher-forced half the time;
# 3. DAGGER_ROUNDS rounds: the current model drives 160 new episodes (train wordings) while the
#    expert labels every step, then 800 fine-tuning steps (lr 1e-4) on every episode so far.
# The last model is $RUN/round<N>/best.pth; PACKAGE=1 writes its float16 copy to
# checkpoints/default.pth. Progress bars, loss curves (loss_curve.png) and train_log.json in each
# run directory. Timings on the 2-core machine: docs/results.md ("The grounded model's pipeline").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VLA=${VLA:-$ROOT/.venv/bin/vla}
DATA=${DATA:-$ROOT/data}
RUN=${RUN:-$ROOT/runs/tokens}
CONFIG=$ROOT/config/model_tokens.yaml
ROUNDS=${DAGGER_ROUNDS:-3}
start=$(date +%s)
stamp() { echo "[train_tokens] $1 after $(( ($(date +%s) - start) / 60 )) min"; }

[ -f "$DATA/train/dataset.json" ] || "$VLA" data generate --out "$DATA/train" --episodes 240 --seed 1
[ -f "$DATA/eval/dataset.json" ] || "$VLA" data generate --out "$DATA/eval" --episodes 64 --seed 1000 --split eval
stamp "data"
[ -f "$RUN/bc/best.pth" ] || "$VLA" train --config "$CONFIG" --data "$DATA/train" --out "$RUN/bc" --half-frames
stamp "behaviour cloning"

policy="$RUN/bc/best.pth"
sources=("$DATA/train")
for ((r = 1; r <= ROUNDS; r++)); do
  on="$DATA/tokens_on_policy$r" joined="$DATA/tokens_dagger$r"
  [ -f "$on/dataset.json" ] || "$VLA" data generate --out "$on" --episodes 160 --seed $((r + 1)) \
      --first-index $((240 + 160 * (r - 1))) --policy "$policy" --policy-noise fixed
  sources+=("$on")
  rm -rf "$joined" && mkdir -p "$joined"
  for src in "${sources[@]}"; do
    for f in "$src"/episode_*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$joined/"; done
  done
  cp "$DATA/train/dataset.json" "$joined/"  # world config and phrasing split of the joined set
  mkdir -p "$RUN/round$r" && ln -sfn "$RUN/bc/cache" "$RUN/round$r/cache"  # shared frames encoded once
  [ -f "$RUN/round$r/best.pth" ] || "$VLA" train --config "$CONFIG" --data "$joined" --out "$RUN/round$r" \
      --init "$policy" --steps 800 --lr 1e-4 --val-every 400 --half-frames
  policy="$RUN/round$r/best.pth"
  stamp "DAgger round $r"
done

if [ "${PACKAGE:-0}" = 1 ]; then  # float16 copy (half the size) as the packaged default
  "$ROOT/.venv/bin/python" - "$policy" "$ROOT/checkpoints/default.pth" <<'PY'
import sys
from vla_ros.checkpoint import load_checkpoint, save_checkpoint
model, payload = load_checkpoint(sys.argv[1])
save_checkpoint(model, sys.argv[2], meta=payload["meta"], half=True)
print("wrote", sys.argv[2])
PY
fi
stamp "done: $policy"
