#!/usr/bin/env bash
# A model trained only from robot-style bags against one trained on the same episodes' native
# data (docs/train_on_robot.md, "Bags against native data"). Every stage whose output exists is
# skipped: after an interruption, run it again (an unfinished training resumes).
#
#   bash scripts/bag_round_trip.sh            # DATA=data_rt RUNS=runs/rt N=240 STEPS=1500
#
# 1. the same N episodes twice: `vla bag record-sim --robot` (cameras, /odom, /command; each
#    episode driven 3.2 s longer) then `vla data from-bag`, and `vla data generate` with the
#    recording's length (EPISODE_STEPS + 32) cut back to its first EPISODE_STEPS steps
#    (scripts/truncate_episodes.py), so both hold the same frames and states;
# 2. 32 held-out episodes (seed 1000, held-out wordings) the same two ways, for vla eval;
# 3. one recipe for both, the packaged one without what bags cannot give (no target locator:
#    its pre-training needs the cone positions; no relabelling: it needs the simulator's expert);
# 4. closed loop on the eval seeds 5000, 6000, 7000 (32 episodes each) and open loop on the
#    held-out episodes, both labelings; JSON reports next to each run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VLA=${VLA:-$ROOT/.venv/bin/vla}
PY=${PY:-$(dirname "$VLA")/python}
DATA=${DATA:-$ROOT/data_rt} RUNS=${RUNS:-$ROOT/runs/rt}
N=${N:-240} SEED=${SEED:-1} EPISODE_STEPS=${EPISODE_STEPS:-40} STEPS=${STEPS:-1500}
EXTRA=32  # horizon (16 waypoints) * 0.2 s / sim_dt 0.1 s: what record-sim --robot drives longer
TOPICS=(--ego /ego/image_raw --top /top/image_raw --command /command --odom /odom)
RECIPE=(--config "$ROOT/config/model_tokens.yaml" --target-locator off --relabel-prob 0 --half-frames
        --steps "$STEPS" --seed 0)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

both_ways() {  # NAME SEED EPISODES SPLIT: DATA/NAME_native and DATA/NAME_bags (converted)
  local name=$1 seed=$2 n=$3 split=$4
  [ -f "$DATA/${name}_long/dataset.json" ] || "$VLA" data generate --out "$DATA/${name}_long" --episodes "$n" \
      --seed "$seed" --split "$split" --steps $((EPISODE_STEPS + EXTRA)) --overwrite
  [ -f "$DATA/${name}_native/dataset.json" ] || "$PY" "$ROOT/scripts/truncate_episodes.py" \
      "$DATA/${name}_long" "$DATA/${name}_native" --steps "$EPISODE_STEPS"
  [ -f "$DATA/${name}_bag/metadata.yaml" ] || "$VLA" bag record-sim --robot --out "$DATA/${name}_bag" \
      --episodes "$n" --seed "$seed" --split "$split" --steps "$EPISODE_STEPS" --quiet --overwrite
  [ -f "$DATA/${name}_bags/dataset.json" ] || "$VLA" data from-bag "$DATA/${name}_bag" \
      --out "$DATA/${name}_bags" "${TOPICS[@]}" --overwrite
}

train() {  # KIND: RUNS/KIND from DATA/train_KIND
  local run=$RUNS/$1
  [ -f "$run/done" ] && return
  if [ -f "$run/last.pth" ]; then
    "$VLA" train --data "$DATA/train_$1" --out "$run" --resume
  else
    "$VLA" train --data "$DATA/train_$1" --out "$run" "${RECIPE[@]}"
  fi
  touch "$run/done"
}

score() {  # KIND: closed loop and open loop of RUNS/KIND/best.pth
  local run=$RUNS/$1 s d
  for s in 5000 6000 7000; do
    [ -f "$run/sim_$s.json" ] || "$VLA" sim --no-ros --episodes 32 --seed "$s" --split eval \
        --checkpoint "$run/best.pth" --json "$run/sim_$s.json"
  done
  for d in native bags; do
    [ -f "$run/eval_$d.json" ] || "$VLA" eval --data "$DATA/eval_$d" --checkpoint "$run/best.pth" \
        --json "$run/eval_$d.json" --half-frames --no-sweep
  done
}

mkdir -p "$DATA" "$RUNS"
both_ways train "$SEED" "$N" train
both_ways eval 1000 32 eval
for kind in native bags; do train "$kind"; done
for kind in native bags; do score "$kind"; done
echo "[bag_round_trip] done: $RUNS/{native,bags}/sim_*.json, eval_*.json"
