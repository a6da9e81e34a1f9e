"""Start vla_node on a robot:  ros2 launch vla_ros vla.launch.py [arg:=value ...]

Arguments (``ros2 launch vla_ros vla.launch.py --show-args``):
  params_file   ROS params file ('' = share/vla_ros/config/vla.yaml)
  checkpoint    model checkpoint ('' = the params file's value)
  device        cpu | cuda | cuda:N ('' = the params file's value)
  namespace     e.g. robot1 (topics become /robot1/ego/image_raw, ...)
  rate_hz       inference ticks per second ('' = the params file's value)
  use_sim_time  true for simulation / bag replay with --clock
  remappings    'from:=to' pairs, e.g. "ego/image_raw:=/cam_front/image_raw top/image_raw:=/cam_top/image_raw"
  follower      true: also start trajectory_follower (cmd_vel from the trajectories and odom)
  scan_guard    true: cut every trajectory before it drives into what the laser on scan sees

What it starts comes from vla_ros.launch_description.describe(), the same description that
``vla launch`` (the launcher for machines without ROS launch) runs, so both start the same nodes
with the same parameters and remaps.  ``launch`` / ``launch_ros`` are imported only inside
generate_launch_description(); node_kwargs() is plain Python (tested without ROS launch).
"""

from vla_ros.launch_description import LAUNCH_ARGUMENTS, NodeDescription, describe_from_launch_arguments


def node_kwargs(desc: NodeDescription) -> dict:
    """Keyword arguments of launch_ros.actions.Node for one description."""
    parameters = [*desc.params_files]
    if desc.parameters:
        parameters.append(dict(desc.parameters))  # after the files: overrides win
    return {
        "package": desc.package,
        "executable": desc.executable,
        "name": desc.name,
        "namespace": desc.namespace,
        "parameters": parameters,
        "remappings": [tuple(r) for r in desc.remappings],
        "output": "screen",
        "emulate_tty": True,
    }


def nodes_for(arguments: dict) -> list:
    """node_kwargs for every node the launch starts, from the launch arguments' string values."""
    return [node_kwargs(d) for d in describe_from_launch_arguments(arguments)]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def start_nodes(context, *args, **kwargs):
        values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
        return [Node(**kw) for kw in nodes_for(values)]

    declared = [DeclareLaunchArgument(name, default_value=default, description=help_text)
                for name, (default, help_text) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=start_nodes)])
