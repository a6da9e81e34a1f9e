"""vla_node whose model also holds the GIL in pure Python for VLA_TEST_GIL_HOG_S (default 0.25 s) per
prediction, like a slow model's Python between torch ops: ``test_soak`` measures how long camera
frames wait for the callbacks meanwhile. Run as ``python -m gil_hog_node --ros-args ...`` with test/
on PYTHONPATH. VLA_TEST_GIL_SWITCH_S replaces the node's GIL switch interval (to measure without it).
"""

import os
import time

import vla_ros.ros.vla_node as vla_node
from vla_ros.runtime.model import make_predictor

HOG_S = float(os.environ.get("VLA_TEST_GIL_HOG_S", "0.25"))


def _hogging_predictor(api):
    predict = make_predictor(api)

    def hog_then_predict(*args):
        end = time.perf_counter() + HOG_S
        while time.perf_counter() < end:  # bytecode only: the GIL is released only when CPython forces it
            pass
        return predict(*args)

    return hog_then_predict


vla_node.make_predictor = _hogging_predictor
if os.environ.get("VLA_TEST_GIL_SWITCH_S"):
    vla_node.GIL_SWITCH_INTERVAL_S = float(os.environ["VLA_TEST_GIL_SWITCH_S"])

if __name__ == "__main__":
    vla_node.main()
