"""Bags -> the plain logs eval/scoring.py scores (no ROS: bags are read with rosbags).

The input bag gives the ground truth (odometry, agent boxes); the replay's output bag gives
what the stack published (DrivingPlan, ContextInfo) and when each camera frame went out.
Both are read lazily and stop at damage (bag_io.BagReader); what was read before it is used.

Agent boxes: visualization_msgs/MarkerArray, one CUBE marker (action ADD) per agent, in the
odometry frame: pose = box center and yaw, scale.x = length, scale.y = width; the markers'
header.stamp is the time of the boxes (the message's log time when the array is empty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from automot_ros.data.bag_io import BagReader, stamp_ns
from automot_ros.eval.scoring import AgentLog, ContextLog, EgoLog, PlanLog, PublishedLog

MARKER_CUBE, MARKER_ADD = 1, 0
PLAN_TYPE = "automot_msgs/msg/DrivingPlan"
CONTEXT_TYPE = "automot_msgs/msg/ContextInfo"
PUBLISHED_TYPE = "builtin_interfaces/msg/Time"


def quaternion_yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


@dataclass
class GroundTruth:
    ego: EgoLog
    agents: Optional[AgentLog]
    odom_frame: str = ""
    error: Optional[str] = None  # the bag's damage, if reading stopped early
    warnings: List[str] = field(default_factory=list)


def read_ground_truth(bag, odom_topic: str, boxes_topic: Optional[str]) -> GroundTruth:
    """Odometry (and agent boxes when ``boxes_topic`` is in the bag) from the input bag."""
    with BagReader(bag) as reader:
        warnings = list(reader.warnings)
        if odom_topic not in reader.topics:
            raise ValueError(f"{bag}: no odometry topic {odom_topic!r} (topics: {sorted(reader.topics)})")
        want_boxes = bool(boxes_topic) and boxes_topic in reader.topics
        if boxes_topic and not want_boxes:
            warnings.append(f"no agent-box topic {boxes_topic!r} in the bag: collision is not scored")
        odom, box_rows = [], []
        odom_frame, box_frames = "", set()
        topics = [odom_topic] + ([boxes_topic] if want_boxes else [])
        for message in reader.messages(topics):
            try:
                msg = reader.decode(message)
            except Exception as error:  # noqa: BLE001 - an undecodable message is damage too
                reader.error = f"{bag}: message {reader.messages_read} on {message.topic} cannot be decoded: {error}"
                break
            if message.topic == odom_topic:
                pose, twist = msg.pose.pose, msg.twist.twist.linear
                odom_frame = odom_frame or msg.header.frame_id
                odom.append((stamp_ns(msg.header.stamp), pose.position.x, pose.position.y,
                             quaternion_yaw(pose.orientation), math.hypot(twist.x, twist.y)))
            else:
                cubes = [m for m in msg.markers if m.type == MARKER_CUBE and m.action == MARKER_ADD]
                stamp = stamp_ns(cubes[0].header.stamp) if cubes else message.log_time_ns
                box_frames.update(m.header.frame_id for m in cubes)
                box_rows.append((stamp, np.array([[m.pose.position.x, m.pose.position.y, m.scale.x, m.scale.y,
                                                   quaternion_yaw(m.pose.orientation)] for m in cubes]).reshape(-1, 5)))
        error = reader.error
    ego = _ego_log(odom)
    if box_frames - {odom_frame}:
        warnings.append(f"agent boxes are in frame(s) {sorted(box_frames)}, odometry in {odom_frame!r}: "
                        "boxes are used as if in the odometry frame")
    agents = None
    if want_boxes:
        box_rows.sort(key=lambda row: row[0])
        agents = AgentLog(np.array([r[0] for r in box_rows], dtype=np.int64), [r[1] for r in box_rows])
    return GroundTruth(ego, agents, odom_frame, error, warnings)


def _ego_log(rows) -> EgoLog:
    """Sorted by stamp, one row per stamp (the first), so stamps strictly increase."""
    rows = sorted(rows, key=lambda r: r[0])
    unique = [r for i, r in enumerate(rows) if i == 0 or r[0] != rows[i - 1][0]]
    array = np.array(unique, dtype=float).reshape(-1, 5)
    return EgoLog(np.array([r[0] for r in unique], dtype=np.int64), array[:, 1:4], array[:, 4])


@dataclass
class Recorded:
    plans: PlanLog
    contexts: ContextLog
    published: PublishedLog
    error: Optional[str] = None


def read_recorded(bag, plan_topic: str, context_topic: str, published_topic: str) -> Recorded:
    """What the replay recorded: plans, context announcements, camera publish times."""
    plans, contexts, published = [], [], []
    model_id, backend = "", ""
    with BagReader(bag) as reader:
        for message in reader.messages([plan_topic, context_topic, published_topic]):
            msg = reader.decode(message)
            if message.topic == plan_topic:
                traj = len(msg.waypoints) == 6
                waypoints = np.array([[w.x, w.y] for w in msg.waypoints]) if traj else np.full((6, 2), np.nan)
                decisions = np.array([[a.lateral, a.longitudinal] for a in msg.meta_actions]) \
                    if len(msg.meta_actions) == 3 else np.full((3, 2), -1)
                plans.append((stamp_ns(msg.header.stamp), message.log_time_ns, msg.status, waypoints, decisions,
                              msg.inference_ms, msg.context_age_ms, msg.context_seq,
                              np.array([[p.x, p.y] for p in msg.path]).reshape(-1, 2)))
                backend = msg.backend or backend
            elif message.topic == context_topic:
                contexts.append((stamp_ns(msg.header.stamp), message.log_time_ns, msg.seq, msg.compute_ms))
                model_id = msg.model_id or model_id
            else:
                published.append((stamp_ns(msg), message.log_time_ns))
        error = reader.error
    n = len(plans)
    plan_log = PlanLog(
        stamp_ns=np.array([p[0] for p in plans], dtype=np.int64),
        receive_ns=np.array([p[1] for p in plans], dtype=np.int64),
        status=np.array([p[2] for p in plans], dtype=int),
        waypoints=np.array([p[3] for p in plans], dtype=float).reshape(n, 6, 2),
        decisions=np.array([p[4] for p in plans], dtype=int).reshape(n, 3, 2),
        inference_ms=np.array([p[5] for p in plans], dtype=float),
        context_age_ms=np.array([p[6] for p in plans], dtype=float),
        context_seq=np.array([p[7] for p in plans], dtype=np.int64),
        paths=[p[8] for p in plans], backend=backend,
    )
    context_log = ContextLog(
        stamp_ns=np.array([c[0] for c in contexts], dtype=np.int64),
        receive_ns=np.array([c[1] for c in contexts], dtype=np.int64),
        seq=np.array([c[2] for c in contexts], dtype=np.int64),
        compute_ms=np.array([c[3] for c in contexts], dtype=float), model_id=model_id,
    )
    published_log = PublishedLog(np.array([p[0] for p in published], dtype=np.int64),
                                 np.array([p[1] for p in published], dtype=np.int64))
    return Recorded(plan_log, context_log, published_log, error)
