"""rclpy in the test process: a node on a context of its own, spun on a background thread.

The node, follower and lifecycle tests each drive the node under test from such a client (cameras,
clocks, planners); they add their publishers and worker threads to it.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor


def call_service(client, request, timeout: float = 120.0, resend_every: float | None = None):
    """The response of service ``client`` to ``request`` (the caller's node spins elsewhere).

    ``resend_every`` (seconds, for idempotent requests only): send the request again when no answer
    came by then. Fast DDS drops a response when the server has not yet matched the client's reply
    reader 100 ms after the request (ros2/rmw_fastrtps#467), which a loaded machine can make last
    longer than discovery of the request topic that ``wait_for_service`` checks; the lost call then
    never completes. A state change is not idempotent, so its caller waits instead.
    """
    assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} not available"
    deadline = time.monotonic() + timeout
    while True:
        future = client.call_async(request)
        resend_at = time.monotonic() + (resend_every or timeout)
        while not future.done() and time.monotonic() < min(deadline, resend_at):
            time.sleep(0.01)
        if future.done():
            return future.result()
        client.remove_pending_request(future)
        assert time.monotonic() < deadline, f"{client.srv_name}: no answer within {timeout} s"


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
