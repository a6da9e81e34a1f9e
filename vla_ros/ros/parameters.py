"""ROS parameters as a view of a settings dataclass (vla_node, sim_node, trajectory_follower)."""

from __future__ import annotations

from dataclasses import fields
from typing import Callable, Iterable, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from vla_ros.config import ConfigError, from_dict
from vla_ros.runtime.config import ROS_STANDARD_PARAMETERS

__all__ = ["declare_dataclass_parameters", "STANDARD_PARAMETERS"]

#: Parameters every ROS node may be given that are not settings of ours.
STANDARD_PARAMETERS = ROS_STANDARD_PARAMETERS

T = TypeVar("T")


def declare_dataclass_parameters(node: Node, cls: type[T], standard: Iterable[str] = STANDARD_PARAMETERS,
                                 constraints: Callable[[str], str] | None = None) -> T:
    """One read-only parameter per field of ``cls`` (its ``help`` metadata as the description;
    ``constraints(name)`` as its additional_constraints), then the validated instance. Raises
    ConfigError for a wrong type, an invalid value or an unknown parameter name (a typo in a params
    file would otherwise be ignored silently). Types are checked by ``cls``, not by ROS: YAML
    writes 5 for 5.0."""
    defaults = cls()
    values = {}
    for f in fields(cls):
        desc = ParameterDescriptor(description=f.metadata["help"], read_only=True, dynamic_typing=True,
                                   additional_constraints=constraints(f.name) if constraints else "")
        values[f.name] = node.declare_parameter(f.name, getattr(defaults, f.name), desc).value
    overrides = set(getattr(node, "_parameter_overrides", {}) or {})
    unknown = sorted(k for k in overrides - set(values) - set(standard) if not k.startswith("qos_overrides."))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for {node.get_fully_qualified_name()}; "
                          f"valid: {sorted(values)}")
    return from_dict(cls, values, where="parameter")
