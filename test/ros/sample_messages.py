"""Deterministic, fully populated interface messages shared by test processes."""

from automot_msgs.msg import DrivingPlan, MetaAction, Waypoint
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point


def sample_plan() -> DrivingPlan:
    """A DrivingPlan with every field set to a distinct, non-default value."""
    plan = DrivingPlan()
    plan.header.stamp.sec = 1_700_000_123
    plan.header.stamp.nanosec = 456_789_000
    plan.header.frame_id = "base_link"
    plan.meta_actions = [
        MetaAction(
            time_from_start=Duration(sec=k, nanosec=0),
            lateral=MetaAction.LAT_SLIGHT_RIGHT if k else MetaAction.LAT_STRAIGHT,
            longitudinal=MetaAction.LON_DECELERATE if k == 2 else MetaAction.LON_KEEP,
            confidence=0.5 + 0.125 * k,
        )
        for k in range(3)
    ]
    plan.path = [Point(x=1.0 * (i + 1), y=-0.03125 * i * i, z=0.0) for i in range(20)]
    plan.waypoints = [
        Waypoint(
            time_from_start=Duration(sec=(i + 1) // 2, nanosec=500_000_000 * ((i + 1) % 2)),
            x=2.5 * (i + 1),
            y=-0.25 * i,
            heading=-0.0625 * i,
            speed=5.0 - 0.25 * i,
        )
        for i in range(6)
    ]
    plan.context_seq = 2**40 + 7
    plan.context_age_ms = 312.5
    plan.inference_ms = 36.75
    plan.backend = "onnxruntime-cpu"
    plan.status = DrivingPlan.STATUS_STALE_CONTEXT
    return plan
