"""Agent boxes -> visualization_msgs/MarkerArray of CUBEs (the layout of the bags' /automot/agents)."""

from __future__ import annotations

import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

from automot_ros.ros.odometry_conv import yaw_to_quaternion


def boxes_to_markers(stamp, boxes: np.ndarray, heights: np.ndarray, ids: np.ndarray, frame_id: str,
                     kind: str = "vehicle") -> MarkerArray:
    """boxes [A, 5] (cx, cy, length, width, yaw) in ``frame_id``; one CUBE per agent, id = its
    id, namespace agents/<kind>; a DELETEALL first so agents that left do not linger."""
    clear = Marker(action=Marker.DELETEALL)
    clear.header.stamp, clear.header.frame_id = stamp, frame_id
    markers = [clear]
    for box, height, agent_id in zip(np.asarray(boxes, dtype=float).reshape(-1, 5), heights, ids):
        m = Marker()
        m.header.stamp, m.header.frame_id = stamp, frame_id
        m.ns, m.id, m.type, m.action = f"agents/{kind}", int(agent_id), Marker.CUBE, Marker.ADD
        m.pose.position.x, m.pose.position.y, m.pose.position.z = float(box[0]), float(box[1]), float(height) / 2.0
        q = m.pose.orientation
        q.x, q.y, q.z, q.w = yaw_to_quaternion(float(box[4]))
        m.scale.x, m.scale.y, m.scale.z = float(box[2]), float(box[3]), float(height)
        m.color.r, m.color.g, m.color.b, m.color.a = 0.9, 0.5, 0.1, 0.8
        markers.append(m)
    return MarkerArray(markers=markers)
