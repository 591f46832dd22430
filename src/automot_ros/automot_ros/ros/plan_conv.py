"""PlanResult -> automot_msgs/DrivingPlan, nav_msgs/Path and a visualization MarkerArray."""

from __future__ import annotations

import math

from automot_msgs.msg import DrivingPlan, MetaAction, Waypoint
from geometry_msgs.msg import Point
from nav_msgs.msg import Path
from visualization_msgs.msg import Marker, MarkerArray

from automot_ros.data.decisions import DECISION_HORIZONS_S, HORIZON_NAMES, LATERAL_NAMES, LONGITUDINAL_NAMES
from automot_ros.ros.route_conv import xy_to_path
from automot_ros.ros.time_conv import ns_to_stamp, seconds_to_duration
from automot_ros.runtime.plan_result import WAYPOINT_DT_S, PlanResult


def plan_to_msg(result: PlanResult, frame_id: str) -> DrivingPlan:
    msg = DrivingPlan()
    msg.header.stamp = ns_to_stamp(result.stamp_ns)
    msg.header.frame_id = frame_id
    msg.context_seq = int(result.context_seq)
    msg.context_age_ms = float(result.context_age_ms) if math.isfinite(result.context_age_ms) else 0.0
    msg.inference_ms = float(result.inference_ms)
    msg.backend = result.backend
    msg.status = int(result.status)
    traj = result.trajectory
    if traj is None:
        return msg
    msg.meta_actions = [
        MetaAction(
            time_from_start=seconds_to_duration(horizon),
            lateral=int(traj.lateral[k]),
            longitudinal=int(traj.longitudinal[k]),
            confidence=float(traj.confidence[k]),
        )
        for k, horizon in enumerate(DECISION_HORIZONS_S)
    ]
    msg.path = [Point(x=float(x), y=float(y), z=0.0) for x, y in traj.path_xy]
    msg.waypoints = [
        Waypoint(
            time_from_start=seconds_to_duration(WAYPOINT_DT_S * (i + 1)),
            x=float(x),
            y=float(y),
            heading=float(heading),
            speed=float(speed),
        )
        for i, ((x, y), heading, speed) in enumerate(zip(traj.waypoints_xy, traj.waypoint_heading, traj.waypoint_speed))
    ]
    return msg


def plan_to_path(result: PlanResult, frame_id: str) -> Path:
    """The spatial path for RViz (empty when there is no trajectory)."""
    points = result.trajectory.path_xy if result.trajectory is not None else []
    return xy_to_path(points, ns_to_stamp(result.stamp_ns), frame_id)


def describe_meta_actions(result: PlanResult) -> str:
    """'now: straight, keep | +1s: ... ' for logs and the RViz text marker."""
    traj = result.trajectory
    if traj is None:
        return result.status.name
    return " | ".join(
        f"{name}: {LATERAL_NAMES[traj.lateral[k]]}, {LONGITUDINAL_NAMES[traj.longitudinal[k]]}"
        for k, name in enumerate(HORIZON_NAMES)
    )


def plan_to_markers(result: PlanResult, frame_id: str, namespace: str = "automot") -> MarkerArray:
    """Path (line strip), waypoints (spheres) and meta-actions (text); DELETEALL first so
    markers of an earlier plan never linger when a plan has no trajectory."""
    stamp = ns_to_stamp(result.stamp_ns)
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id = frame_id
    markers = [clear]

    def marker(marker_id: int, marker_type: int, rgba, scale) -> Marker:
        m = Marker()
        m.header.stamp, m.header.frame_id = stamp, frame_id
        m.ns, m.id, m.type, m.action = namespace, marker_id, marker_type, Marker.ADD
        m.pose.orientation.w = 1.0
        m.scale.x, m.scale.y, m.scale.z = scale
        m.color.r, m.color.g, m.color.b, m.color.a = rgba
        markers.append(m)
        return m

    text = marker(2, Marker.TEXT_VIEW_FACING, (1.0, 1.0, 1.0, 1.0), (0.0, 0.0, 0.8))
    text.pose.position.z = 2.5
    text.text = describe_meta_actions(result)
    traj = result.trajectory
    if traj is not None:
        path = marker(0, Marker.LINE_STRIP, (0.1, 0.8, 0.2, 1.0), (0.2, 0.0, 0.0))
        path.points = [Point(x=float(x), y=float(y)) for x, y in traj.path_xy]
        waypoints = marker(1, Marker.SPHERE_LIST, (0.2, 0.4, 1.0, 1.0), (0.5, 0.5, 0.5))
        waypoints.points = [Point(x=float(x), y=float(y)) for x, y in traj.waypoints_xy]
    return MarkerArray(markers=markers)
