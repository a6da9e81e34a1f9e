"""Offline replay: NodeCore runs in this process with the node's model loader, one tick per
observation at the observation's bag time.  No DDS; deterministic."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable

from vla_ros.bag import schema
from vla_ros.bag.batches import feed, iter_batches, quiet_logger
from vla_ros.bag.io import BagReader
from vla_ros.bag.session import Session
from vla_ros.bag.topics import Roles

__all__ = ["replay_offline"]


def replay_offline(reader: BagReader, roles: Roles, cfg: Any, session: Session, *, command_text: str | None = None,
                   verbose: bool = False, model: tuple[Any, Any] | None = None,
                   progress: Callable[[int], None] | None = None) -> None:
    """Every observation of the bag through NodeCore + the node's model, in this process.

    ``model``: an already loaded ``(api, ModelSpec)`` (else :func:`vla_ros.runtime.model.load_model`
    loads it as the node would, without the warm-up, which changes no output).
    Raises BagDamagedError after processing everything before the damage (``session`` holds it).
    """
    from vla_ros.runtime.model import load_model

    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        api, spec = model or load_model(dataclasses.replace(cfg, warmup=False))
        if hasattr(api, "reset"):
            api.reset()
        _run_offline(reader, roles, cfg, session, api, spec, command_text, verbose, progress)
    finally:
        if threads is not None:  # load_model applies cpu_threads process-wide: undo it for library callers
            sys.modules["torch"].set_num_threads(threads)


def _run_offline(reader, roles, cfg, session, api, spec, command_text, verbose, progress) -> None:
    from vla_ros.runtime.core import NodeCore
    from vla_ros.runtime.model import make_predictor

    predict = make_predictor(api)
    core = NodeCore(cfg, spec, quiet_logger("vla bag offline", verbose))
    for batch in iter_batches(reader, roles, command_text):
        t0 = time.perf_counter()
        session.add_inputs(batch)
        feed(core, batch)
        if not batch.has_images:
            continue
        session.observations += 1
        res = core.tick(batch.log_ns, predict)
        if res is None:
            continue
        msg = schema.trajectory_msg(res.stamp_ns, res.trajectory, res.dt, res.command, int(res.status), res.reason,
                                    res.latency_s, cfg.frame_id)
        session.add_answer(schema.serialize(msg, schema.TRAJECTORY), batch.log_ns, time.perf_counter() - t0)
        if progress:
            progress(session.observations)
