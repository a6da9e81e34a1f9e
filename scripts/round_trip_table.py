"""The tables of scripts/bag_round_trip.sh: closed-loop successes per command and open-loop
ADE / FDE of each run, and the bags / native success ratio (docs/train_on_robot.md).

    python scripts/round_trip_table.py runs/rt            # runs/rt/{native,bags}/sim_*.json, eval_*.json
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

RUNS = ("native", "bags")
SEEDS = (5000, 6000, 7000)


def closed_loop(run: Path) -> tuple[Counter, Counter, int]:
    """(successes per kind, episodes per kind, collisions) over the eval seeds."""
    wins, total, collisions = Counter(), Counter(), 0
    for seed in SEEDS:
        summary = json.loads((run / f"sim_{seed}.json").read_text())["summary"]
        collisions += int(summary["collisions"])
        for kind, row in summary["per_kind"].items():
            wins[kind] += int(row["successes"])
            total[kind] += int(row["episodes"])
    return wins, total, collisions


def paired(root: Path) -> Counter:
    """The same episodes driven by both models: how many each one alone succeeds in."""
    out = Counter()
    for seed in SEEDS:
        runs = [json.loads((root / name / f"sim_{seed}.json").read_text())["episodes"] for name in RUNS]
        for a, b in zip(*runs, strict=True):
            if a["seed"] != b["seed"]:
                raise SystemExit(f"seed {seed}: the runs drove different episodes ({a['seed']} vs {b['seed']})")
            out[(a["result"]["success"], b["result"]["success"])] += 1
    return out


def main(argv: list[str]) -> None:
    root = Path(argv[0])
    loops = {name: closed_loop(root / name) for name in RUNS}
    kinds = sorted(loops[RUNS[0]][1])
    print("| model | all | " + " | ".join(kinds) + " | collisions |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    for name, (wins, total, collisions) in loops.items():
        cells = " | ".join(f"{wins[k]}/{total[k]}" for k in kinds)
        print(f"| {name} | {sum(wins.values())}/{sum(total.values())} | {cells} | {collisions} |")
    ratio = sum(loops["bags"][0].values()) / max(1, sum(loops["native"][0].values()))
    pairs = paired(root)
    print(f"\nsuccess ratio bags / native: {ratio:.3f}; the same episodes: both succeed {pairs[True, True]}, "
          f"only native {pairs[True, False]}, only bags {pairs[False, True]}, neither {pairs[False, False]}\n")
    print("| model | held-out labels | ADE (m) | FDE (m) | stop ADE | samples |\n|---|---|---|---|---|---|")
    for name in RUNS:
        for labels in ("native", "bags"):
            r = json.loads((root / name / f"eval_{labels}.json").read_text())["model"]
            print(f"| {name} | {labels} | {r['overall']['ade']:.3f} | {r['overall']['fde']:.3f} | "
                  f"{r['stop']['ade']:.3f} | {r['overall']['n']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
