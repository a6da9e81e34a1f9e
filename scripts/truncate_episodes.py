"""Keep the first STEPS steps of every episode of a simulated dataset (vla data generate).

The native twin of a robot recording: `vla bag record-sim --robot --steps 40` drives each
episode 3.2 s (32 steps) longer so that every one of its 40 frames gets a label from the
odometry, and the simulator draws an episode's prelude (a waiting start, the drive before a
stop) from the whole length it runs. `vla data generate --steps 72` then this script to 40 give
the same 40 frames, states and worlds with the simulator's own labels (docs/train_on_robot.md,
"Bags against native data").

    python scripts/truncate_episodes.py SRC OUT --steps 40
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vla_ros.data.io import DATASET_FILE, load_meta, open_npz, save_episode


def truncate(src: Path, out: Path, steps: int) -> int:
    """Write ``src``'s episodes cut to their first ``steps`` steps to ``out``; returns how many."""
    info = json.loads((src / DATASET_FILE).read_text())
    if info.get("generator") != "vla_ros.data.generate_dataset":
        raise SystemExit(f"{src}: not a dataset of vla data generate (generator {info.get('generator')!r})")
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    for stem in info["files"]:
        meta, arrays = load_meta(src / f"{stem}.json"), open_npz(src / f"{stem}.npz", mmap=False)
        n = int(meta["num_steps"])
        if n < steps:
            raise SystemExit(f"{src / stem}: {n} steps, fewer than --steps {steps}")
        cut = {k: v[:steps] if v.ndim and len(v) == n else v for k, v in arrays.items()}
        # the rest of the metadata (collisions, final distances) still describes the whole run
        meta.update(num_steps=steps, final_state=[float(x) for x in cut["state"][-1]], truncated_from=n)
        save_episode(out, int(meta["episode"]), cut, meta)
    world = info["config"]
    first = (world["history_length"] - 1) * world["history_stride"]  # the first step with a full history
    info.update(steps_per_episode=steps, samples=len(info["files"]) * (steps - first),
                truncated_from=info["steps_per_episode"])
    (out / DATASET_FILE).write_text(json.dumps(info, indent=1))
    return len(info["files"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, required=True)
    a = p.parse_args(argv)
    print(f"wrote {truncate(a.src, a.out, a.steps)} episodes of {a.steps} steps to {a.out}")


if __name__ == "__main__":
    sys.exit(main())
