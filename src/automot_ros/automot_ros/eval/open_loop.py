"""Open-loop planning metrics, nuScenes style: L2 error and collision rate at 1 s, 2 s, 3 s.

Definitions: DESIGN.md section 5. The literature uses two conventions that differ by
about a factor of two at 3 s, so every result names its convention:

- "stp3": the value at t is the mean of the per-step values over all steps up to t
  (steps 1-2, 1-4, 1-6 for 1 s, 2 s, 3 s). AutoMoT's published 0.32 m L2 is stp3.
- "uniad": the value at t is the per-step value at step 2, 4, 6.

"avg" is the mean of the three horizons. Per-frame values are averaged over frames.
All positions are in the ego frame at the plan's time (REP-103: x forward, y left, meters);
boxes are (cx, cy, length, width, yaw) in that frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from automot_ros.data.ego import EgoState

STEP_S = 0.5
NUM_STEPS = 6
# Times of the 6 planned waypoints after the plan's stamp: 0.5, 1.0, ... 3.0 s.
FUTURE_TIMES_S = tuple(STEP_S * (k + 1) for k in range(NUM_STEPS))
# Horizon name -> number of 0.5 s steps it covers.
HORIZON_STEPS = {"1s": 2, "2s": 4, "3s": 6}
CONVENTIONS = ("stp3", "uniad")

# Ego box used for collision checks (the nuScenes ego vehicle, as in ST-P3 and UniAD).
EGO_LENGTH_M = 4.084
EGO_WIDTH_M = 1.85
# Below this displacement the direction between two waypoints is noise: keep the heading.
MIN_HEADING_STEP_M = 1e-3


def wrap_angle(angle_rad):
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(angle_rad, dtype=float) + math.pi) % (2.0 * math.pi) - math.pi


def l2_errors(pred_xy: np.ndarray, gt_xy: np.ndarray) -> np.ndarray:
    """Per-step L2 distance [N, 6] between predicted and ground-truth waypoints [N, 6, 2]."""
    pred_xy = np.asarray(pred_xy, dtype=float)
    gt_xy = np.asarray(gt_xy, dtype=float)
    if pred_xy.shape != gt_xy.shape or pred_xy.shape[1:] != (NUM_STEPS, 2):
        raise ValueError(f"expected two [N, {NUM_STEPS}, 2] arrays, got {pred_xy.shape} and {gt_xy.shape}")
    return np.linalg.norm(pred_xy - gt_xy, axis=-1)


def _per_frame_at_horizons(per_step: np.ndarray, convention: str) -> Dict[str, np.ndarray]:
    """Each frame's value [N] at "1s", "2s", "3s" from per-step values [N, 6]."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if convention == "stp3":
        return {name: per_step[:, :steps].mean(1) for name, steps in HORIZON_STEPS.items()}
    return {name: per_step[:, steps - 1] for name, steps in HORIZON_STEPS.items()}


def _at_horizons(per_step: np.ndarray, convention: str, valid: np.ndarray) -> Dict[str, float]:
    """Reduce per-step values [N, 6] of the valid frames to {"1s", "2s", "3s", "avg"}."""
    per_frame = _per_frame_at_horizons(per_step[valid], convention)
    if not valid.any():
        result = {name: math.nan for name in HORIZON_STEPS}
    else:
        result = {name: float(values.mean()) for name, values in per_frame.items()}
    result["avg"] = float(np.mean([result[name] for name in HORIZON_STEPS]))
    return result


def _frame_mask(per_step: np.ndarray, valid: Optional[np.ndarray]) -> np.ndarray:
    """Frames to score [N]: the given mask, or by default those without a NaN step."""
    if valid is None:
        return np.isfinite(per_step).all(axis=1)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != per_step.shape[:1]:
        raise ValueError(f"valid must have shape {per_step.shape[:1]}, got {valid.shape}")
    if not np.isfinite(per_step[valid]).all():
        raise ValueError("a frame marked valid has a non-finite value")
    return valid


def l2_at_horizons(
    per_step_l2: np.ndarray, convention: str, valid: Optional[np.ndarray] = None
) -> Dict[str, float]:
    """L2 [m] at 1 s, 2 s, 3 s and their mean ("avg"), averaged over frames.

    per_step_l2: [N, 6] from l2_errors. valid: [N] bool, frames to score; by default every
    frame whose ground-truth future is complete (no NaN step). Values are NaN with no frame.
    """
    per_step_l2 = np.asarray(per_step_l2, dtype=float)
    if per_step_l2.ndim != 2 or per_step_l2.shape[1] != NUM_STEPS:
        raise ValueError(f"expected [N, {NUM_STEPS}] per-step L2, got {per_step_l2.shape}")
    return _at_horizons(per_step_l2, convention, _frame_mask(per_step_l2, valid))


# The plan's path (the points the controller steers by) is scored at these arc lengths.
PATH_CHECK_M = (5.0, 10.0, 20.0)
# A driven path that ends at least this far to the side is a turn (for the turn error).
TURN_OFFSET_M = 5.0


def path_scores(pred_path: np.ndarray, gt_path: np.ndarray, spacing_m: float = 1.0) -> Dict[str, object]:
    """Scores of planned paths [N, P, 2] against the driven paths [N, P, 2] (points at
    spacing_m, 2 spacing_m, ... along each; ego frame, y left).

    "l2_m": L2 [m] at each of PATH_CHECK_M within the path ("5m", "10m", "20m") and over
    all its points ("avg"). "turn_lateral_m": in the frames whose driven path ends at
    least TURN_OFFSET_M to one side, the planned end point's lateral error toward that
    side, averaged (negative: the plan turns less than the expert drove, which takes a
    path-following car wide of the lane), with their count "turn_frames".
    """
    pred_path = np.asarray(pred_path, dtype=float)
    gt_path = np.asarray(gt_path, dtype=float)
    if pred_path.shape != gt_path.shape or pred_path.ndim != 3 or pred_path.shape[2] != 2:
        raise ValueError(f"expected two [N, P, 2] paths, got {pred_path.shape} and {gt_path.shape}")
    per_point = np.linalg.norm(pred_path - gt_path, axis=-1)
    points = pred_path.shape[1]
    l2 = {f"{d:g}m": float(per_point[:, int(round(d / spacing_m)) - 1].mean())
          for d in PATH_CHECK_M if round(d / spacing_m) <= points}
    l2["avg"] = float(per_point.mean())
    side = np.sign(gt_path[:, -1, 1])
    turns = np.abs(gt_path[:, -1, 1]) >= TURN_OFFSET_M
    toward = side[turns] * (pred_path[turns, -1, 1] - gt_path[turns, -1, 1])
    return {"l2_m": l2, "turn_lateral_m": float(toward.mean()) if turns.any() else math.nan,
            "turn_frames": int(turns.sum())}


def future_in_ego_frame(
    poses: np.ndarray,
    stamps_s: np.ndarray,
    t0_s: float,
    horizons_s: Sequence[float] = FUTURE_TIMES_S,
) -> Optional[np.ndarray]:
    """Ground-truth future ego positions [K, 2] in the ego frame at t0, rebuilt from odometry.

    poses: [M, 3] (x, y, yaw) in the odometry frame at stamps_s [M] (strictly increasing).
    Poses are interpolated at t0 and t0 + horizons_s: linearly in position, along the
    shortest arc in yaw (so +179 deg -> -179 deg passes through 180, not through 0).
    Returns None when the log does not cover [t0, t0 + max(horizons_s)].
    """
    poses = np.asarray(poses, dtype=float)
    stamps_s = np.asarray(stamps_s, dtype=float)
    if poses.ndim != 2 or poses.shape[1] != 3 or stamps_s.shape != poses.shape[:1]:
        raise ValueError(f"expected poses [M, 3] and stamps [M], got {poses.shape} and {stamps_s.shape}")
    if np.any(np.diff(stamps_s) <= 0.0):
        raise ValueError("odometry stamps must be strictly increasing")
    query_s = t0_s + np.concatenate([[0.0], np.asarray(horizons_s, dtype=float)])
    if len(stamps_s) < 2 or query_s.min() < stamps_s[0] or query_s.max() > stamps_s[-1]:
        return None
    # Interval [stamps[i], stamps[i + 1]] holding each query time; the last stamp maps to
    # the last interval with weight 1.
    i = np.clip(np.searchsorted(stamps_s, query_s, side="right") - 1, 0, len(stamps_s) - 2)
    w = (query_s - stamps_s[i]) / (stamps_s[i + 1] - stamps_s[i])
    xy = poses[i, :2] + w[:, None] * (poses[i + 1, :2] - poses[i, :2])
    yaw0 = poses[i[0], 2] + w[0] * wrap_angle(poses[i[0] + 1, 2] - poses[i[0], 2])
    # Only the pose at t0 defines the frame; the stamp and speed are not used.
    ego0 = EgoState(stamp_ns=round(t0_s * 1e9), x=float(xy[0, 0]), y=float(xy[0, 1]), yaw=float(yaw0), speed_mps=0.0)
    return ego0.to_ego_frame(xy[1:])


def ego_boxes_from_waypoints(xy: np.ndarray, start_heading: float = 0.0) -> np.ndarray:
    """Ego boxes [K, 5] (cx, cy, length, width, yaw) centered at waypoints xy [K, 2].

    The heading of box k points from waypoint k-1 to waypoint k (from the origin, where the
    ego is at the plan's time, for k = 0). A step shorter than MIN_HEADING_STEP_M (standing
    still) keeps the previous heading, start_heading before the first real step.
    """
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"expected waypoints [K, 2], got {xy.shape}")
    headings = np.empty(len(xy))
    heading, previous = start_heading, np.zeros(2)
    for k, point in enumerate(xy):
        step = point - previous
        if math.hypot(step[0], step[1]) >= MIN_HEADING_STEP_M:
            heading = math.atan2(step[1], step[0])
        headings[k] = heading
        previous = point
    size = np.broadcast_to([EGO_LENGTH_M, EGO_WIDTH_M], (len(xy), 2))
    return np.concatenate([xy, size, headings[:, None]], axis=1)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners [..., 4, 2] (counter-clockwise) of boxes [..., 5] (cx, cy, length, width, yaw)."""
    boxes = np.asarray(boxes, dtype=float)
    c, s = np.cos(boxes[..., 4]), np.sin(boxes[..., 4])
    half_l, half_w = boxes[..., 2] / 2.0, boxes[..., 3] / 2.0
    signs = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    local_x = signs[:, 0] * half_l[..., None]  # [..., 4]
    local_y = signs[:, 1] * half_w[..., None]
    x = boxes[..., 0:1] + c[..., None] * local_x - s[..., None] * local_y
    y = boxes[..., 1:2] + s[..., None] * local_x + c[..., None] * local_y
    return np.stack([x, y], axis=-1)


def boxes_overlap(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Whether oriented boxes [..., 5] overlap (broadcast), by the separating axis theorem.

    Two convex polygons are disjoint iff their projections are disjoint on some edge
    normal; for rectangles those are the two axes of each box. Boxes that only touch
    (zero overlap area) do not overlap.
    """
    boxes_a, boxes_b = np.broadcast_arrays(np.asarray(boxes_a, dtype=float), np.asarray(boxes_b, dtype=float))
    corners_a, corners_b = box_corners(boxes_a), box_corners(boxes_b)
    yaws = np.stack([boxes_a[..., 4], boxes_b[..., 4]], axis=-1)  # [..., 2]
    c, s = np.cos(yaws), np.sin(yaws)
    # Each box's length and width axes: [..., 4, 2].
    axes = np.concatenate([np.stack([c, s], axis=-1), np.stack([-s, c], axis=-1)], axis=-2)
    proj_a = np.einsum("...ak,...ck->...ac", axes, corners_a)  # [..., 4 axes, 4 corners]
    proj_b = np.einsum("...ak,...ck->...ac", axes, corners_b)
    separated = (proj_a.max(-1) <= proj_b.min(-1)) | (proj_b.max(-1) <= proj_a.min(-1))
    return ~separated.any(-1)


def collision_flags(ego_boxes: np.ndarray, agent_boxes_per_step: Sequence[np.ndarray]) -> np.ndarray:
    """Per-step collision [K] of ego boxes [K, 5] with the agent boxes [A_k, 5] of each step."""
    if len(agent_boxes_per_step) != len(ego_boxes):
        raise ValueError(f"need agent boxes for {len(ego_boxes)} steps, got {len(agent_boxes_per_step)}")
    return np.array(
        [
            bool(boxes_overlap(ego, np.asarray(agents, dtype=float).reshape(-1, 5)).any())
            for ego, agents in zip(ego_boxes, agent_boxes_per_step)
        ],
        dtype=bool,
    )


@dataclass(frozen=True)
class CollisionHits:
    """Per-step collisions of a policy's planned ego boxes with the ground-truth agents.

    per_step [N, 6]: 1.0 where the planned box at that step overlaps an agent box;
    scored [N]: frames scored (a complete ground-truth future and an expert clear of every
    agent); excluded [N]: frames left out because the expert's own boxes hit an agent.
    """

    per_step: np.ndarray
    scored: np.ndarray
    excluded: np.ndarray

    def at_horizons(self, convention: str) -> Dict[str, float]:
        """Collision rate [%] at 1 s, 2 s, 3 s and "avg", plus "num_frames" and "num_excluded"."""
        result = _at_horizons(100.0 * self.per_step, convention, self.scored)
        result["num_frames"] = int(self.scored.sum())
        result["num_excluded"] = int(self.excluded.sum())
        return result

    def frame_scores(self, convention: str, horizon: str = "avg") -> np.ndarray:
        """Each frame's share [%] of the rate at ``horizon`` ("1s", "2s", "3s" or "avg") [N]
        (NaN where not scored): the mean of the scored frames' values is
        ``at_horizons(convention)[horizon]``."""
        per_horizon = _per_frame_at_horizons(100.0 * self.per_step, convention)
        per_horizon["avg"] = np.mean(list(per_horizon.values()), axis=0)
        if horizon not in per_horizon:
            raise ValueError(f"horizon must be one of {tuple(per_horizon)}, got {horizon!r}")
        return np.where(self.scored, per_horizon[horizon], np.nan)


def collision_hits(
    pred_xy: np.ndarray,
    agent_boxes_per_step: Sequence[Sequence[np.ndarray]],
    gt_xy: np.ndarray,
    valid: Optional[np.ndarray] = None,
) -> CollisionHits:
    """Per-step collisions of planned waypoints, reduced by ``CollisionHits.at_horizons``.

    pred_xy, gt_xy: [N, 6, 2] predicted and ground-truth future ego positions.
    agent_boxes_per_step: per frame, per step, the ground-truth agent boxes [A, 5] at that
    step's time, in the same ego frame (A may differ between steps and be 0).
    valid: [N] frames to score; by default those with a complete ground-truth future.
    The per-step collision indicator of the predicted ego boxes goes through the same
    stp3/uniad reduction as L2. A frame whose ground-truth ego boxes themselves hit an agent
    at any step is excluded (annotation noise, or an agent that hit the ego: no plan could
    avoid it).
    """
    pred_xy = np.asarray(pred_xy, dtype=float)
    gt_xy = np.asarray(gt_xy, dtype=float)
    if pred_xy.shape != gt_xy.shape or pred_xy.shape[1:] != (NUM_STEPS, 2):
        raise ValueError(f"expected two [N, {NUM_STEPS}, 2] arrays, got {pred_xy.shape} and {gt_xy.shape}")
    if len(agent_boxes_per_step) != len(pred_xy):
        raise ValueError(f"need agent boxes for {len(pred_xy)} frames, got {len(agent_boxes_per_step)}")
    scored = _frame_mask(gt_xy.reshape(-1, NUM_STEPS * 2), valid)
    if not np.isfinite(pred_xy[scored]).all():
        raise ValueError("a scored frame has a non-finite predicted waypoint")
    pred_hits = np.zeros((len(pred_xy), NUM_STEPS))
    excluded = np.zeros(len(pred_xy), dtype=bool)
    for n in np.flatnonzero(scored):
        agents = agent_boxes_per_step[n]
        excluded[n] = collision_flags(ego_boxes_from_waypoints(gt_xy[n]), agents).any()
        if not excluded[n]:
            pred_hits[n] = collision_flags(ego_boxes_from_waypoints(pred_xy[n]), agents)
    return CollisionHits(per_step=pred_hits, scored=scored & ~excluded, excluded=excluded)


def episode_bootstrap_difference(scores_a: np.ndarray, scores_b: np.ndarray, episode: np.ndarray,
                                 resamples: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Paired difference of two policies' mean per-frame scores [N] (NaN: not scored, the
    same frames for both) with a 95 % interval from resampling whole episodes (ids [N]):
    frames of one episode are far from independent, and a few events decide collision rates.
    Returns {"difference", "ci95_low", "ci95_high", "episodes"}."""
    scored = np.isfinite(scores_a) & np.isfinite(scores_b)
    ids, group = np.unique(np.asarray(episode)[scored], return_inverse=True)
    if len(ids) == 0:
        return {"difference": math.nan, "ci95_low": math.nan, "ci95_high": math.nan, "episodes": 0}
    sums = np.stack([np.bincount(group, weights=s[scored], minlength=len(ids)) for s in (scores_a, scores_b)])
    counts = np.bincount(group, minlength=len(ids))
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    totals = sums[:, draws].sum(-1) / counts[draws].sum(-1)  # [2, resamples]
    low, high = np.percentile(totals[0] - totals[1], [2.5, 97.5])
    return {"difference": float((sums[0].sum() - sums[1].sum()) / counts.sum()),
            "ci95_low": float(low), "ci95_high": float(high), "episodes": int(len(ids))}
