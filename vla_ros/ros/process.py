"""How the package's nodes run as processes: the executor spins in a thread of its own, a signal only
asks the main thread to stop, and the main thread alone tears down, in order.

Why not rclpy's signal handlers: on SIGINT their C++ thread triggers every executor's guard
condition and shuts the contexts down while the main thread, woken by the same signal, is already
tearing the executor down. The executor's guard condition could be freed while that thread
triggered it (SIGSEGV in ``rcl_trigger_guard_condition``), or the process aborted at exit
("terminate called without an active exception"): about one SIGINT in ten in test_lifecycle.
Python's signal handlers run in the main thread between bytecodes, so nothing races.
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

InvalidHandle = _rclpy.InvalidHandle  # a handle used after its destruction was requested

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.2  # how often the main thread looks at the spinner while it waits for a signal


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """SIGINT and SIGTERM set the returned event from now on (the handlers stay until the process
    ends: a late second signal is harmless)."""
    stop = stop or threading.Event()
    for s in STOP_SIGNALS:
        signal.signal(s, lambda *_: stop.set())
    return stop


def spin(executor, failures: list[BaseException] | None = None) -> None:
    """Spin until the executor or the context shuts down; an error that ends spinning goes to
    ``failures`` (re-raised when there is no list).

    A handle destroyed from a callback thread while the executor thread adds it to its wait set (a
    lifecycle deactivate destroys subscriptions) makes rclpy (Jazzy, Kilted) raise InvalidHandle
    there instead of skipping it: the next wait set is built without it, so spinning goes on. A
    context shut down while the wait set is built raises RCLError: that is a shutdown too.
    """
    while True:
        try:
            executor.spin()
            return
        except InvalidHandle:
            if not executor.context.ok():
                return
        except (KeyboardInterrupt, ExternalShutdownException):
            return
        except Exception as exc:  # noqa: BLE001
            if executor.context.ok():
                if failures is None:
                    raise
                failures.append(exc)
            return


class Spinner:
    """``executor.spin()`` in a daemon thread; :meth:`close` shuts the executor down and joins it."""

    def __init__(self, executor, name: str = "executor") -> None:
        self.executor = executor
        self.failures: list[BaseException] = []
        self.thread = threading.Thread(target=spin, args=(executor, self.failures), name=name, daemon=True)
        self.thread.start()

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set, spinning ends or the context shuts down; raise the error
        that ended spinning, if one did."""
        while not stop.is_set() and self.thread.is_alive() and self.executor.context.ok():
            stop.wait(POLL_S)
        if self.failures:
            raise self.failures[0]

    def close(self, timeout_s: float = 5.0) -> None:
        """Shut the executor down (running callbacks finish first), then join the thread: exiting
        with the thread still inside rclpy aborted the process."""
        self.executor.shutdown(timeout_sec=timeout_s)
        self.thread.join(2 * timeout_s)


@dataclass
class NodeProcess:
    """What a node's ``main()`` holds: its node and spinner, closed by :func:`run_node_main`."""

    node: Any = None
    spinner: Spinner | None = None


def run_node_main(args: list[str] | None, body: Callable[[NodeProcess], int | None],
                  close_node: Callable[[Any], None], spinner_timeout_s: float = 5.0,
                  quiet: tuple[type[BaseException], ...] = (ExternalShutdownException,)) -> None:
    """A node process's ``main()``: rclpy without its signal handlers (see above), ``body`` -> exit
    status (it fills the NodeProcess); then, whatever happened, the spinner closed, ``close_node(node)``
    and rclpy shut down, and ``sys.exit`` with the status when it is not 0. ``quiet``: exceptions
    that end the process with status 0."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    proc = NodeProcess()
    code = 0
    try:
        code = body(proc) or 0
    except quiet:
        pass
    finally:
        if proc.spinner is not None:
            proc.spinner.close(timeout_s=spinner_timeout_s)
        if proc.node is not None:
            close_node(proc.node)
        rclpy.try_shutdown()
    if code:
        sys.exit(code)


def config_error(name: str, exc: BaseException) -> int:
    """One line on stderr for an invalid parameter (or checkpoint); the exit status 2."""
    print(f"{name}: error: {exc}", file=sys.stderr)
    return 2
