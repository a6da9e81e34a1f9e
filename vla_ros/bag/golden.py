"""Golden outputs: the model's answers to a bag, stored as JSON, and the check against them.

The tiny fixture (``vla bag golden --tiny``, used by ``test/test_bag.py``): a SimpleVLA with the
tiny backbone and random weights drawn after ``torch.manual_seed(0)`` (deterministic), and a
bag of :data:`TINY` simulated episodes.  The golden file also stores fingerprints of both inputs,
so a failing check says whether the *inputs* changed (the simulator or the model code's
initialisation changed: regenerate) or the *outputs* did (inference changed: investigate).

    vla bag golden --tiny --out test/golden/tiny_offline.json      # regenerate the test's golden file
    vla bag golden BAG --checkpoint C --out golden.json            # any bag and checkpoint
    vla bag golden BAG --checkpoint C --check golden.json          # compare (exit 1 on a difference)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from vla_ros.bag.score import Answer, pick_answers, status_name

__all__ = ["TINY", "TINY_NODE_PARAMS", "TOLERANCE_M", "make_tiny_checkpoint", "make_tiny_bag", "make_tiny_inputs",
           "frames_fingerprint", "checkpoint_fingerprint", "golden_doc", "compare_golden"]

# the tiny bag: 2 episodes of 11 frames (3 with a full 5-frame history each), 64 px
TINY = {"episodes": 2, "seed": 5, "steps": 11, "image_size": 64, "split": "train", "gap": 2.0, "start": 10.0}
# node settings for the tiny fixture: few denoising steps (fast on a CPU)
TINY_NODE_PARAMS = {"num_inference_steps": 4, "cpu_threads": 1}
TOLERANCE_M = 1e-3


def make_tiny_checkpoint(path: str | Path) -> Path:
    import torch

    from vla_ros.checkpoint import save_checkpoint
    from vla_ros.model.vla import SimpleVLA

    torch.manual_seed(0)
    model = SimpleVLA(backbone="tiny", image_size=64, cond_dim=64)
    return save_checkpoint(model, path)


def make_tiny_bag(path: str | Path, overwrite: bool = False) -> Path:
    from vla_ros.bag.record import record_sim

    return record_sim(path, overwrite=overwrite, **TINY).path


def make_tiny_inputs(folder: str | Path) -> tuple[Path, Path]:
    """(bag, checkpoint) of the tiny fixture in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return make_tiny_bag(folder / "tiny_bag", overwrite=True), make_tiny_checkpoint(folder / "tiny.pth")


def frames_fingerprint(bag: str | Path, roles: Any = None) -> str:
    """sha256 over the image messages (topic, log time, raw bytes) of the bag, in order."""
    from vla_ros.bag.io import BagReader
    from vla_ros.bag.topics import resolve_topics

    h = hashlib.sha256()
    with BagReader(bag) as reader:
        roles = roles or resolve_topics(reader)
        for m in reader.messages([roles.ego, roles.top]):
            h.update(m.topic.encode())
            h.update(int(m.log_ns).to_bytes(8, "little"))
            h.update(m.raw)
    return h.hexdigest()


def checkpoint_fingerprint(path: str | Path) -> str:
    """sha256 over the checkpoint's weights (names, shapes, values) and its model config."""
    import json

    from vla_ros.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    h = hashlib.sha256(json.dumps(payload.get("model_config"), sort_keys=True).encode())
    for k in sorted(payload["state_dict"]):
        v = payload["state_dict"][k]
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def dumps(doc: dict[str, Any]) -> str:
    """JSON with one line per waypoint."""
    import json
    import re

    text = json.dumps(doc, indent=1)
    return re.sub(r"\[\s+([-0-9.e]+),\s+([-0-9.e]+),\s+([-0-9.e]+)\s+\]", r"[\1, \2, \3]", text) + "\n"


def golden_doc(answers: list[Answer], inputs: dict[str, Any], command: str) -> dict[str, Any]:
    picked = pick_answers(answers)
    return {
        "generated_by": command,
        "tolerance_m": TOLERANCE_M,
        "inputs": inputs,
        "answers": [{"stamp_ns": a.stamp_ns, "status": status_name(a.status), "command": a.command,
                     "trajectory": [[round(float(v), 6) for v in row] for row in a.trajectory.tolist()]}
                    for a in picked.values()],
    }


def compare_golden(answers: list[Answer], golden: dict[str, Any], inputs: dict[str, Any] | None = None,
                   tolerance: float | None = None) -> list[str]:
    """Differences between ``answers`` and a golden document ([] = equal within the tolerance)."""
    tol = float(tolerance if tolerance is not None else golden.get("tolerance_m", TOLERANCE_M))
    problems: list[str] = []
    if inputs is not None:
        for key, value in golden.get("inputs", {}).items():
            if key.endswith("sha256") and inputs.get(key) not in (None, value):
                problems.append(f"input {key} differs from the golden file's: the inputs changed (simulator, model "
                                f"initialisation or recording); regenerate with `{golden.get('generated_by')}` "
                                "if that change is intended")
    picked = pick_answers(answers)
    want = {g["stamp_ns"]: g for g in golden["answers"]}
    if set(picked) != set(want):
        missing = sorted(set(want) - set(picked))[:5]
        extra = sorted(set(picked) - set(want))[:5]
        problems.append(f"answer stamps differ: missing {missing}, unexpected {extra}")
    worst = 0.0
    for stamp in sorted(set(picked) & set(want)):
        a, g = picked[stamp], want[stamp]
        if status_name(a.status) != g["status"] or a.command != g["command"]:
            problems.append(f"{stamp}: status/command {status_name(a.status)} {a.command!r}, golden {g['status']} "
                            f"{g['command']!r}")
            continue
        gt = np.asarray(g["trajectory"], dtype=np.float64)
        if gt.shape != a.trajectory.shape:
            problems.append(f"{stamp}: trajectory shape {a.trajectory.shape}, golden {gt.shape}")
            continue
        if not gt.size:
            continue
        dxy = float(np.abs(a.trajectory[:, :2] - gt[:, :2]).max())
        dyaw = float(np.abs((a.trajectory[:, 2] - gt[:, 2] + np.pi) % (2 * np.pi) - np.pi).max())
        worst = max(worst, dxy, dyaw)
        if dxy > tol or dyaw > tol:
            problems.append(f"{stamp}: waypoints differ by up to {dxy:.2e} m, headings by {dyaw:.2e} rad "
                            f"(tolerance {tol:g})")
    return problems
