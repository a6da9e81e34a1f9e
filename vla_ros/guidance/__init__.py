"""Guidance: optional post-processing of the sampled trajectories by hand-written geometry.

The packaged model needs none (``guidance: none``, the default everywhere). ``"target"`` turns the
trajectory of a command that names a target toward the cone the model's target locator found;
``"scene"`` also uses the model's scene map to aim past mapped obstacles, keep "follow the lane"
on the mapped road and cut every plan before a mapped obstacle (:mod:`.steer` has the geometry).

One object does it all: :func:`.build.build_guidance` checks that the checkpoint has what the mode steers
by and returns a :class:`Guidance` (or None for ``"none"``), which :class:`~vla_ros.inference.VLAInferenceAPI`
applies to every sampled trajectory. Its settings (:data:`GUIDANCE_SETTINGS`) come from the
checkpoint's world and may be overridden from the API (``guidance_settings``), the node
(parameter ``guidance_settings``) and ``vla sim`` / ``vla demo`` (``--guidance-settings``), all
through :func:`.settings.parse_settings`. Nothing outside this folder steers a trajectory.
"""

from .settings import GUIDANCE_SETTINGS, parse_settings

__all__ = ["GUIDANCE_SETTINGS", "parse_settings"]
