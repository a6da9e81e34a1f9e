"""What the vla_ros launch starts, as plain data: one description for two launchers.

``launch/vla.launch.py`` (``ros2 launch vla_ros vla.launch.py``, needs ROS ``launch``/``launch_ros``)
and ``vla launch`` (no ROS launch needed: subprocesses with ``--ros-args``) both turn the list of
:class:`NodeDescription` returned by :func:`describe` into processes, so the nodes, parameters and
remaps they start are the same by construction.  This module imports neither ``launch`` nor rclpy.

    describe(params_file=None, checkpoint=None, device=None, namespace="", rate_hz=None,
             use_sim_time=None, remappings=(), follower=False) -> [NodeDescription]
    ros_arguments(desc) -> ["--ros-args", "-r", "__node:=vla_node", "--params-file", F, "-p", "k:=v", ...]
    process_command(desc) -> [python, "-m", "vla_ros.ros.vla_node", *ros_arguments(desc)]
"""

from __future__ import annotations

import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from vla_ros import paths
from vla_ros.config import ConfigError, _coerce, from_dict
from vla_ros.control.follower import FOLLOWER_NODE_NAME, FollowerConfig
from vla_ros.runtime.config import (NODE_NAME, NodeConfig, _flatten, node_config_from_parameters, node_key_matches,
                                    read_params_file)

__all__ = [
    "LAUNCH_ARGUMENTS",
    "NodeDescription",
    "default_params_file",
    "describe",
    "describe_from_launch_arguments",
    "parse_remap",
    "ros_arguments",
    "process_command",
    "full_name",
]

# Launch arguments shared by both launchers: name -> (default as a string, description).
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "params_file": ("", "ROS params file for vla_node ('' = share/vla_ros/config/vla.yaml)"),
    "checkpoint": ("", "model checkpoint; '' = the params file's value"),
    "device": ("", "torch device (cpu, cuda, cuda:N); '' = the params file's value"),
    "namespace": ("", "namespace of the node and its topics, e.g. robot1"),
    "rate_hz": ("", "inference ticks per second; '' = the params file's value"),
    "use_sim_time": ("false", "use the /clock topic (simulation, bag replay with --clock)"),
    "scan_guard": ("", "true: cut every trajectory before it drives into what the laser on scan sees "
                       "(sensor_msgs/LaserScan; remap scan to the robot's laser); '' = the params file's value"),
    "remappings": ("", "extra topic remaps 'from:=to', separated by spaces or commas, e.g. "
                       "'ego/image_raw:=/cam_front/image_raw top/image_raw:=/cam_top/image_raw'"),
    "follower": ("false", "also start trajectory_follower: cmd_vel from the trajectories and odom (its "
                          "parameters: a '/**/trajectory_follower:' section of the params file)"),
}


@dataclass
class NodeDescription:
    """One node to start: what launch_ros.actions.Node takes, plus the module ``vla launch`` runs."""

    package: str
    executable: str
    name: str
    module: str  # python -m <module> runs the same entry point as the executable
    namespace: str = ""  # '' or absolute ('/robot1')
    params_files: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)  # overrides, applied after the files
    remappings: list[tuple[str, str]] = field(default_factory=list)


def default_params_file() -> Path:
    return paths.config_dir() / "vla.yaml"


def full_name(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if namespace else f"/{name}"


def _normalize_namespace(namespace: str | None) -> str:
    ns = (namespace or "").strip().strip("/")
    if not ns:
        return ""
    if any(not part or not (part[0].isalpha() or part[0] == "_") or not part.replace("_", "").isalnum()
           for part in ns.split("/")):
        raise ConfigError(f"namespace {namespace!r}: use names of letters, digits and '_' (not starting with "
                          "a digit), separated by '/', e.g. robot1")
    return "/" + ns


def parse_remap(text: str) -> tuple[str, str]:
    """'from:=to' -> ('from', 'to')."""
    src, sep, dst = text.partition(":=")
    if not sep or not src.strip() or not dst.strip():
        raise ConfigError(f"remap {text!r}: write from:=to, e.g. ego/image_raw:=/camera/front/image_raw")
    return src.strip(), dst.strip()


def _check_follower_section(path: Path, fqn: str) -> None:
    """Validate what the params file gives trajectory_follower (it may give nothing: the defaults)."""
    doc = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = {}
    for key, section in doc.items():
        if node_key_matches(str(key), fqn):
            _flatten("", section.get("ros__parameters") or {}, values)
    values.pop("use_sim_time", None)
    from_dict(FollowerConfig, values, where=f"{path.name}: {fqn}")


def describe(params_file: str | Path | None = None, checkpoint: str | None = None, device: str | None = None,
             namespace: str | None = "", rate_hz: float | None = None, use_sim_time: bool | None = None,
             remappings: Iterable[str | tuple[str, str]] = (), follower: bool = False,
             scan_guard: bool | None = None) -> list[NodeDescription]:
    """The nodes of the vla_ros launch: vla_node, and with ``follower`` trajectory_follower.
    ``None`` leaves a setting to the params file.

    Checks what it can before anything starts (raises ConfigError): the params file exists, has a
    section for the node in this namespace, and every value there and in the overrides is valid.
    """
    ns = _normalize_namespace(namespace)
    path = Path(params_file) if params_file else default_params_file()
    overrides: dict[str, Any] = {}
    if checkpoint is not None:
        overrides["checkpoint"] = str(checkpoint)
    if device is not None:
        overrides["device"] = str(device)
    if rate_hz is not None:
        overrides["rate_hz"] = float(rate_hz)
    if use_sim_time is not None:
        overrides["use_sim_time"] = bool(use_sim_time)
    if scan_guard is not None:
        overrides["scan_guard"] = bool(scan_guard)
    values = read_params_file(path, full_name(ns, NODE_NAME))
    node_config_from_parameters({**values, **overrides}, where=f"{path.name}+overrides")
    remaps = [parse_remap(r) if isinstance(r, str) else (str(r[0]), str(r[1])) for r in remappings]
    nodes = [NodeDescription(package="vla_ros", executable="vla_node", name=NODE_NAME, module="vla_ros.ros.vla_node",
                             namespace=ns, params_files=[str(path)], parameters=overrides, remappings=remaps)]
    if follower:
        _check_follower_section(path, full_name(ns, FOLLOWER_NODE_NAME))
        sim_time = {} if use_sim_time is None else {"use_sim_time": bool(use_sim_time)}
        nodes.append(NodeDescription(package="vla_ros", executable="trajectory_follower", name=FOLLOWER_NODE_NAME,
                                     module="vla_ros.ros.trajectory_follower", namespace=ns,
                                     params_files=[str(path)], parameters=sim_time, remappings=list(remaps)))
    return nodes


def _parse_value(name: str, text: str) -> Any:
    """A launch argument string -> the NodeConfig field's type (or bool for use_sim_time)."""
    tp = bool if name in ("use_sim_time", "follower") else typing.get_type_hints(NodeConfig)[name]
    value = text if tp is str else yaml.safe_load(text)
    return _coerce(value, tp, f"launch argument {name}")


def describe_from_launch_arguments(args: Mapping[str, str]) -> list[NodeDescription]:
    """:func:`describe` from the string values of LAUNCH_ARGUMENTS ('' = not given)."""
    unknown = sorted(set(args) - set(LAUNCH_ARGUMENTS))
    if unknown:
        raise ConfigError(f"unknown launch argument(s) {unknown}; valid: {sorted(LAUNCH_ARGUMENTS)}")
    get = lambda k: str(args.get(k, LAUNCH_ARGUMENTS[k][0])).strip()  # noqa: E731
    remaps = [r for r in get("remappings").replace(",", " ").split() if r]
    return describe(
        params_file=get("params_file") or None,
        checkpoint=get("checkpoint") or None,
        device=get("device") or None,
        namespace=get("namespace"),
        rate_hz=_parse_value("rate_hz", get("rate_hz")) if get("rate_hz") else None,
        use_sim_time=_parse_value("use_sim_time", get("use_sim_time")) if get("use_sim_time") else None,
        remappings=remaps,
        follower=_parse_value("follower", get("follower")) if get("follower") else False,
        scan_guard=_parse_value("scan_guard", get("scan_guard")) if get("scan_guard") else None,
    )


def _param_text(value: Any) -> str:
    """A value for ``-p name:=value``, which ROS parses as YAML: strings that YAML would read as
    another type ('123', 'true', '') are quoted."""
    if isinstance(value, str):
        return value if value and yaml.safe_load(value) == value and "\n" not in value else \
            yaml.safe_dump(value, default_style="'").strip().removesuffix("\n...")
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def ros_arguments(desc: NodeDescription) -> list[str]:
    """The ``--ros-args`` of a description (name, namespace, params files, overrides, remaps)."""
    out = ["--ros-args", "-r", f"__node:={desc.name}"]
    if desc.namespace:
        out += ["-r", f"__ns:={desc.namespace}"]
    for f in desc.params_files:
        out += ["--params-file", str(f)]
    for k, v in desc.parameters.items():
        out += ["-p", f"{k}:={_param_text(v)}"]
    for src, dst in desc.remappings:
        out += ["-r", f"{src}:={dst}"]
    return out


def process_command(desc: NodeDescription, python: str | None = None) -> list[str]:
    """The command line ``vla launch`` runs for a description."""
    return [python or sys.executable, "-m", desc.module, *ros_arguments(desc)]
