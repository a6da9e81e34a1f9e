"""``vla soak``: vla_node (a subprocess) under both cameras at 30 Hz, 640x480, published by the
soak's own process, with a tiny real checkpoint.

These are the regression tests of the soak's STOP_STALE_CAMERA bug (docs/node.md, "Raw frames and
DDS" and "Input delay"): raw 640x480 frames published with Fast DDS's default 512 kB shared-memory
segment were mostly lost before they reached the node (21% and 12% received here, 6% of the
trajectories OK), and frames waited up to 160 ms for the callbacks while the model's Python held
the GIL. Both are measured here through the node's own diagnostics.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vla_ros.ros.soak import bar, memory_figures

ROOT = Path(__file__).resolve().parents[1]
# received share, lost share and input delay (ms) every camera must keep; the bar in issue 19 is 0.95 OK
MIN_RECEIVED, MAX_LOST, MAX_INPUT_DELAY_MS, MIN_OK = 0.9, 0.02, 50.0, 0.9

# run_soak with the test's GIL-holding node, in its own process (it sets the ROS domain and the
# camera publisher's Fast DDS profile in os.environ)
HOG_SOAK = """
import argparse, json, sys, tempfile
from pathlib import Path
from vla_ros.ros.soak import run_soak
args = argparse.Namespace(duration=8.0, warmup=2.0, fps=30.0, width=640, height=480, image_transport="raw",
                          checkpoint=sys.argv[1], device="cpu", rate_hz=3.0, cpu_threads=1, domain_id=None,
                          dds_profile="")
with tempfile.TemporaryDirectory() as tmp:
    print("RESULT " + json.dumps(run_soak(args, Path(tmp), node_module="gil_hog_node")))
"""


def _check_inputs(res):
    for cam, fig in res["inputs"].items():
        assert fig["published"] > 100, (cam, fig)
        assert fig["received_share"] >= MIN_RECEIVED, (cam, fig)
        assert fig["lost_in_transport"] <= MAX_LOST * fig["published"], (cam, fig)
    assert res["trajectories"] > 0 and res["trajectories"] == sum(res["statuses"].values())
    assert res["ok_share"] >= MIN_OK, res["statuses"]


def test_raw_vga_frames_all_reach_the_node_promptly_while_the_model_holds_the_gil(tiny_checkpoint):
    pytest.importorskip("rclpy")
    env = dict(os.environ, PYTHONUNBUFFERED="1", VLA_TEST_GIL_HOG_S="0.25",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "test"), os.environ.get("PYTHONPATH")])))
    env.pop("VLA_TEST_GIL_SWITCH_S", None)
    proc = subprocess.run([sys.executable, "-c", HOG_SOAK, str(tiny_checkpoint)], cwd=ROOT, capture_output=True,
                          text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert res["dds_profile"].endswith("config/fastdds_large_frames.xml")
    _check_inputs(res)
    # the model's Python holds the GIL 250 ms per tick; with CPython's default 5 ms switch interval
    # the median of the node's p95 reports was 62-90 ms here, with its 0.5 ms 17-23 ms (the median:
    # a moment of load from elsewhere must not decide it)
    delays = {cam: fig["input_delay_p95_ms"] for cam, fig in res["inputs"].items()}
    assert all(d is not None and d < MAX_INPUT_DELAY_MS for d in delays.values()), delays


def test_soak_with_compressed_cameras_reports_ok_share_inputs_and_memory(tiny_checkpoint, tmp_path):
    pytest.importorskip("rclpy")
    out = tmp_path / "soak.json"
    cmd = [sys.executable, "-m", "vla_ros.cli", "soak", "--duration", "6", "--warmup", "2", "--checkpoint",
           str(tiny_checkpoint), "--image-transport", "compressed", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert (res["width"], res["height"], res["image_transport"]) == (640, 480, "compressed")
    assert res["publish_rate_hz"] > 15  # 30 asked; the machine may be shared
    _check_inputs(res)
    assert res["statuses"].get("OK", 0) == res["ok"]
    rss = res["rss_mb"]
    assert rss["start"] > 50 and rss["max"] >= rss["end"] and rss["growth_per_min"] is not None
    assert rss["growth_per_min_steady"] is not None and 2 < rss["steady_from_s"] < 4
    assert all(fig["superseded"] >= 0 for fig in res["inputs"].values())
    assert res["bar"]["met"] == (res["ok_share"] >= 0.95 and rss["growth_per_min_steady"] <= 1.0), res["bar"]
    for words in ("OK share", "resident memory", "steady state", "lost in transport", "superseded",
                  res["bar"]["line"]):
        assert words in proc.stdout


def test_steady_state_growth_leaves_the_warm_up_out_and_decides_the_bar():
    t = np.arange(0.0, 600.0, 1.0)
    settling = 300 + 25 * (1 - np.exp(-t / 60))  # the allocator settles: +25 MB early, flat later
    rss = memory_figures(list(zip(t, settling)))
    assert rss["growth_per_min"] > 1.0 and abs(rss["growth_per_min_steady"]) < 0.1 and rss["steady_from_s"] == 300
    assert bar(0.999, rss)["met"] and bar(0.999, rss)["line"].startswith("bar: met (OK share 0.9990 >= 0.95")
    leak = memory_figures(list(zip(t, 300 + 2 * t / 60)))  # 2 MB/min throughout
    assert leak["growth_per_min_steady"] == pytest.approx(2.0)
    assert bar(0.999, leak)["line"] == "bar: NOT met (steady-state growth 2.0 MB/min > 1)"
    assert bar(0.94996, rss)["line"] == "bar: NOT met (OK share 0.9500 < 0.95)"  # not rounded up to the bar
    assert not bar(None, None)["met"] and memory_figures([]) is None
