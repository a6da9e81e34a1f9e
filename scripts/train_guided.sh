#!/usr/bin/env bash
# Reproduces checkpoints/locator.pth and checkpoints/scene.pth, the additive-fusion models for
# sampling-time guidance (guidance: target / scene; docs/history.md), from nothing, on the CPU.
# The packaged default (scripts/train_default.sh) needs neither.
#
#   bash scripts/train_guided.sh
#
# Stages 1-3 train the additive-fusion model that was the packaged default before token fusion
# (config/model.yaml); it is kept as $RUN/additive.pth, the starting point of stage 4.
# 1. behaviour cloning: 240 expert episodes, 3000 steps;
# 2. DAGGER_ROUNDS=N (default 5; 0 stops after behaviour cloning): N DAgger
#    rounds, each: the current model drives 160 new episodes while the expert labels every step
#    (vla data generate --policy), then 800 fine-tuning steps (vla train --init) on all the
#    episodes so far, joined in one directory by symbolic links. From round DAGGER_VARIED_FROM
#    (default 3) on, the driving model draws new noise per prediction (--policy-noise varied)
#    instead of one fixed draw, so the data covers what its samples do (late braking included),
#    not one draw's path. Measured (docs/history.md): closed loop 10/32 successes with 3-4 collisions
#    after behaviour cloning, 14/32 with none after five rounds; held-out ADE ratio 0.55 both.
#    These stages train without the odometry input (--odometry-input off).
# 3. ODOMETRY=1 (default): the model gains the odometry input (the robot's measured v, omega;
#    zero-initialised, so it starts out unchanged): 1000 steps on all episodes so far; then
#    one more DAgger round (round DAGGER_ROUNDS+1) driven by it with x_T = 0 noise
#    (--policy-noise zero) and 800 steps. Measured (docs/history.md): held-out ADE 0.136 -> 0.122 m
#    (ratio 0.55 -> 0.49), closed loop unchanged at 14/32 with no collision.
#    (The packaged rounds were run by hand with these commands; round 1 started from the
#    float16 copy of the behaviour-cloning model.)
# 4. LOCATOR=1 (default): checkpoints/locator.pth, the final model plus the target locator
#    (model.target_locator: finds the commanded cone on the top camera): the locator is
#    pre-trained alone (1200 steps), then 1000 steps fine-tune everything on the same episodes;
#    then the text encoder's LoRA is dropped for the pretrained MiniLM (--text-lora off: the
#    projection refitted, then 1000 more steps), which reads unseen wordings better.
#    Run with guidance: target (vla sim --guidance target), it steers goto trajectories to the
#    located cone. Measured (docs/history.md): closed loop 23/32 and 21/32 on two held-out sets of 32
#    episodes, with no collision (default 18/32 and 16/32).
# 5. SCENE=1 (default): checkpoints/scene.pth, the locator model plus the scene map
#    (model.scene_map: obstacles and road on the top camera), for guidance: scene. The map is
#    trained alone on 600 new expert episodes (vla scene-map, 2500 steps, 6 min); then that model
#    drives 240 episodes with scene guidance (half with an obstacle on the way) while the expert
#    labels them, and 1000 steps fine-tune it on those, 240 expert episodes of every command
#    and 240 expert goto episodes with an obstacle on the way (the map stays frozen).
#    Measured (docs/history.md, "Scene guidance"): closed loop 27/32, 25/32 and 27/32 on three held-out
#    sets, no collision.
#
# The packaged checkpoints predate two changes that make a rerun differ from them: validation now
# holds out a spread-out 10% of the episodes (hashed file names), not the last 10% (mostly the
# newest DAgger round), and the goto expert drives around an obstacle on its way
# (world.expert_detour) where it used to stop before it.
#
# Measured on the 2-core development machine: data ~3 min, frame encoding ~15 min, 3000 steps
# ~57 min (1.0-1.2 s a step; slower while other jobs share the CPU); each DAgger round 3-4.5 min
# of driving and 12-16 min of fine-tuning: about 2.7 h in all with the default five rounds, and
# about 40 min more for the odometry stage (1000 steps, 4 min of driving, 800 steps).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/train_lib.sh"
RUN=${RUN:-$ROOT/runs/guided}
base_data
"$VLA" train --data "$DATA/train" --out "$RUN/bc" --steps 3000 --val-every 250 --half-frames --odometry-input off

# DAgger: round r drives with the previous model; all data so far is joined in $DATA/dagger<r>
policy="$RUN/bc/best.pth"
sources=("$DATA/train")
all_data="$DATA/train"
first=240

dagger_round() {  # R NOISE ODOMETRY(on|off): $policy drives 160 episodes, then $RUN/daggerR fine-tunes it
  local r=$1 on="$DATA/on_policy$1" joined="$DATA/dagger$1"
  [ -f "$on/dataset.json" ] || "$VLA" data generate --out "$on" --episodes 160 --seed $((r + 1)) \
      --first-index "$first" --policy "$policy" --policy-noise "$2"
  sources+=("$on")
  join_datasets "$joined" "${sources[@]}"
  all_data=$joined  # every episode so far (the locator stage trains on it)
  mkdir -p "$RUN/dagger$r"
  ln -sfn "$RUN/bc/cache" "$RUN/dagger$r/cache"  # frozen features of shared episodes are reused
  "$VLA" train --data "$joined" --out "$RUN/dagger$r" --init "$policy" --steps 800 --lr 1e-4 \
      --val-every 200 --half-frames --odometry-input "$3"
  first=$((first + 160))
}

for ((r = 1; r <= ${DAGGER_ROUNDS:-5}; r++)); do
  if ((r >= ${DAGGER_VARIED_FROM:-3})); then noise=varied; else noise=fixed; fi
  dagger_round "$r" "$noise" off
  policy="$RUN/dagger$r/best.pth"
done

if [ "${ODOMETRY:-1}" = 1 ]; then  # r = DAGGER_ROUNDS + 1 here
  joined="$DATA/dagger$((r - 1))"; [ "$r" -gt 1 ] || joined="$DATA/train"
  mkdir -p "$RUN/odometry" && ln -sfn "$RUN/bc/cache" "$RUN/odometry/cache"
  "$VLA" train --data "$joined" --out "$RUN/odometry" --init "$policy" --steps 1000 --lr 1e-4 \
      --val-every 250 --half-frames --odometry-input on
  policy="$RUN/odometry/last.pth"
  dagger_round "$r" zero on
  policy="$RUN/dagger$r/last.pth"
fi

cp "$policy" "$RUN/additive.pth"
if [ "${LOCATOR:-1}" = 1 ]; then  # checkpoints/locator.pth: the default + the target locator
  mkdir -p "$RUN/locator" && ln -sfn "$RUN/bc/cache" "$RUN/locator/cache"
  "$VLA" train --data "$all_data" --out "$RUN/locator" --init "$policy" --steps 1000 --lr 1e-4 \
      --val-every 250 --half-frames --target-locator on
  # then the pretrained text encoder instead of the LoRA-tuned one (unseen wordings), 1000 steps
  mkdir -p "$RUN/locator_text" && ln -sfn "$RUN/bc/cache" "$RUN/locator_text/cache"
  "$VLA" train --data "$all_data" --out "$RUN/locator_text" --init "$RUN/locator/last.pth" --steps 1000 \
      --lr 1e-4 --val-every 250 --half-frames --text-lora off
  package "$RUN/locator_text/last.pth" "$ROOT/checkpoints/locator.pth"
fi
if [ "${SCENE:-1}" = 1 ]; then  # checkpoints/scene.pth: the locator model + the scene map, tuned for guidance: scene
  [ -f "$DATA/map/dataset.json" ] || "$VLA" data generate --out "$DATA/map" --episodes 600 --seed 30000
  "$VLA" scene-map --init "$ROOT/checkpoints/locator.pth" --data "$DATA/map" --out "$RUN/scene_map.pth" \
      --steps 2500 --json "$RUN/scene_map.json"
  [ -f "$DATA/scene_base/dataset.json" ] || "$VLA" data generate --out "$DATA/scene_base" --episodes 240 --seed 1
  [ -f "$DATA/scene_detour/dataset.json" ] || "$VLA" data generate --out "$DATA/scene_detour" --episodes 240 \
      --seed 77 --first-index 480 --kinds goto_red,goto_green,goto_blue --blocking-obstacle-prob 1
  [ -f "$DATA/scene_on/dataset.json" ] || "$VLA" data generate --out "$DATA/scene_on" --episodes 240 --seed 88 \
      --first-index 720 --blocking-obstacle-prob 0.5 --policy "$RUN/scene_map.pth" --policy-guidance scene \
      --policy-noise varied
  joined="$DATA/scene_all"
  join_datasets "$joined" "$DATA/scene_base" "$DATA/scene_detour" "$DATA/scene_on"
  "$VLA" train --data "$joined" --out "$RUN/scene" --init "$RUN/scene_map.pth" --steps 1000 --lr 1e-4 \
      --val-every 250 --half-frames
  package "$RUN/scene/best.pth" "$ROOT/checkpoints/scene.pth"
fi
"$VLA" eval --data "$DATA/eval" --checkpoint "$ROOT/checkpoints/scene.pth" --json "$RUN/eval.json" --plot "$RUN/eval.png"
