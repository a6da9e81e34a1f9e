"""Inference: :class:`VLAInferenceAPI` (load a checkpoint, predict trajectories) and ``vla bench``.

* :mod:`~vla_ros.inference.api`: the API, its caches and the fast path's wiring;
* :mod:`~vla_ros.inference.checks`: input checks;
* :mod:`~vla_ros.inference.bench`: the latency benchmark (``vla bench``).

The samplers it runs live in :mod:`vla_ros.model.fast`. ``from vla_ros.inference import
VLAInferenceAPI`` is the public entry point; ``DDIMSampler`` and ``InputError`` stay importable
from here too.
"""

from vla_ros.errors import InputError
from vla_ros.inference.api import Prediction, VLAInferenceAPI
from vla_ros.model.fast.ddim import DDIMSampler

__all__ = ["DDIMSampler", "InputError", "Prediction", "VLAInferenceAPI"]
