"""Training samples from a recorded episode: targets derived from the ground-truth future.

An EpisodeLog is what the collector records at the camera rate (every frame: ego pose and
speed, lane, agent boxes; rendered images); ``build_samples`` turns it into samples once the
episode is over, because every target looks into the future:

- future_xy [6, 2]: ego positions 0.5, 1.0, ... 3.0 s ahead, in the ego frame at the
  sample's time (eval.open_loop.future_in_ego_frame on the logged poses);
- future_speed [6]: the ego's speed at those times;
- path_xy [20, 2]: the path the ego drives from the sample's time on, resampled by arc
  length at 1, 2, ... 20 m (ego frame); where the rest of the episode drives less than
  20 m it continues along the route ahead of the last pose, then straight on;
- labels [3, 2]: (lateral, longitudinal) meta-actions for now, +1 s, +2 s from
  eval.meta_actions.meta_action_labels on the dense future (every camera frame for 3 s,
  with the logged speeds); thresholds are documented there (stop < 0.5 m/s at a window's
  end, accelerate/decelerate beyond +/-0.5 m/s^2 mean over 1 s, slight turn >= 5 deg or
  >= 0.5 m sideways, turn >= 20 deg);
- target_points [2, 2]: the route 10 m and 20 m ahead (data.route.next_target_points; the
  UE instruction's; the dataset recomputes the AE's at its model's lookahead from the
  route), speed: the ego's speed (the model's navigation inputs);
- QA pairs (data.qa) from the ground truth at the sample's time and the labels.

A sample exists at every ``stride``-th frame that has a full frame history (4 frames 0.25 s
apart, the newest at the sample) and a full 3 s future in the episode. ``valid`` is False
for samples of an episode that ended in a failure (crash, out of road) whose 3 s future
comes within FAILURE_MARGIN_S of that end: the expert was already driving into it. It is
also False, and the sample has no QA pairs, where the frames its labels were driven over
(the 3 s future, or the 20 m path where that takes longer) include an action under a
recovery perturbation (EpisodeLog.perturbed; data.recovery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from automot_ros.data.ego import EgoState
from automot_ros.data.route import DEFAULT_LOOKAHEAD_M, next_target_points
from automot_ros.data.sensors import route_ahead
from automot_ros.eval.meta_actions import meta_action_labels
from automot_ros.eval.open_loop import FUTURE_TIMES_S, future_in_ego_frame
from automot_ros.sim.state import EgoPose

PATH_POINTS = 20
PATH_SPACING_M = 1.0
HISTORY_FRAMES = 4
HISTORY_INTERVAL_S = 0.25
HORIZON_S = FUTURE_TIMES_S[-1]  # 3 s
FAILURE_MARGIN_S = 2.0
FAILURES = ("crash_vehicle", "crash_object", "crash_sidewalk", "crash_building", "crash_human", "out_of_road")
# Agent row layout in EpisodeLog.agent_rows.
AGENT_FIELDS = ("id", "cx", "cy", "length", "width", "yaw", "speed", "height")


@dataclass
class EpisodeLog:
    """One episode at the camera rate (T frames, dt_s apart, frame k at t = k dt_s).

    ego [T, 4]: x, y, yaw, speed (world); lane [T, 2]: lane index (0 = leftmost) and lane
    count of the ego's road (-1, 0 when unknown); agent_rows [M, 8] (AGENT_FIELDS, world) with
    agent_offsets [T + 1]: frame k's agents are rows offsets[k]:offsets[k + 1]; route [R, 2];
    perturbed [T] bool or None: the action after frame k drove a recovery perturbation
    (data.recovery), so a future through it is no target.
    """

    seed: int
    dt_s: float
    ego: np.ndarray
    lane: np.ndarray
    agent_rows: np.ndarray
    agent_offsets: np.ndarray
    route: np.ndarray
    ego_size: Tuple[float, float] = (4.515, 1.852)
    outcome: Dict[str, object] = field(default_factory=dict)
    perturbed: Optional[np.ndarray] = None

    @property
    def num_frames(self) -> int:
        return len(self.ego)

    @property
    def stamps_s(self) -> np.ndarray:
        return np.arange(self.num_frames) * self.dt_s

    def ego_pose(self, k: int) -> EgoPose:
        x, y, yaw, speed = (float(v) for v in self.ego[k])
        return EgoPose(x, y, yaw, speed, self.ego_size[0], self.ego_size[1],
                       int(self.lane[k, 0]), int(self.lane[k, 1]))

    def target_points(self, k: int, lookahead_m: Sequence[float] = DEFAULT_LOOKAHEAD_M) -> np.ndarray:
        """The route at ``lookahead_m`` arc lengths ahead of frame k's ego, in its frame [K, 2]."""
        pose = self.ego_pose(k)
        ego = EgoState(stamp_ns=round(k * self.dt_s * 1e9), x=pose.x, y=pose.y, yaw=pose.yaw,
                       speed_mps=pose.speed_mps)
        return next_target_points(self.route, ego, tuple(lookahead_m))

    def agents(self, k: int) -> np.ndarray:
        """Frame k's agent rows [A, 8] (AGENT_FIELDS)."""
        return self.agent_rows[self.agent_offsets[k]:self.agent_offsets[k + 1]]

    def agent_boxes_ego(self, k: int, at: Optional[int] = None) -> np.ndarray:
        """Frame ``at``'s (default k) agent boxes [A, 5] in the ego frame of frame k."""
        rows = self.agents(k if at is None else at)
        return self.ego_pose(k).boxes_to_ego_frame(rows[:, [1, 2, 3, 4, 5]])

    def frames_per(self, seconds: float) -> int:
        n = round(seconds / self.dt_s)
        if n < 1 or abs(n * self.dt_s - seconds) > 1e-6:
            raise ValueError(f"{seconds} s is not a whole number of {self.dt_s} s frames")
        return n


def future_waypoints(log: EpisodeLog, k: int) -> Optional[np.ndarray]:
    """[6, 2] ego positions at +0.5 ... +3 s in frame k's ego frame, or None past the log's end."""
    return future_in_ego_frame(log.ego[:, :3], log.stamps_s, k * log.dt_s)


def _resample(polyline: np.ndarray, s: np.ndarray) -> np.ndarray:
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(seg)])
    return np.stack([np.interp(s, cumulative, polyline[:, i]) for i in range(2)], axis=1)


def driven_path(log: EpisodeLog, k: int, length_m: float = PATH_POINTS * PATH_SPACING_M,
                spacing_m: float = PATH_SPACING_M) -> np.ndarray:
    """[n, 2] points spacing, 2 spacing, ... length_m along the ego's path from frame k (ego
    frame at k): the logged positions, then the route ahead of the last pose, then straight."""
    pose = log.ego_pose(k)
    driven = log.ego[k:, :2]
    seg = np.linalg.norm(np.diff(driven, axis=0), axis=1)
    total = float(seg.sum())
    pieces = [driven]
    if total < length_m:
        last = log.ego_pose(log.num_frames - 1)
        rest = route_ahead(log.route, last)
        if len(rest) >= 2:
            pieces.append(rest)
        tail = np.concatenate(pieces)
        direction = tail[-1] - tail[-2] if len(tail) >= 2 and np.linalg.norm(tail[-1] - tail[-2]) > 1e-6 \
            else np.array([np.cos(last.yaw), np.sin(last.yaw)])
        direction = direction / np.linalg.norm(direction)
        pieces.append(tail[-1] + direction * (length_m + 1.0))
    polyline = np.concatenate([np.asarray(p).reshape(-1, 2) for p in pieces])
    keep = np.concatenate([[True], np.linalg.norm(np.diff(polyline, axis=0), axis=1) > 1e-9])
    polyline = polyline[keep]
    s = np.arange(1, int(round(length_m / spacing_m)) + 1) * spacing_m
    return pose.to_ego_frame(_resample(polyline, s))


def dense_future(log: EpisodeLog, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(positions [K, 2] at every frame over the next 3 s in frame k's ego frame, speeds [K + 1])."""
    n = log.frames_per(HORIZON_S)
    pose = log.ego_pose(k)
    return pose.to_ego_frame(log.ego[k + 1:k + n + 1, :2]), log.ego[k:k + n + 1, 3].copy()


def sample_labels(log: EpisodeLog, k: int) -> np.ndarray:
    xy, speeds = dense_future(log, k)
    return meta_action_labels(xy, log.dt_s, speeds)


def future_speeds(log: EpisodeLog, k: int) -> np.ndarray:
    return np.interp(k * log.dt_s + np.asarray(FUTURE_TIMES_S), log.stamps_s, log.ego[:, 3])


def sample_frames(log: EpisodeLog, stride: int) -> List[int]:
    """Frames that get a sample: every ``stride``-th with a full history and a full future."""
    first = (HISTORY_FRAMES - 1) * log.frames_per(HISTORY_INTERVAL_S)
    last = log.num_frames - 1 - log.frames_per(HORIZON_S)
    return list(range(first, last + 1, stride)) if last >= first else []


def history_frames(log: EpisodeLog, k: int) -> List[int]:
    step = log.frames_per(HISTORY_INTERVAL_S)
    return [k - step * i for i in reversed(range(HISTORY_FRAMES))]


def build_samples(log: EpisodeLog, stride: int = 5) -> Tuple[Dict[str, np.ndarray], List[dict]]:
    """(arrays with a leading sample axis, QA records) for every sample frame of the episode.

    Arrays: frame [N] (index into the episode's frames), history [N, 4] frame indices (oldest
    first), target_points [N, 2, 2], speed [N], future_xy [N, 6, 2], future_speed [N, 6],
    path_xy [N, 20, 2], labels [N, 3, 2] int64, valid [N] bool. QA records: dicts with
    sample (index into N), frame, kind, question, answer, fields (data.qa).
    """
    from automot_ros.data.qa import qa_pairs

    frames = sample_frames(log, stride)
    out = {name: [] for name in ("frame", "history", "target_points", "speed", "future_xy", "future_speed",
                                 "path_xy", "labels")}
    qa: List[dict] = []
    perturbed = perturbed_labels(log, frames)
    for n, k in enumerate(frames):
        pose = log.ego_pose(k)
        future = future_waypoints(log, k)
        labels = sample_labels(log, k)
        path = driven_path(log, k)
        out["frame"].append(k)
        out["history"].append(history_frames(log, k))
        out["target_points"].append(log.target_points(k))
        out["speed"].append(pose.speed_mps)
        out["future_xy"].append(future)
        out["future_speed"].append(future_speeds(log, k))
        out["path_xy"].append(path)
        out["labels"].append(labels)
        if perturbed[n]:
            continue  # the labels hold the push off the lane: no answer should describe it
        corridor = driven_path(log, k, length_m=60.0, spacing_m=2.0)
        for record in qa_pairs(pose, log.agents(k), log.route, labels, corridor,
                               lane_change=_lane_change(log, k)):
            qa.append({"sample": n, "frame": k, **record})
    dtypes = {"frame": np.int64, "history": np.int64, "labels": np.int64}
    arrays = {name: np.asarray(values, dtype=dtypes.get(name, np.float32)) for name, values in out.items()}
    failed = any(bool(log.outcome.get(key)) for key in FAILURES)
    last_ok = (log.num_frames - 1) * log.dt_s - HORIZON_S - FAILURE_MARGIN_S
    arrays["valid"] = np.array([not failed or k * log.dt_s <= last_ok + 1e-9 for k in frames], dtype=bool) \
        & ~perturbed
    shapes = {"history": (HISTORY_FRAMES,), "target_points": (2, 2), "future_xy": (len(FUTURE_TIMES_S), 2),
              "future_speed": (len(FUTURE_TIMES_S),), "path_xy": (PATH_POINTS, 2), "labels": (3, 2)}
    for name, shape in shapes.items():
        arrays[name] = arrays[name].reshape((len(frames),) + shape)
    return arrays, qa


def perturbed_labels(log: EpisodeLog, frames: Sequence[int]) -> np.ndarray:
    """[N] bool: the labels of the sample at frame k = frames[n] were driven (in part) under a
    recovery perturbation: by the action after one of the frames k ... m - 1, where frame m
    ends the 3 s future or, if later, the 20 m path (all False without EpisodeLog.perturbed)."""
    if log.perturbed is None:
        return np.zeros(len(frames), dtype=bool)
    perturbed = np.asarray(log.perturbed, dtype=bool)
    if perturbed.shape != (log.num_frames,):
        raise ValueError(f"perturbed has shape {perturbed.shape}, the episode {log.num_frames} frames")
    driven = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(log.ego[:, :2], axis=0), axis=1))])
    horizon = log.frames_per(HORIZON_S)
    out = np.zeros(len(frames), dtype=bool)
    for n, k in enumerate(frames):
        path_end = int(np.searchsorted(driven, driven[k] + PATH_POINTS * PATH_SPACING_M))
        out[n] = perturbed[k:max(k + horizon, path_end)].any()
    return out


def _lane_change(log: EpisodeLog, k: int) -> int:
    """+1 / -1 when the ego moves to a lane on its left / right within the next second on
    the same road (lane index decreases to the left), else 0."""
    n = log.frames_per(1.0)
    lanes = log.lane[k:k + n + 1]
    start = lanes[0]
    for index, count in lanes[1:]:
        if index < 0 or start[0] < 0 or count != start[1]:
            continue
        if index != start[0]:
            return 1 if index < start[0] else -1
    return 0


def collate_agent_rows(per_frame: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame agent rows [A_k, 8] -> (rows [M, 8], offsets [T + 1])."""
    offsets = np.zeros(len(per_frame) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in per_frame])
    rows = np.concatenate([np.asarray(r, dtype=np.float64).reshape(-1, len(AGENT_FIELDS)) for r in per_frame]) \
        if per_frame else np.zeros((0, len(AGENT_FIELDS)))
    return rows, offsets
