"""Scores a replayed run: the plans the stack published against the bag's ground truth.

Inputs are plain arrays (this module imports neither ROS nor a bag library): the recorded
DrivingPlans and ContextInfos, the bag's odometry, its agent boxes (optional) and when each
camera frame was published. Definitions (DESIGN.md section 5), all through the functions of
eval/open_loop.py, eval/meta_actions.py and eval/runtime_stats.py:

- Ground truth future: the ego poses at t0 + 0.5, 1.0, ... 3.0 s, interpolated from the
  odometry and expressed in the ego frame at the plan's stamp t0 (base_link there: the
  plan's own frame). Plans whose 3 s future lies past the end of the odometry are not scored.
- L2 at 1/2/3 s, "stp3" (mean over the steps up to t) and "uniad" (the step at t), over the
  plans that carry a trajectory (OK and STALE_CONTEXT).
- Collision at 1/2/3 s (same two conventions, percent): the 4.084 x 1.85 m ego box at each
  predicted waypoint, heading from consecutive points, against the agent boxes nearest in
  time to t0 + 0.5 k (within BOX_TIME_TOLERANCE_S, else the plan is not scored for
  collision), moved into the ego frame at t0. Plans whose ground-truth future itself hits an
  agent are excluded and counted.
- Meta-actions: labels from the ground-truth future resampled every LABEL_DT_S with the
  odometry's measured speeds (thresholds in eval/meta_actions.py); accuracy per class axis,
  joint, and per horizon, with the label distribution beside it.
- Runtime: Action Expert inference time, end-to-end latency (plan received minus its camera
  frame published, both wall clock), context age, plan and context rates (wall clock and bag
  time), UE prefill time, and the count of each plan status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from automot_ros.eval import meta_actions as ma
from automot_ros.eval.open_loop import (
    CONVENTIONS,
    FUTURE_TIMES_S,
    NUM_STEPS,
    collision_hits,
    future_in_ego_frame,
    l2_at_horizons,
    l2_errors,
    wrap_angle,
)
from automot_ros.eval.runtime_stats import STATUS_NAMES, rate_summary, status_counts, summarize

# Agent boxes are taken from the box message nearest in time to each waypoint's time, if
# it is at most this far away (a 10 Hz box stream is always within 0.05 s).
BOX_TIME_TOLERANCE_S = 0.1
# Ground-truth future resampling step for the meta-action labels (1 s windows = 10 steps).
LABEL_DT_S = 0.1
LABEL_HORIZONS_S = tuple(LABEL_DT_S * (k + 1) for k in range(round(3.0 / LABEL_DT_S)))
STATUS_OK, STATUS_STALE = 0, 1
CONVENTION_TEXT = {
    "stp3": "value at t = mean of the per-step values over all 0.5 s steps up to t (AutoMoT's 0.32 m L2 is stp3)",
    "uniad": "value at t = the per-step value at t",
}


@dataclass
class PlanLog:
    """Recorded DrivingPlans, one row each (N)."""

    stamp_ns: np.ndarray  # [N] camera stamp the plan was computed from
    receive_ns: np.ndarray  # [N] wall time the plan was recorded
    status: np.ndarray  # [N] DrivingPlan.STATUS_*
    waypoints: np.ndarray  # [N, 6, 2] base_link at the stamp; NaN without a trajectory
    decisions: np.ndarray  # [N, 3, 2] (lateral, longitudinal) for now/+1s/+2s; -1 without
    inference_ms: np.ndarray  # [N]
    context_age_ms: np.ndarray  # [N]
    context_seq: np.ndarray  # [N] 0 without a context
    paths: List[np.ndarray] = field(default_factory=list)  # N x [P, 2] spatial paths
    backend: str = ""


@dataclass
class ContextLog:
    stamp_ns: np.ndarray  # [C] newest frame of the context
    receive_ns: np.ndarray  # [C] wall time the announcement was recorded
    seq: np.ndarray  # [C]
    compute_ms: np.ndarray  # [C] UE prefill wall time
    model_id: str = ""


@dataclass
class EgoLog:
    """Odometry: poses (x, y, yaw) in the odometry frame and measured speed, by header stamp."""

    stamp_ns: np.ndarray  # [M] strictly increasing
    poses: np.ndarray  # [M, 3]
    speed_mps: np.ndarray  # [M]


@dataclass
class AgentLog:
    """Ground-truth agent boxes (cx, cy, length, width, yaw) in the odometry frame, by stamp."""

    stamp_ns: np.ndarray  # [K] increasing
    boxes: List[np.ndarray]  # K x [A_k, 5]


@dataclass
class PublishedLog:
    """When the replay published each frame of the primary camera."""

    stamp_ns: np.ndarray  # [P] header stamp
    publish_ns: np.ndarray  # [P] wall time


@dataclass
class FrameTable:
    """Per-plan results for plots and CSV (N rows, the plans in stamp order)."""

    t_s: np.ndarray  # [N] plan stamp - reference stamp
    status: np.ndarray
    l2: np.ndarray  # [N, 6] per-step L2, NaN where not scored
    gt_xy: np.ndarray  # [N, 6, 2], NaN without a complete future
    pred_xy: np.ndarray  # [N, 6, 2]
    paths: List[np.ndarray]
    collision: np.ndarray  # [N, 6] 0/1 predicted-box collisions, NaN where not scored
    gt_collides: np.ndarray  # [N] bool, excluded from collision scoring
    labels: np.ndarray  # [N, 3, 2] ground-truth meta-actions, -1 where none
    decisions: np.ndarray  # [N, 3, 2]
    inference_ms: np.ndarray
    end_to_end_ms: np.ndarray
    context_age_ms: np.ndarray
    agents_now: List[Optional[np.ndarray]]  # N x [A, 5] agent boxes at t0 in the ego frame
    reference_ns: int = 0


def _interp_pose(ego: EgoLog, t_ns: int) -> Optional[np.ndarray]:
    """(x, y, yaw) at t by linear interpolation (yaw along the shorter arc); None outside."""
    stamps = ego.stamp_ns
    if len(stamps) < 2 or t_ns < stamps[0] or t_ns > stamps[-1]:
        return None
    i = int(np.clip(np.searchsorted(stamps, t_ns, side="right") - 1, 0, len(stamps) - 2))
    w = (t_ns - stamps[i]) / (stamps[i + 1] - stamps[i])
    a, b = ego.poses[i], ego.poses[i + 1]
    return np.array([a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1]), a[2] + w * float(wrap_angle(b[2] - a[2]))])


def boxes_in_ego_frame(boxes: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Boxes [A, 5] in the odometry frame -> the ego frame of pose (x, y, yaw)."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 5)
    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = boxes[:, 0] - pose[0], boxes[:, 1] - pose[1]
    out = boxes.copy()
    out[:, 0], out[:, 1] = c * dx + s * dy, -s * dx + c * dy
    out[:, 4] = wrap_angle(boxes[:, 4] - pose[2])
    return out


def nearest_boxes(agents: AgentLog, t_ns: int, tolerance_s: float = BOX_TIME_TOLERANCE_S) -> Optional[np.ndarray]:
    """The agent boxes [A, 5] of the box message nearest to t, or None if none is close enough."""
    stamps = agents.stamp_ns
    if len(stamps) == 0:
        return None
    i = int(np.searchsorted(stamps, t_ns))
    candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
    j = min(candidates, key=lambda k: abs(int(stamps[k]) - t_ns))
    if abs(int(stamps[j]) - t_ns) > tolerance_s * 1e9:
        return None
    return agents.boxes[j]


def _label_future(ego: EgoLog, t0_ns: int, reference_ns: int) -> Optional[np.ndarray]:
    """Meta-action labels [3, 2] from the odometry after t0, or None without 3 s of it."""
    stamps_s = (ego.stamp_ns - reference_ns) / 1e9
    t0_s = (t0_ns - reference_ns) / 1e9
    future = future_in_ego_frame(ego.poses, stamps_s, t0_s, LABEL_HORIZONS_S)
    if future is None:
        return None
    speeds = np.interp(t0_s + np.concatenate([[0.0], LABEL_HORIZONS_S]), stamps_s, ego.speed_mps)
    return ma.meta_action_labels(future, LABEL_DT_S, speeds)


def _class_counts(values: np.ndarray, names) -> Dict[str, int]:
    return {name: int((values == k).sum()) for k, name in enumerate(names)}


def score_run(plans: PlanLog, contexts: ContextLog, ego: EgoLog, agents: Optional[AgentLog] = None,
              published: Optional[PublishedLog] = None):
    """(metrics dict, FrameTable). See the module docstring for every definition."""
    order = np.argsort(plans.stamp_ns, kind="stable")
    n = len(order)
    stamps = plans.stamp_ns[order].astype(np.int64)
    status = plans.status[order].astype(int)
    pred = plans.waypoints[order].astype(float).reshape(n, NUM_STEPS, 2)
    decisions = plans.decisions[order].astype(int).reshape(n, 3, 2)
    paths = [plans.paths[i] for i in order] if plans.paths else [np.zeros((0, 2))] * n
    has_traj = np.isin(status, (STATUS_OK, STATUS_STALE)) & np.isfinite(pred).all(axis=(1, 2))
    candidates = [s for s in (ego.stamp_ns[:1], stamps[:1]) if len(s)]
    reference_ns = int(min(int(s[0]) for s in candidates)) if candidates else 0
    ego_s = (ego.stamp_ns - reference_ns) / 1e9

    gt = np.full((n, NUM_STEPS, 2), np.nan)
    labels = np.full((n, 3, 2), -1, dtype=int)
    agents_per_step: List[List[np.ndarray]] = [[np.zeros((0, 5))] * NUM_STEPS for _ in range(n)]
    boxes_ok = np.zeros(n, dtype=bool)
    agents_now: List[Optional[np.ndarray]] = [None] * n
    for k in range(n):
        t0_ns = int(stamps[k])
        future = future_in_ego_frame(ego.poses, ego_s, (t0_ns - reference_ns) / 1e9, FUTURE_TIMES_S) \
            if len(ego.stamp_ns) >= 2 else None
        if future is not None:
            gt[k] = future
        lab = _label_future(ego, t0_ns, reference_ns) if len(ego.stamp_ns) >= 2 else None
        if lab is not None:
            labels[k] = lab
        pose0 = _interp_pose(ego, t0_ns)
        if agents is not None and pose0 is not None:
            now = nearest_boxes(agents, t0_ns)
            agents_now[k] = None if now is None else boxes_in_ego_frame(now, pose0)
            steps = [nearest_boxes(agents, t0_ns + int(round(h * 1e9))) for h in FUTURE_TIMES_S]
            if all(s is not None for s in steps):
                agents_per_step[k] = [boxes_in_ego_frame(s, pose0) for s in steps]
                boxes_ok[k] = True

    has_gt = np.isfinite(gt).all(axis=(1, 2))
    scored = has_traj & has_gt
    per_step = np.full((n, NUM_STEPS), np.nan)
    if scored.any():
        per_step[scored] = l2_errors(pred[scored], gt[scored])
    l2 = {conv: l2_at_horizons(per_step, conv, valid=scored) for conv in CONVENTIONS}

    collision = np.full((n, NUM_STEPS), np.nan)
    gt_collides = np.zeros(n, dtype=bool)
    if agents is None:
        collision_metrics: Dict[str, object] = {"available": False,
                                                "reason": "the bag has no agent-box topic"}
    else:
        valid = scored & boxes_ok
        pred_filled = np.where(np.isfinite(pred), pred, 0.0)
        gt_filled = np.where(np.isfinite(gt), gt, 0.0)
        hits = collision_hits(pred_filled, agents_per_step, gt_filled, valid=valid)
        collision_metrics = {"available": True, "num_frames": int(hits.scored.sum()),
                             "num_excluded": int(hits.excluded.sum())}
        for conv in CONVENTIONS:
            result = hits.at_horizons(conv)
            del result["num_frames"], result["num_excluded"]
            collision_metrics[conv] = result
        collision_metrics["num_without_boxes"] = int((scored & ~boxes_ok).sum())
        gt_collides = hits.excluded
        collision[hits.scored] = hits.per_step[hits.scored]

    has_label = (labels >= 0).all(axis=(1, 2))
    ma_rows = has_traj & has_label & (decisions >= 0).all(axis=(1, 2))
    accuracy = ma.meta_action_accuracy(decisions[ma_rows], labels[ma_rows])
    scored_labels = labels[ma_rows]
    meta_metrics = {
        **accuracy,
        "num_frames": int(ma_rows.sum()),
        "label_distribution": {
            "lateral": _class_counts(scored_labels[..., 0], ma.LATERAL_NAMES),
            "longitudinal": _class_counts(scored_labels[..., 1], ma.LONGITUDINAL_NAMES),
        },
        "prediction_distribution": {
            "lateral": _class_counts(decisions[ma_rows][..., 0], ma.LATERAL_NAMES),
            "longitudinal": _class_counts(decisions[ma_rows][..., 1], ma.LONGITUDINAL_NAMES),
        },
        "label_thresholds": label_thresholds(),
    }

    publish_at = {} if published is None else dict(zip(published.stamp_ns.tolist(), published.publish_ns.tolist()))
    receive = plans.receive_ns[order].astype(np.int64)
    end_to_end = np.array([(int(r) - publish_at[int(s)]) / 1e6 if int(s) in publish_at else np.nan
                           for s, r in zip(stamps, receive)])
    inference = plans.inference_ms[order].astype(float)
    age = plans.context_age_ms[order].astype(float)
    with_context = plans.context_seq[order] > 0
    camera_frames = 0 if published is None else len(published.stamp_ns)
    planned = len(set(stamps.tolist()) & set(publish_at)) if published is not None else 0
    runtime = {
        "status_counts": status_counts(status.tolist()),
        "inference_ms": summarize(inference[has_traj]),
        "end_to_end_ms": summarize(end_to_end[has_traj & np.isfinite(end_to_end)]),
        "context_age_ms": summarize(age[with_context]),
        "plan_rate": {"wall": rate_summary(receive / 1e9), "bag_time": rate_summary(stamps / 1e9)},
        "camera_rate_bag_time": rate_summary(published.stamp_ns / 1e9) if published is not None else None,
        "context": {
            "count": int(len(contexts.seq)),
            "model_id": contexts.model_id,
            "rate_wall": rate_summary(contexts.receive_ns / 1e9),
            "rate_bag_time": rate_summary(np.unique(contexts.stamp_ns) / 1e9),
            "compute_ms": summarize(contexts.compute_ms),
        },
        "backend": plans.backend,
    }
    metrics = {
        "conventions": CONVENTION_TEXT,
        "frames": {
            "camera_frames_published": camera_frames,
            "plans": n,
            "plans_for_published_frames": planned,
            "coverage": planned / camera_frames if camera_frames else math.nan,
            "plans_with_trajectory": int(has_traj.sum()),
            "scored_l2": int(scored.sum()),
            "without_future": int((has_traj & ~has_gt).sum()),
        },
        "l2_m": {**l2, "num_frames": int(scored.sum())},
        "collision_pct": collision_metrics,
        "meta_actions": meta_metrics,
        "runtime": runtime,
    }
    table = FrameTable(
        t_s=(stamps - reference_ns) / 1e9, status=status, l2=per_step, gt_xy=gt, pred_xy=pred, paths=paths,
        collision=collision, gt_collides=gt_collides, labels=labels, decisions=decisions,
        inference_ms=inference, end_to_end_ms=end_to_end, context_age_ms=np.where(with_context, age, np.nan),
        agents_now=agents_now, reference_ns=reference_ns,
    )
    return metrics, table


def label_thresholds() -> Dict[str, object]:
    """The meta-action labeling rules as numbers (documented in eval/meta_actions.py)."""
    return {
        "window_s": ma.WINDOW_S,
        "windows_start_s": list(ma.WINDOW_STARTS_S),
        "stop_speed_mps": ma.STOP_SPEED_MPS,
        "accelerate_decelerate_mps2": ma.ACCEL_MPS2,
        "slight_turn_deg": math.degrees(ma.SLIGHT_TURN_RAD),
        "turn_deg": math.degrees(ma.TURN_RAD),
        "slight_lateral_offset_m": ma.SLIGHT_LATERAL_M,
        "resample_dt_s": LABEL_DT_S,
    }


__all__ = ["AgentLog", "ContextLog", "EgoLog", "FrameTable", "PlanLog", "PublishedLog", "STATUS_NAMES",
           "boxes_in_ego_frame", "label_thresholds", "nearest_boxes", "score_run"]
