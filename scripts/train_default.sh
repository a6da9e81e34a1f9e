#!/usr/bin/env bash
# Reproduces checkpoints/default.pth, the packaged language-grounded model (config/model_tokens.yaml:
# token fusion, goal token, target locator, phrasebook), from nothing, on the CPU:
#
#   make default-checkpoint      # = bash scripts/train_default.sh (RUN=runs/default DATA=data)
#
# 1. 240 expert episodes (seed 1) and the held-out set (64 episodes, seed 1000, held-out wordings);
# 2. vla train --config config/model_tokens.yaml: the target locator pre-trained alone
#    (3200 steps, cosine-decayed), then 2000 steps of everything trainable, every state relabelled
#    for every command half the time (train.relabel_prob), the goal token teacher-forced half the time;
# 3. DAGGER_ROUNDS (default 2) rounds: the current model drives 160 new episodes (train wordings) while the
#    expert labels every step, then 800 fine-tuning steps (lr 1e-4) on every episode so far.
# 4. the float16 copy of the last model ($RUN/round<N>/best.pth) becomes checkpoints/default.pth
#    (PACKAGE=0: not written), and vla eval scores it on the held-out set ($RUN/eval.json, eval.png).
# Every stage whose output exists is skipped: after an interruption, run it again. Progress bars,
# loss curves (loss_curve.png) and train_log.json in each run directory. Timings on the 2-core
# machine: docs/results.md ("The grounded model's pipeline").
# The packaged file's DAgger labels came from the expert before it learnt to back away from an
# obstacle it stands in front of; a retrain gets the current expert's (docs/results.md, "Teaching
# recovery from in front of an obstacle"), so it is the same recipe, not the same labels.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/train_lib.sh"
RUN=${RUN:-$ROOT/runs/default}
CONFIG=$ROOT/config/model_tokens.yaml
ROUNDS=${DAGGER_ROUNDS:-2}
start=$(date +%s)
stamp() { echo "[train_default] $1 after $(( ($(date +%s) - start) / 60 )) min"; }

base_data
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
  join_datasets "$joined" "${sources[@]}"
  mkdir -p "$RUN/round$r" && ln -sfn "$RUN/bc/cache" "$RUN/round$r/cache"  # shared frames encoded once
  [ -f "$RUN/round$r/best.pth" ] || "$VLA" train --config "$CONFIG" --data "$joined" --out "$RUN/round$r" \
      --init "$policy" --steps 800 --lr 1e-4 --val-every 400 --half-frames
  policy="$RUN/round$r/best.pth"
  stamp "DAgger round $r"
done

if [ "${PACKAGE:-1}" = 1 ]; then
  package "$policy" "$ROOT/checkpoints/default.pth"
  "$VLA" eval --data "$DATA/eval" --checkpoint "$ROOT/checkpoints/default.pth" --json "$RUN/eval.json" \
      --plot "$RUN/eval.png" --half-frames
fi
stamp "done: $policy"
