"""nav_msgs/Odometry -> EgoState."""

import math

from nav_msgs.msg import Odometry

from automot_ros.data.ego import EgoState
from automot_ros.ros.time_conv import ns_to_stamp, stamp_to_ns


def odometry_to_ego(msg: Odometry) -> EgoState:
    """Pose in the odometry frame; speed = norm of the body-frame linear twist (REP-105)."""
    q = msg.pose.pose.orientation
    yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    v = msg.twist.twist.linear
    return EgoState(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        x=msg.pose.pose.position.x,
        y=msg.pose.pose.position.y,
        yaw=yaw,
        speed_mps=math.hypot(v.x, v.y),
    )


def ego_to_odometry(ego: EgoState, frame_id: str, child_frame_id: str = "base_link") -> Odometry:
    """EgoState -> Odometry: pose in ``frame_id``, speed as body-frame forward velocity."""
    msg = Odometry()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = ns_to_stamp(ego.stamp_ns), frame_id, child_frame_id
    msg.pose.pose.position.x, msg.pose.pose.position.y = ego.x, ego.y
    q = msg.pose.pose.orientation
    q.x, q.y, q.z, q.w = yaw_to_quaternion(ego.yaw)
    msg.twist.twist.linear.x = ego.speed_mps
    return msg


def yaw_to_quaternion(yaw: float):
    """(x, y, z, w) of a rotation by yaw about z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)
