"""NodeConfig: every setting of ``vla_node``, the single source of truth.

The ROS parameters of the node, ``config/vla.yaml`` and the table in ``docs/node.md`` are views
of this dataclass: the node declares one parameter per field (its ``help`` text becomes the
ParameterDescriptor description), ``read_params_file`` reads a standard ROS params file into it,
and ``parameter_table`` renders the documentation table.  Validation lives in ``__post_init__``
and raises :class:`~vla_ros.config.ConfigError` naming the parameter and the fix.

No rclpy here (see ``vla_ros.runtime``).
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import yaml

from vla_ros.config import GUIDANCE_MODES, NOISE_MODES, ConfigError, _require, from_dict

__all__ = [
    "NODE_NAME",
    "NodeConfig",
    "ROS_STANDARD_PARAMETERS",
    "node_config_from_parameters",
    "read_params_file",
    "node_key_matches",
    "parameter_table",
    "defaults_table",
    "parameter_type_name",
]

NODE_NAME = "vla_node"

# Parameters every ROS node may be given that are not NodeConfig fields.
ROS_STANDARD_PARAMETERS = ("use_sim_time", "start_type_description_service")
_ROS_STANDARD_PREFIXES = ("qos_overrides.",)


def _opt(default: Any, help: str) -> Any:  # noqa: A002 - 'help' reads best here
    return field(default=default, metadata={"help": help})


@dataclass
class NodeConfig:
    """Settings of ``vla_node`` (ROS parameters; ``config/vla.yaml``)."""

    # -- lifecycle ----------------------------------------------------------------------
    autostart: bool = _opt(True, "Configure (load the model) and activate (subscribe, tick, publish) at "
                                 "start-up. false: the node starts unconfigured and waits for lifecycle "
                                 "transitions (ros2 lifecycle set <node> configure, then activate; or a "
                                 "lifecycle manager). Either way deactivate stops driving and keeps the model.")
    # -- model --------------------------------------------------------------------------
    checkpoint: str = _opt("", "Model checkpoint (.pth). '' = the packaged default "
                               "(share/vla_ros/checkpoints/default.pth).")
    device: str = _opt("cpu", "Torch device: 'cpu', 'cuda' or 'cuda:N'.")
    fast: bool = _opt(True, "Fast inference path (cached frame/text encodings, DDIM as fixed ops, "
                            "CUDA graph on GPU). false = plain reference path.")
    warmup: bool = _opt(True, "Run a few predictions at start-up so the first real tick is as fast "
                              "as the rest.")
    num_inference_steps: int = _opt(0, "DDIM denoising steps; 0 = the checkpoint's default. Must not "
                                       "exceed the checkpoint's training timesteps.")
    num_samples: int = _opt(1, "Diffusion samples per tick, averaged (circular mean for the heading). "
                               "More than 1 gives steadier trajectories for closed-loop control at "
                               "a larger diffusion batch; 1 = one sample (fastest).")
    noise: Literal["fixed", "varied", "zero"] = _opt(
        "fixed", "Initial diffusion noise: 'fixed' draws it from one seed every tick (the same frames "
                 "always give the same trajectory); 'varied' draws anew every tick from a seeded "
                 "sequence, so successive replans do not repeat one draw's bias (drift, creep); "
                 "'zero' starts from x_T = 0 (deterministic, no draw's bias).")
    guidance: Literal["none", "target", "scene"] = _opt(
        "none", "Sampling-time guidance: 'target' turns the trajectory of a command that names a target "
               "toward the target the checkpoint's locator finds on the top camera (at most 45 deg per "
               "plan) and ends it 0.5 m short of it; needs a checkpoint trained with the target locator. "
               "'scene' does the same but aims beside the target where an obstacle of the checkpoint's "
               "scene map is in the way, turns lane-following trajectories to stay on the mapped road, and "
               "cuts every moving trajectory before a mapped obstacle; needs the locator and the scene "
               "map (checkpoints/scene.pth). 'none' = the model's trajectories as sampled.")
    guidance_settings: str = _opt(
        "", "Overrides of the guidance's settings (with guidance 'target' or 'scene'), comma-separated "
            "name=value, e.g. 'max_turn=0.6,stop_distance=0.4'; names: max_turn (rad), stop_distance, "
            "robot_radius, safety_margin, self_radius (m); '' = the defaults (vla_ros/guidance/settings.py).")
    cpu_threads: int = _opt(0, "Torch intra-op CPU threads; 0 = torch's default (one per core). Lower it "
                               "when the node shares the CPU with other nodes.")
    # -- timing -------------------------------------------------------------------------
    rate_hz: float = _opt(3.0, "Inference ticks per second. A tick that finds the model still busy "
                               "is dropped (counted in diagnostics), never queued.")
    history_spacing: float = _opt(0.2, "Seconds between the frames of a camera's history: the frames "
                                       "closest to newest, newest - spacing, newest - 2 spacing, ...")
    history_tolerance: float = _opt(0.1, "How far (s) a history frame may be from its target time (strictly less); "
                                         "at most history_spacing / 2.")
    max_age: float = _opt(0.5, "Stop when a camera's newest frame is older than this (s, node clock; "
                               "sim time with use_sim_time).")
    max_skew: float = _opt(0.1, "Stop when paired ego and top frames are further apart than this (s).")
    image_transport: Literal["raw", "compressed"] = _opt(
        "raw", "Camera input: 'raw' -- sensor_msgs/Image on <camera>/image_raw; 'compressed' -- "
               "sensor_msgs/CompressedImage (JPEG or PNG) on <camera>/image_raw/compressed (image_transport's "
               "topic), decoded with cv_bridge when it imports, else with Pillow. Either way frames are "
               "centre-cropped to a square and downscaled to the model's image size on arrival.")
    # -- odometry -----------------------------------------------------------------------
    use_odometry: bool = _opt(True, "Give the model the robot's measured velocity (v, omega) from the odom "
                                    "topic (nav_msgs/Odometry, twist in the robot frame). Without a usable "
                                    "message the model is told the velocity is unknown (it was trained for "
                                    "that too); a checkpoint without the odometry input ignores it.")
    odometry_tolerance: float = _opt(0.2, "Use the odom message stamped closest to the newest camera frame if it is "
                                          "within this many seconds of it; otherwise the velocity is unknown.")
    # -- scan guard ---------------------------------------------------------------------
    scan_guard: bool = _opt(False, "Cut every trajectory before the robot's disc (robot_radius) would come within "
                                   "scan_margin of a point of the newest sensor_msgs/LaserScan on scan (or, when "
                                   "it is already closer, any closer): the model's plan never drives into what "
                                   "the laser sees (vla_ros/runtime/scan_guard.py). No scan, or one older than "
                                   "scan_max_age -> STATUS_STOP_NO_SCAN. Needs a planar laser; false = no "
                                   "scan subscription.")
    scan_max_age: float = _opt(0.3, "Stop when the newest laser scan is older than this (s, node clock).")
    scan_margin: float = _opt(0.1, "Clearance (m) the scan guard keeps between the robot's disc and every scan "
                                   "point; it absorbs tracking error and the motion since the scan.")
    robot_radius: float = _opt(0.25, "Radius (m) of a disc around the robot's base frame origin that holds its "
                                     "footprint (the scan guard's robot).")
    scan_x: float = _opt(0.0, "The laser's x (m) in the robot's base frame (forward).")
    scan_y: float = _opt(0.0, "The laser's y (m) in the robot's base frame (left).")
    scan_yaw: float = _opt(0.0, "The laser's yaw (rad) in the robot's base frame (counter-clockwise).")
    # -- input limits -------------------------------------------------------------------
    max_command_bytes: int = _opt(2000, "Longer commands (UTF-8 bytes) are rejected and the robot stops.")
    untrained_colour: Literal["stop", "warn"] = _opt(
        "stop", "A command naming a colour the model was not trained on and cannot read as a trained one "
                "('go to the orange cone' for a model that knows red, green and blue): 'stop' refuses it "
                "(STATUS_STOP_BAD_INPUT; the reason names the colour and the ones the model knows); 'warn' "
                "logs that and drives with what the model reads the command as.")
    # -- output -------------------------------------------------------------------------
    frame_id: str = _opt("base_link", "frame_id of the published trajectory and path with output_frame "
                                      "'base' (the robot frame the model predicts in).")
    output_frame: Literal["base", "odom"] = _opt(
        "base", "Frame of the published trajectory and path: 'base' -- the robot frame at header.stamp "
                "(frame_id); 'odom' -- the odometry frame: every waypoint transformed with the odom pose "
                "interpolated at header.stamp (the observation), frame_id = the odom message's frame_id. "
                "No odom pose within odometry_tolerance of the stamp -> STATUS_STOP_NO_ODOMETRY. Subscribes "
                "odom even without use_odometry.")
    on_stop: Literal["publish_stop", "silent"] = _opt(
        "publish_stop", "When inputs are not usable: 'publish_stop' publishes a trajectory of identity "
                        "poses with the reason in status; 'silent' publishes nothing.")

    def _check_guidance_settings(self) -> None:
        if not self.guidance_settings:
            return
        from vla_ros.errors import InputError
        from vla_ros.guidance.settings import parse_settings

        try:
            parse_settings(self.guidance_settings, self.guidance)
        except InputError as exc:
            raise ConfigError(f"guidance_settings={self.guidance_settings!r}: {exc}") from None

    def __post_init__(self) -> None:
        _require(bool(re.fullmatch(r"cpu|cuda(:\d+)?", self.device)),
                 f"device={self.device!r}: use 'cpu', 'cuda' or 'cuda:N' (e.g. cuda:0)")
        _require(self.num_inference_steps >= 0,
                 f"num_inference_steps={self.num_inference_steps}: must be >= 0 (0 = checkpoint default)")
        _require(1 <= self.num_samples <= 64,
                 f"num_samples={self.num_samples}: must be within [1, 64] (1 = one sample, the default)")
        _require(self.noise in NOISE_MODES, f"noise={self.noise!r}: choose one of {list(NOISE_MODES)}")
        _require(self.guidance in GUIDANCE_MODES, f"guidance={self.guidance!r}: choose one of {list(GUIDANCE_MODES)}")
        self._check_guidance_settings()
        _require(0.0 < self.rate_hz <= 100.0,
                 f"rate_hz={self.rate_hz}: must be in (0, 100] ticks per second (default 3)")
        _require(0.0 < self.odometry_tolerance <= 5.0,
                 f"odometry_tolerance={self.odometry_tolerance}: must be in (0, 5] seconds (default 0.2)")
        _require(self.history_spacing > 0.0,
                 f"history_spacing={self.history_spacing}: must be > 0 seconds (default 0.2)")
        _require(0.0 < self.history_tolerance <= self.history_spacing / 2,
                 f"history_tolerance={self.history_tolerance}: must be > 0 and at most history_spacing/2 "
                 f"= {self.history_spacing / 2:g} s, so that each history frame is picked once")
        _require(self.max_age > 0.0, f"max_age={self.max_age}: must be > 0 seconds (default 0.5)")
        _require(self.max_skew >= 0.0, f"max_skew={self.max_skew}: must be >= 0 seconds (default 0.1)")
        _require(0.0 < self.scan_max_age <= 5.0, f"scan_max_age={self.scan_max_age}: must be in (0, 5] seconds (default 0.3)")
        _require(0.0 <= self.scan_margin <= 2.0, f"scan_margin={self.scan_margin}: must be within [0, 2] m (default 0.1)")
        _require(0.05 <= self.robot_radius <= 5.0, f"robot_radius={self.robot_radius}: must be within [0.05, 5] m "
                                                    "(default 0.25)")
        _require(all(math.isfinite(v) for v in (self.scan_x, self.scan_y, self.scan_yaw)),
                 f"scan_x, scan_y, scan_yaw = {self.scan_x}, {self.scan_y}, {self.scan_yaw}: must be finite")
        _require(self.max_command_bytes >= 1,
                 f"max_command_bytes={self.max_command_bytes}: must be >= 1 (default 2000)")
        _require(self.untrained_colour in ("stop", "warn"),
                 f"untrained_colour={self.untrained_colour!r}: choose 'stop' or 'warn'")
        _require(self.image_transport in ("raw", "compressed"),
                 f"image_transport={self.image_transport!r}: choose 'raw' or 'compressed'")
        _require(self.output_frame in ("base", "odom"), f"output_frame={self.output_frame!r}: choose 'base' or 'odom'")
        _require(bool(self.frame_id.strip()) and self.frame_id == self.frame_id.strip(),
                 f"frame_id={self.frame_id!r}: must be a frame name without spaces, e.g. base_link")

    @property
    def period(self) -> float:
        """Seconds between inference ticks."""
        return 1.0 / self.rate_hz


def parameter_type_name(name: str) -> str:
    """'string' | 'bool' | 'int' | 'double' for a NodeConfig field (the ROS parameter type)."""
    tp = typing.get_type_hints(NodeConfig)[name]
    if typing.get_origin(tp) is Literal:
        tp = type(typing.get_args(tp)[0])
    return {str: "string", bool: "bool", int: "int", float: "double"}[tp]


def node_config_from_parameters(values: Mapping[str, Any], where: str = NODE_NAME) -> NodeConfig:
    """NodeConfig from ROS parameter values; standard ROS parameters are ignored, others rejected."""
    values = {k: v for k, v in values.items()
              if k not in ROS_STANDARD_PARAMETERS and not k.startswith(_ROS_STANDARD_PREFIXES)}
    return from_dict(NodeConfig, values, where=where)


# --------------------------------------------------------------------------------------
# ROS params files
# --------------------------------------------------------------------------------------


def _match_tokens(pattern: list[str], name: list[str]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_tokens(rest, name[i:]) for i in range(len(name) + 1))
    if not name:
        return False
    return (head == "*" or head == name[0]) and _match_tokens(rest, name[1:])


def node_key_matches(key: str, node_fqn: str) -> bool:
    """Does a params-file top-level key apply to the node ``node_fqn`` ('/ns/vla_node')?

    rcl's rules: a key without a leading '/' is taken from the root ('vla_node' matches only
    '/vla_node', not '/robot1/vla_node'); '*' matches one name token, '**' any number.
    """
    key = key if key.startswith("/") else "/" + key
    return _match_tokens([t for t in key.split("/") if t], [t for t in node_fqn.split("/") if t])


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def read_params_file(path: str | Path, node_fqn: str = "/" + NODE_NAME) -> dict[str, Any]:
    """The ``ros__parameters`` that a ROS params file gives the node ``node_fqn``, flattened.

    Raises ConfigError when the file is missing or malformed, or has no section that applies
    to the node (a frequent surprise: ``vla_node:`` does not apply once the node runs in a
    namespace; ``/**/vla_node:`` does).
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"params file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping) or not doc:
        raise ConfigError(f"{path}: expected '{NODE_NAME}: ros__parameters: {{...}}' at the top level")
    merged: dict[str, Any] = {}
    matched = []
    for key, section in doc.items():
        if not isinstance(section, Mapping) or "ros__parameters" not in section:
            raise ConfigError(f"{path}: section '{key}' has no 'ros__parameters:' mapping "
                              f"(layout: {NODE_NAME}: ros__parameters: {{rate_hz: 3.0, ...}})")
        if node_key_matches(str(key), node_fqn):
            matched.append(str(key))
            _flatten("", section["ros__parameters"] or {}, merged)
    if not matched:
        hint = (f"; a plain '{NODE_NAME}:' key applies only to a node without namespace, use "
                f"'/**/{NODE_NAME}:' to match any namespace") if node_fqn.count("/") > 1 else ""
        raise ConfigError(f"{path}: no section applies to node {node_fqn} (keys: {sorted(map(str, doc))}){hint}")
    return merged


# --------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------


def _shown(default: Any, quote_strings: bool) -> str:
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, str) and quote_strings:
        return f"`{default!r}`"
    return f"`{default}`" if default != "" else "`''`"


def defaults_table(cls: type, type_name: Callable[[str], str] | None = None, quote_strings: bool = True) -> str:
    """Markdown table (parameter, [type,] default, description) of a settings dataclass whose fields
    carry ``help`` metadata; docs hold copies and tests compare them.

    ``type_name``: field name -> the type column (no column when None).  ``quote_strings``: show
    string defaults as Python literals (``'odom'``) rather than bare (``odom``; ``''`` when empty).
    """
    head = ["parameter"] + (["type"] if type_name else []) + ["default", "description"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in fields(cls):
        assert f.default is not MISSING, f"{cls.__name__}.{f.name} has no default"
        cells = [f"`{f.name}`"] + ([type_name(f.name)] if type_name else []) + [
            _shown(f.default, quote_strings), f.metadata["help"]]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parameter_table() -> str:
    """Markdown table of the node's parameters (name, type, default, description).

    docs/node.md holds a copy (a test keeps them equal): ``python -m vla_ros.runtime.config`` prints it.
    """
    return defaults_table(NodeConfig, type_name=parameter_type_name, quote_strings=False)


if __name__ == "__main__":
    print(parameter_table())
