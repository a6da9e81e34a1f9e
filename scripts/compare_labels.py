"""How far the labels of a converted robot recording are from the simulator's own labels of the
same episodes (scripts/bag_round_trip.sh): per command kind and per kind of step.

    python scripts/compare_labels.py LONG NATIVE BAGS

LONG: the episodes as generated (vla data generate --steps 72), for the steps after the kept
ones; NATIVE: the same cut to their first steps (scripts/truncate_episodes.py); BAGS: the
record-sim --robot recording of them through vla data from-bag. Every sample step (a full
history) is put in the first class that applies: ``prelude`` (the robot waits at rest or drives
before it stops, not what its command asks), ``perturbed`` (a steering perturbation within the
label's horizon), ``noise only`` (the rest: the executor's Gaussian noise on the expert's plan).
The label distance is the mean (ADE) and last (FDE) waypoint distance in metres; the end point
is how far ahead (m) a command's labels end, 3.2 s out, on average.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from vla_ros.data.io import DATASET_FILE, load_meta, open_npz


def _step_class(long: dict, t: int, horizon_steps: int) -> str:
    if long["prelude"][t]:
        return "prelude"
    if long["perturbed"][t:t + horizon_steps].any():
        return "perturbed"
    return "noise only"


def compare(long_dir: Path, native_dir: Path, bag_dir: Path) -> dict:
    info = json.loads((native_dir / DATASET_FILE).read_text())
    world = info["config"]
    first = (world["history_length"] - 1) * world["history_stride"]
    horizon_steps = round(world["horizon"] * world["traj_dt"] / world["sim_dt"])
    rows: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    reach: dict[str, list[tuple[float, float]]] = defaultdict(list)  # kind -> (native, bags) end distances
    worst_state = worst_image = 0.0
    for stem in info["files"]:
        meta, bag_meta = load_meta(native_dir / f"{stem}.json"), load_meta(bag_dir / f"{stem}.json")
        if (meta["command"], meta["kind"]) != (bag_meta["command"], bag_meta["kind"]):
            raise SystemExit(f"{stem}: native {meta['command']!r} ({meta['kind']}) but bag "
                             f"{bag_meta['command']!r} ({bag_meta['kind']})")
        nat, bag, long = open_npz(native_dir / f"{stem}.npz"), open_npz(bag_dir / f"{stem}.npz"), \
            open_npz(long_dir / f"{stem}.npz")
        if len(bag["traj"]) != len(nat["traj"]):
            raise SystemExit(f"{stem}: {len(nat['traj'])} native steps, {len(bag['traj'])} converted")
        worst_state = max(worst_state, float(np.abs(nat["state"] - bag["state"]).max()))
        worst_image = max(worst_image, max(float(np.abs(nat[c].astype(int) - bag[c].astype(int)).max())
                                           for c in ("ego", "top")))
        dist = np.linalg.norm(nat["traj"][..., :2] - bag["traj"][..., :2], axis=-1)  # (T, 16)
        for t in range(first, len(dist)):
            pair = (float(dist[t].mean()), float(dist[t, -1]))
            rows[meta["kind"], _step_class(long, t, horizon_steps)].append(pair)
            reach[meta["kind"]].append((float(np.linalg.norm(nat["traj"][t, -1, :2])),
                                        float(np.linalg.norm(bag["traj"][t, -1, :2]))))
    return {"episodes": len(info["files"]), "max_state_diff": worst_state, "max_pixel_diff": worst_image,
            "rows": rows, "reach": reach}


def _line(name: str, pairs: list[tuple[float, float]], total: int) -> str:
    a = np.array(pairs)
    return f"| {name} | {len(a)} ({100 * len(a) / total:.0f} %) | {a[:, 0].mean():.3f} | {a[:, 1].mean():.3f} |"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("long", "native", "bags"):
        p.add_argument(name, type=Path)
    a = p.parse_args(argv)
    r = compare(a.long, a.native, a.bags)
    rows = r["rows"]
    total = sum(len(v) for v in rows.values())
    print(f"{r['episodes']} episodes, {total} samples; largest state difference {r['max_state_diff']:.2e}, "
          f"largest pixel difference {r['max_pixel_diff']:.0f}")
    print("| samples | count | label ADE (m) | label FDE (m) |\n|---|---|---|---|")
    print(_line("all", [x for v in rows.values() for x in v], total))
    for cls in ("noise only", "perturbed", "prelude"):
        print(_line(cls, [x for (k, c), v in rows.items() if c == cls for x in v], total))
    for kind in sorted({k for k, _ in rows}):
        print(_line(kind, [x for (k, c), v in rows.items() if k == kind for x in v], total))
        for cls in ("perturbed", "prelude"):
            if rows.get((kind, cls)):
                print(_line(f"{kind}, {cls}", rows[kind, cls], total))
    print("\n| command | label end point, native (m) | bags (m) |\n|---|---|---|")
    for kind, pairs in sorted(r["reach"].items()):
        native, bags = np.array(pairs).mean(axis=0)
        print(f"| {kind} | {native:.3f} | {bags:.3f} |")


if __name__ == "__main__":
    main()
