"""The VLA node's logic in plain Python: no rclpy, no ROS message packages.

``vla_ros.ros`` is the thin rclpy adapter around it.  Everything here is unit-tested without ROS
(``test/test_runtime.py`` also checks that importing this package pulls in neither rclpy nor any
message package).

Modules: ``config`` (NodeConfig, the node's settings; params files), ``images`` (sensor_msgs/Image
fields -> RGB array), ``history`` (per-camera frame histories aligned on header stamps),
``safety`` (status codes and stop decisions), ``stats`` (latency, rate, counters),
``geometry`` (yaw -> quaternion, waypoint stamps), ``core`` (NodeCore: one tick of the node),
``worker`` (the inference thread that drops ticks while busy; a camera's newest-wins decode thread).
"""
