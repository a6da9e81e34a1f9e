"""rclpy in the test process: a node on a context of its own, spun on a background thread.

The node, follower and lifecycle tests each drive the node under test from such a client (cameras,
clocks, planners); they add their publishers and worker threads to it.
"""

from __future__ import annotations

import threading
from typing import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor


class SpinningNode:
    def __init__(self, name: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.running = True
        self.threads: list[threading.Thread] = []

    def start(self, *workers: Callable[[], None]) -> None:
        """Spin the node, and run each of ``workers`` (loops that end when ``running`` drops), on daemon threads."""
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._spin, *workers)]
        for t in self.threads:
            t.start()

    def _spin(self) -> None:
        while self.running and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - the context shut down under us
                break

    def close(self) -> None:
        self.running = False
        for t in self.threads:
            t.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
