"""ROS parameters as a view of a settings dataclass (sim_node, trajectory_follower)."""

from __future__ import annotations

from dataclasses import fields
from typing import Iterable, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from vla_ros.config import ConfigError, from_dict

__all__ = ["declare_dataclass_parameters", "STANDARD_PARAMETERS"]

#: Parameters every ROS node may be given that are not settings of ours.
STANDARD_PARAMETERS = ("use_sim_time", "start_type_description_service")

T = TypeVar("T")


def declare_dataclass_parameters(node: Node, cls: type[T], standard: Iterable[str] = STANDARD_PARAMETERS) -> T:
    """One read-only parameter per field of ``cls`` (its ``help`` metadata as the description),
    then the validated instance. Raises ConfigError for a wrong type, an invalid value or an
    unknown parameter name (a typo in a params file would otherwise be ignored silently)."""
    defaults = cls()
    values = {}
    for f in fields(cls):
        desc = ParameterDescriptor(description=f.metadata["help"], read_only=True, dynamic_typing=True)
        values[f.name] = node.declare_parameter(f.name, getattr(defaults, f.name), desc).value
    overrides = set(getattr(node, "_parameter_overrides", {}) or {})
    unknown = sorted(k for k in overrides - set(values) - set(standard) if not k.startswith("qos_overrides."))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for {node.get_fully_qualified_name()}; "
                          f"valid: {sorted(values)}")
    return from_dict(cls, values, where="parameter")
