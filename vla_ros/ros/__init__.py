"""The rclpy side of the node: a thin adapter around ``vla_ros.runtime`` (the only place that imports rclpy)."""
