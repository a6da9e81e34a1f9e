"""Control without ROS: trajectory tracking (:mod:`.tracker`) and the trajectory follower's logic
(:mod:`.follower`: limits, watchdog, enable). Never imports rclpy or message packages."""
