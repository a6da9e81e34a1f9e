"""rosbag2 tools: record simulated episodes, replay bags into the node (or offline), score, golden outputs.

Modules: ``schema`` (types, topics, QoS, message conversions; rosbags' type store with
vla_ros/msg/Trajectory), ``io`` (BagReader with damage handling, BagWriter), ``salvage``
(reading truncated MCAP files), ``record`` (``vla bag record-sim``), ``replay`` (offline and
DDS replay, output bags), ``score`` (ADE/FDE, stops, latency; report table), ``golden``
(golden outputs of the tiny fixture).  The command line is ``vla bag`` (``vla_ros.commands.bag``);
the user documentation is ``docs/bags.md``.

Nothing here imports rclpy except the DDS replay (``replay.DdsPlayer`` and ``replay_dds``).
"""
