"""trajectory_follower: vla_ros/Trajectory + odometry in, cmd_vel out (the robot follows the plans).

    ros2 run vla_ros trajectory_follower --ros-args -p max_linear_velocity:=0.5
    ros2 launch vla_ros vla.launch.py follower:=true      # beside vla_node
    python -m vla_ros.ros.trajectory_follower --ros-args -p stamped:=true
    ros2 service call /trajectory_follower/enable std_srvs/srv/SetBool "{data: false}"   # e-stop

Topics (relative, so namespaces and remaps work):
  in:  trajectory (vla_ros/Trajectory, reliable; in the robot frame at header.stamp, or in the odometry
       frame when header.frame_id is the odometry's, vla_node's output_frame odom), odom (nav_msgs/Odometry, sensor-data QoS: matches
       reliable and best-effort publishers; pose in the odometry frame, twist in the robot frame)
  out: cmd_vel (geometry_msgs/Twist, or TwistStamped with stamped:=true; reliable);
       ~/plan (nav_msgs/Path: the plan followed, in the odometry frame; one per trajectory taken)
  srv: ~/enable (std_srvs/SetBool): false = zero cmd_vel until enabled again

The tracker is :class:`vla_ros.control.tracker.TrajectoryTracker`, the one sim_node's robot runs;
limits, watchdog and enable live in :class:`vla_ros.control.follower.FollowerCore` (no rclpy).
This module is the thin rclpy adapter: parameters, QoS, timer and message conversion.
"""

from __future__ import annotations


from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Header
from std_srvs.srv import SetBool

from vla_ros.bag.schema import trajectory_data
from vla_ros.config import ConfigError
from vla_ros.control.follower import FOLLOWER_NODE_NAME, FollowerCommand, FollowerConfig, FollowerCore
from vla_ros.msg import Trajectory
from vla_ros.ros.messages import pose_from_xy_yaw, stamp_ns, to_time
from vla_ros.ros.parameters import declare_dataclass_parameters
from vla_ros.ros.process import NodeProcess, Spinner, config_error, run_node_main, stop_on_signals
from vla_ros.runtime.geometry import quaternion_to_yaw

__all__ = ["TrajectoryFollower", "main"]


class TrajectoryFollower(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(FOLLOWER_NODE_NAME, **kwargs)
        try:
            self._set_up()
        except BaseException:
            self.destroy_node()  # now, not by the garbage collector after rclpy shut down
            raise

    def _set_up(self) -> None:
        self.cfg = cfg = declare_dataclass_parameters(self, FollowerConfig)
        self.core = FollowerCore(cfg)
        self._last_mode: str | None = None
        self._pub = self.create_publisher(TwistStamped if cfg.stamped else Twist, "cmd_vel", 10)
        # the plan followed, in the odometry frame (RViz); one message per trajectory taken, stamped with its
        # stamp (sim_node's lockstep waits for it before the odometry that asks for the command)
        self._plan_pub = self.create_publisher(Path, "~/plan", 10)
        # Created before the odom subscription: when both have a message waiting, the executor takes
        # the trajectory first, so a command answers the newest plan (sim_node's lockstep counts on it).
        self.create_subscription(Trajectory, "trajectory", self._on_trajectory, 10)
        self.create_subscription(Odometry, "odom", self._on_odometry, qos_profile_sensor_data)
        self.create_service(SetBool, "~/enable", self._on_enable)
        if cfg.control_trigger == "timer":  # node clock: sim time with use_sim_time, like the stamps
            self.create_timer(cfg.period, self._on_timer)
        self.get_logger().info(
            f"following {self.resolve_topic_name('trajectory')} -> {self.resolve_topic_name('cmd_vel')} "
            f"({'TwistStamped' if cfg.stamped else 'Twist'}, {cfg.control_trigger} trigger"
            + (f" at {cfg.control_rate:g} Hz" if cfg.control_trigger == "timer" else "")
            + f"); |v| <= {cfg.max_linear_velocity:g} m/s, |w| <= {cfg.max_yaw_rate:g} rad/s, "
              f"watchdog {cfg.watchdog_timeout:g} s, {'enabled' if cfg.enabled else 'DISABLED'}")

    def _now_ns(self) -> int:
        """The time commands are computed for: the newest odometry stamp with the odom trigger (the
        robot's own time), else the node clock."""
        odom = self.core.odometry
        if self.cfg.control_trigger == "odom" and odom is not None:
            return odom[0]
        return self.get_clock().now().nanoseconds

    # -- callbacks ----------------------------------------------------------------------------
    def _on_trajectory(self, msg: Trajectory) -> None:
        t = trajectory_data(msg)
        poses = t.trajectory if len(t.trajectory) else [[0.0, 0.0, 0.0]]
        outcome = self.core.on_trajectory(t.stamp_ns, poses, t.dt, t.status, t.status_reason, self._now_ns(),
                                          msg.header.frame_id)
        if outcome in ("bad", "no_pose"):
            self.get_logger().warning(f"trajectory stamped {t.stamp_ns / 1e9:.3f} s ignored: {outcome}",
                                      throttle_duration_sec=5.0)
        self._publish_plan(t.stamp_ns)

    def _publish_plan(self, stamp: int) -> None:
        """The plan now followed (no poses: stopped), stamped with the trajectory just taken."""
        msg = Path()
        msg.header.stamp, msg.header.frame_id = to_time(stamp), self.core.odom_frame_id or "odom"
        plan = self.core.tracker.plan
        if plan is not None:
            for t_ns, (x, y, yaw) in zip(plan.times_ns[1:].tolist(), plan.world_waypoints().tolist()):
                msg.poses.append(PoseStamped(header=Header(stamp=to_time(t_ns), frame_id=msg.header.frame_id),
                                             pose=pose_from_xy_yaw(x, y, yaw)))
        self._plan_pub.publish(msg)

    def _on_odometry(self, msg: Odometry) -> None:
        p, tw = msg.pose.pose, msg.twist.twist
        pose = (p.position.x, p.position.y, quaternion_to_yaw(p.orientation.x, p.orientation.y,
                                                              p.orientation.z, p.orientation.w))
        self.core.on_odometry(stamp_ns(msg.header.stamp), pose, tw.linear.x, tw.angular.z, msg.header.frame_id)
        if self.cfg.control_trigger == "odom":
            self._publish(self.core.command_on_odometry(), self.core.odometry[0])

    def _on_timer(self) -> None:
        now = self._now_ns()
        self._publish(self.core.command(now), now)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.message = self.core.set_enabled(request.data)
        response.success = True
        self.get_logger().warning(response.message) if not request.data else self.get_logger().info(response.message)
        if not request.data:  # zero at once, not at the next control step
            self._publish(self.core.command(self._now_ns()), self._now_ns())
        return response

    # -- output -------------------------------------------------------------------------------
    def _publish(self, cmd: FollowerCommand, stamp: int) -> None:
        twist = Twist()
        twist.linear.x, twist.angular.z = cmd.v, cmd.omega
        if self.cfg.stamped:
            msg = TwistStamped(twist=twist)
            msg.header.stamp, msg.header.frame_id = to_time(stamp), self.cfg.frame_id
        else:
            msg = twist
        self._pub.publish(msg)
        if cmd.mode != self._last_mode:
            reason = f": {cmd.reason}" if cmd.reason else ""
            if cmd.mode == "track":
                self.get_logger().info("following the trajectories")
            else:
                self.get_logger().warning(f"{cmd.mode}{reason}")
            self._last_mode = cmd.mode

    def stop_robot(self, ack_timeout_s: float = 1.0) -> None:
        """A last zero command (shutting down), and wait (at most ``ack_timeout_s``) until every
        subscriber acknowledged it: a publisher destroyed at once may never deliver it."""
        self.core.set_enabled(False, why="shutting down")
        self._publish(self.core.command(self._now_ns()), self._now_ns())
        if not self._pub.wait_for_all_acked(Duration(seconds=ack_timeout_s)):
            self.get_logger().warning(f"the last zero cmd_vel was not acknowledged within {ack_timeout_s:g} s")


def main(args: list[str] | None = None) -> None:
    """Entry point (``ros2 run vla_ros trajectory_follower``, ``trajectory_follower``,
    ``python -m vla_ros.ros.trajectory_follower``). Exits 2 with one line for an invalid parameter.
    On SIGINT / SIGTERM it publishes a last zero command before it goes (ros/process.py)."""
    def body(proc: NodeProcess) -> int:
        stop = stop_on_signals()
        try:
            proc.node = TrajectoryFollower()
            executor = SingleThreadedExecutor()
            executor.add_node(proc.node)
            proc.spinner = Spinner(executor, name="follower-executor")
            proc.spinner.wait(stop)
        except (ConfigError, ValueError) as exc:
            return config_error(FOLLOWER_NODE_NAME, exc)
        return 0

    def close(node: TrajectoryFollower) -> None:
        if node.context.ok():
            node.stop_robot()
        node.destroy_node()

    run_node_main(args, body, close)


if __name__ == "__main__":
    main()
