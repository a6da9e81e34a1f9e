# Helpers shared by scripts/train_default.sh and scripts/train_guided.sh (sourced after ROOT is set,
# not run). VLA (the CLI) and DATA (where datasets go) keep a value given in the environment.
VLA=${VLA:-$ROOT/.venv/bin/vla}
DATA=${DATA:-$ROOT/data}

# base_data: the 240 expert training episodes (seed 1) and the held-out set (64 episodes, seed 1000,
# held-out wordings) in $DATA/train and $DATA/eval, unless they are there already.
base_data() {
  [ -f "$DATA/train/dataset.json" ] || "$VLA" data generate --out "$DATA/train" --episodes 240 --seed 1
  [ -f "$DATA/eval/dataset.json" ] || "$VLA" data generate --out "$DATA/eval" --episodes 64 --seed 1000 --split eval
}

# join_datasets OUT SRC...: OUT holds every episode of the SRC datasets as symbolic links, with the
# first source's dataset.json (world config and phrasing split), so one `vla train --data OUT`
# sees them all and the frame cache of shared episodes is reused.
join_datasets() {
  local out=$1 src f; shift
  rm -rf "$out" && mkdir -p "$out"
  for src in "$@"; do
    for f in "$src"/episode_*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$out/"; done
  done
  cp "$1/dataset.json" "$out/"
}

# package CKPT OUT: the float16 copy of a float32 checkpoint (half the size), as packaged in checkpoints/.
package() {
  "$ROOT/.venv/bin/python" - "$1" "$2" <<'PY'
import sys
from vla_ros.checkpoint import load_checkpoint, save_checkpoint
model, payload = load_checkpoint(sys.argv[1])
save_checkpoint(model, sys.argv[2], meta=payload["meta"], half=True)
print("wrote", sys.argv[2])
PY
}
