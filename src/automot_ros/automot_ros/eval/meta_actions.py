"""Meta-action (driving decision) labels from a ground-truth future, and their accuracy.

AutoMoT predicts a (lateral, longitudinal) decision for now, +1 s and +2 s (DESIGN.md
section 1). Here the label for each of those is derived from the ego's own future motion
over a 1 s window starting at that time: [0, 1] s, [1, 2] s, [2, 3] s. Class indices equal
the automot_msgs/MetaAction constants (this module must not import ROS).
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from automot_ros.data.decisions import (  # noqa: F401  (re-exported: the label vocabulary)
    DECISION_HORIZONS_S,
    HORIZON_NAMES,
    LAT_LEFT,
    LAT_RIGHT,
    LAT_SLIGHT_LEFT,
    LAT_SLIGHT_RIGHT,
    LAT_STRAIGHT,
    LATERAL_NAMES,
    LON_ACCELERATE,
    LON_DECELERATE,
    LON_KEEP,
    LON_STOP,
    LONGITUDINAL_NAMES,
)
from automot_ros.eval.open_loop import wrap_angle

WINDOW_S = 1.0
# Each decision's window starts at its horizon [s after the plan's stamp].
WINDOW_STARTS_S = DECISION_HORIZONS_S

# Stop: speed at the window's end below a slow walk. Standing still reads 0-0.2 m/s from
# wheel odometry and GNSS jitter; creeping in a queue above 0.5 m/s is already "moving".
# Below this speed the direction of motion is noise too, so the heading is held.
STOP_SPEED_MPS = 0.5
# Accelerate / decelerate: mean acceleration over the window beyond +/-0.5 m/s^2. Cruise
# and lane-keeping speed drift stays well under it (< 0.5 m/s per second); comfortable
# intentional speed changes are 0.7-2 m/s^2, so they fall clearly on the other side.
ACCEL_MPS2 = 0.5
# Slight turn: heading change over the window of at least 5 deg. Lane keeping on straight
# roads and highway curves (R > 500 m at 25 m/s: < 3 deg/s) stays below it.
SLIGHT_TURN_RAD = math.radians(5.0)
# Full turn: at least 20 deg in the window: the body of an intersection turn (90 deg in
# 3-6 s) and roundabouts, not lane changes or bends (5-15 deg/s).
TURN_RAD = math.radians(20.0)
# Slight turn also when the window's end lies at least 0.5 m to the side of the window's
# start pose: a lane change (3.5 m in 3-5 s, 0.7-1.2 m per second mid-maneuver) can leave
# the heading nearly unchanged between the window's ends. Lane keeping drifts < 0.3 m/s.
SLIGHT_LATERAL_M = 0.5


def _lateral_class(heading_change_rad: float, lateral_offset_m: float) -> int:
    if abs(heading_change_rad) >= TURN_RAD:
        return LAT_LEFT if heading_change_rad > 0 else LAT_RIGHT
    if abs(heading_change_rad) >= SLIGHT_TURN_RAD:
        return LAT_SLIGHT_LEFT if heading_change_rad > 0 else LAT_SLIGHT_RIGHT
    if abs(lateral_offset_m) >= SLIGHT_LATERAL_M:
        return LAT_SLIGHT_LEFT if lateral_offset_m > 0 else LAT_SLIGHT_RIGHT
    return LAT_STRAIGHT


def _longitudinal_class(speed_start_mps: float, speed_end_mps: float) -> int:
    # Ending the window (nearly) standing is a stop, whether braking into it or waiting.
    if speed_end_mps < STOP_SPEED_MPS:
        return LON_STOP
    accel = (speed_end_mps - speed_start_mps) / WINDOW_S
    if accel > ACCEL_MPS2:
        return LON_ACCELERATE
    if accel < -ACCEL_MPS2:
        return LON_DECELERATE
    return LON_KEEP


def meta_action_labels(
    future_xy: np.ndarray, dt_s: float, speeds_mps: Optional[np.ndarray] = None
) -> np.ndarray:
    """Labels [3, 2] (lateral, longitudinal) for now, +1 s, +2 s from a future trajectory.

    future_xy: [K, 2] ego positions at dt_s, 2 dt_s, ... K dt_s in the ego frame at t = 0
    (where the ego is at the origin heading along +x), e.g. the 6 ground-truth waypoints at
    0.5 s or a denser odometry resampling; it must cover 3 s and 1 s must be a whole number
    of steps. speeds_mps: optional [K + 1] measured speeds at t = 0, dt_s, ... K dt_s
    (odometry twist); by default speeds come from the positions.

    Velocity at each sample is the central difference of the positions (one-sided at the
    ends, so the last sample lags dt_s / 2). Heading is its direction, 0 at t = 0 by the
    frame's definition, held while slower than STOP_SPEED_MPS. Per window: lateral class from
    the heading change and from the end's lateral offset in the start pose's frame;
    longitudinal class from the speeds at the window's start and end.
    """
    future_xy = np.asarray(future_xy, dtype=float)
    if future_xy.ndim != 2 or future_xy.shape[1] != 2:
        raise ValueError(f"expected future positions [K, 2], got {future_xy.shape}")
    steps_per_window = round(WINDOW_S / dt_s) if dt_s > 0 else 0
    if steps_per_window < 1 or abs(steps_per_window * dt_s - WINDOW_S) > 1e-6:
        raise ValueError(f"{WINDOW_S} s must be a whole number of {dt_s} s steps")
    needed = round((WINDOW_STARTS_S[-1] + WINDOW_S) / dt_s)
    if len(future_xy) < needed:
        raise ValueError(f"need {needed} future positions at {dt_s} s, got {len(future_xy)}")
    xy = np.concatenate([np.zeros((1, 2)), future_xy])  # [K + 1, 2] at t = 0, dt, ... K dt
    velocity = np.gradient(xy, dt_s, axis=0)
    motion_speed = np.linalg.norm(velocity, axis=1)
    if speeds_mps is None:
        speeds = motion_speed
    else:
        speeds = np.asarray(speeds_mps, dtype=float)
        if speeds.shape != (len(xy),):
            raise ValueError(f"expected speeds [{len(xy)}], got {speeds.shape}")
    headings = np.zeros(len(xy))
    for k in range(1, len(xy)):
        moving = motion_speed[k] >= STOP_SPEED_MPS
        headings[k] = math.atan2(velocity[k, 1], velocity[k, 0]) if moving else headings[k - 1]

    labels = np.empty((len(WINDOW_STARTS_S), 2), dtype=np.int64)
    for j, start_s in enumerate(WINDOW_STARTS_S):
        a = round(start_s / dt_s)
        b = a + steps_per_window
        heading_change = float(wrap_angle(headings[b] - headings[a]))
        offset = xy[b] - xy[a]
        lateral_offset = -math.sin(headings[a]) * offset[0] + math.cos(headings[a]) * offset[1]
        labels[j] = (_lateral_class(heading_change, lateral_offset), _longitudinal_class(speeds[a], speeds[b]))
    return labels


def _fraction(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else math.nan


def meta_action_accuracy(pred: np.ndarray, labels: np.ndarray) -> Dict[str, object]:
    """Accuracy in [0, 1] of predicted decisions pred [N, 3, 2] against labels [N, 3, 2].

    Last axis: (lateral, longitudinal). "joint" counts a decision right only when both
    classes are. Returns {"lateral", "longitudinal", "joint"} over all N x 3 decisions and
    "per_horizon": {"now" | "+1s" | "+2s": {"lateral", "longitudinal", "joint"}}.
    NaN where there is no decision.
    """
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    if pred.shape != labels.shape or pred.shape[1:] != (len(HORIZON_NAMES), 2):
        raise ValueError(f"expected two [N, {len(HORIZON_NAMES)}, 2] arrays, got {pred.shape} and {labels.shape}")
    correct = pred == labels  # [N, 3, 2]
    hits = {"lateral": correct[..., 0], "longitudinal": correct[..., 1], "joint": correct.all(axis=-1)}
    result: Dict[str, object] = {name: _fraction(mask) for name, mask in hits.items()}
    result["per_horizon"] = {
        horizon: {name: _fraction(mask[:, j]) for name, mask in hits.items()}
        for j, horizon in enumerate(HORIZON_NAMES)
    }
    return result
