"""The ROS side: the rclpy adapters around ``vla_ros.runtime`` / ``vla_ros.control`` / ``vla_ros.sim``
(``vla_node``, ``trajectory_follower``, ``sim_node``; the only modules that import rclpy at the top),
and running those nodes as child processes (``orchestration``: ``vla launch``, ``vla sim``; ``soak``)."""
