"""nav_msgs/Path (the route) <-> [N, 2] arrays."""

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path

from automot_ros.data.route import validate_route


def path_to_xy(msg: Path) -> np.ndarray:
    """The route's positions [N, 2] in msg.header.frame_id, validated."""
    return validate_route(np.array([[p.pose.position.x, p.pose.position.y] for p in msg.poses]).reshape(-1, 2))


def xy_to_path(points_xy: np.ndarray, stamp, frame_id: str) -> Path:
    msg = Path()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    for x, y in np.asarray(points_xy, dtype=float):
        pose = PoseStamped()
        pose.header = msg.header
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.w = 1.0
        msg.poses.append(pose)
    return msg
