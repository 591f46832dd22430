"""Closed-loop metrics (no ROS, no simulator): per-episode logs, outcome and comfort metrics,
per-policy summaries.

An ``EpisodeLog`` is what one closed-loop episode leaves behind (the simulator bridge and the
baselines write the same format, one ``.npz`` per episode): the ego state at every simulator
step, the control applied, the plan used (status, Action Expert time, context age), the UE
contexts (prefill time) and how the episode ended.

Outcome (per episode; MetaDrive ends an episode at its first collision or when it leaves
the road, so each happens at most once):
- success: the destination was reached with no collision and without leaving the road
  (Bench2Drive: a route completed with no infraction; there is no minimum-speed rule here);
- route completion: 1 when arrived, else MetaDrive's travelled / total route length, in [0, 1];
- collision: crash_vehicle, crash_object, crash_building or crash_human; off-road:
  out_of_road or crash_sidewalk (MetaDrive sets both when the ego mounts the curb); timeout: the time limit; blocked: the ego moved less than BLOCKED_MIN_M over
  the last ``stuck_seconds`` (the run's setting), which ends the episode early.

Route offset: the ego's signed lateral distance from the route (the lane centers it follows;
left of the route's direction +), its mean magnitude over the episode and its mean over the
route's last ROUTE_END_M: MetaDrive counts an arrival only with the ego inside the final
road's lanes of its direction, so a car that drifts a lane toward the center line there
misses the arrival and leaves the road where it ends.

Comfort (DESIGN.md section 5, after Bench2Drive): the ego trajectory is resampled to
COMFORT_RATE_HZ (10 Hz, Bench2Drive's rate); Savitzky-Golay filters (window 7, order 2)
over the whole episode give the speed (|d(x, y)/dt|), the longitudinal acceleration (its
derivative), the yaw rate and yaw acceleration (1st and 2nd derivative of the unwrapped
heading), the lateral acceleration (speed x yaw rate), the acceleration's magnitude, the
jerk (derivative of the filtered magnitude) and the longitudinal jerk (derivative of the
filtered longitudinal acceleration). The episode is cut into consecutive, non-overlapping
windows of COMFORT_WINDOW frames (20 = 2 s; a shorter tail is dropped; an episode shorter
than one window is one window); a window is comfortable when every value of every signal
lies strictly inside its bound (COMFORT_BOUNDS). Comfort = comfortable windows / windows.
Unlike Bench2Drive's script, which filters each window on its own, the filters run over the
episode (a window boundary is not a filter edge), and the accelerations come from the pose
(no accelerometer): speed and yaw rate, which do not depend on the frame they are seen in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from automot_ros.data.route import project_onto_route
from automot_ros.eval.runtime_stats import STATUS_NAMES, summarize

COMFORT_RATE_HZ = 10.0
COMFORT_WINDOW = 20
SAVGOL_WINDOW = 7
SAVGOL_ORDER = 2
# (low, high), strict: a value must lie inside.
COMFORT_BOUNDS = {
    "lon_accel": (-4.05, 2.40),  # m/s^2
    "lat_accel": (-4.89, 4.89),  # m/s^2
    "jerk": (-8.37, 8.37),  # m/s^3 (of the acceleration's magnitude)
    "lon_jerk": (-4.13, 4.13),  # m/s^3
    "yaw_accel": (-1.93, 1.93),  # rad/s^2
    "yaw_rate": (-0.95, 0.95),  # rad/s
}
COLLISION_KEYS = ("crash_vehicle", "crash_object", "crash_building", "crash_human")
ROUTE_END_M = 30.0  # the route's last meters, over which the end offset is averaged
BLOCKED_MIN_M = 1.0
RESULTS = ("arrived", "crash", "out_of_road", "timeout", "blocked", "interrupted")
NO_PLAN = -1  # plan_status of a step without a plan (the expert, or none arrived)


# --------------------------------------------------------------------------- the log


@dataclass
class EpisodeLog:
    """One closed-loop episode. T steps of dt_s; C contexts. NaN where a value does not apply."""

    policy: str
    seed: int
    dt_s: float
    t_s: np.ndarray  # [T] simulator time from the episode's start
    ego: np.ndarray  # [T, 4] x, y, yaw, speed (world frame, m, rad, m/s)
    route: np.ndarray  # [R, 2] world
    result: str  # one of RESULTS
    outcome: Dict[str, object] = field(default_factory=dict)  # the simulator's flags at the end
    control: Optional[np.ndarray] = None  # [T, 2] steering, throttle_brake applied after step k
    plan_status: Optional[np.ndarray] = None  # [T] DrivingPlan status used at step k, NO_PLAN
    plan_ms: Optional[np.ndarray] = None  # [T] Action Expert inference time of that plan [ms]
    context_age_ms: Optional[np.ndarray] = None  # [T] its context age [ms] (sim time)
    plan_wait_ms: Optional[np.ndarray] = None  # [T] wall time from publishing the frame to its plan [ms]
    plan_waypoints: Optional[np.ndarray] = None  # [T, 6, 2] ego frame at step k
    plan_path: Optional[np.ndarray] = None  # [T, P, 2]
    control_mode: Optional[np.ndarray] = None  # [T] str: the controller's mode
    context_stamp_s: Optional[np.ndarray] = None  # [C] newest frame of each context (episode time)
    context_compute_ms: Optional[np.ndarray] = None  # [C] UE prefill time
    step_wall_ms: Optional[np.ndarray] = None  # [T] wall time per step (all of it)
    agents_final: Optional[np.ndarray] = None  # [A, 5] agent boxes at the last step (world)
    road_points: Optional[np.ndarray] = None  # lane surfaces (sim.state.RoadMap packing), for plots
    road_offsets: Optional[np.ndarray] = None
    info: Dict[str, object] = field(default_factory=dict)  # mode, model, timeouts, wall_s, ...

    def __post_init__(self):
        n = len(self.t_s)
        nan = np.full(n, np.nan)
        defaults = {"control": np.full((n, 2), np.nan), "plan_status": np.full(n, NO_PLAN, dtype=np.int64),
                    "plan_ms": nan, "context_age_ms": nan, "plan_wait_ms": nan,
                    "plan_waypoints": np.full((n, 6, 2), np.nan), "plan_path": np.full((n, 20, 2), np.nan),
                    "control_mode": np.array([""] * n), "context_stamp_s": np.zeros(0),
                    "context_compute_ms": np.zeros(0), "step_wall_ms": nan, "agents_final": np.zeros((0, 5))}
        for name, default in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, default.copy())
        if self.result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}, got {self.result!r}")

    @property
    def num_steps(self) -> int:
        return len(self.t_s)

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0]) if self.num_steps else 0.0

    @property
    def distance_m(self) -> float:
        return float(np.linalg.norm(np.diff(self.ego[:, :2], axis=0), axis=1).sum()) if self.num_steps > 1 else 0.0

    _ARRAYS = ("t_s", "ego", "route", "control", "plan_status", "plan_ms", "context_age_ms", "plan_wait_ms",
               "plan_waypoints", "plan_path", "context_stamp_s", "context_compute_ms", "step_wall_ms",
               "agents_final")

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        if self.road_points is not None:
            arrays.update(road_points=self.road_points, road_offsets=self.road_offsets)
        meta = {"policy": self.policy, "seed": int(self.seed), "dt_s": float(self.dt_s), "result": self.result,
                "outcome": self.outcome, "info": self.info}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, meta_json=np.array(json.dumps(_plain(meta))),
                            control_mode=np.asarray(self.control_mode, dtype="U16"), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "EpisodeLog":
        with np.load(path) as z:
            meta = json.loads(str(z["meta_json"]))
            arrays = {k: z[k] for k in z.files if k != "meta_json"}
        return cls(policy=meta["policy"], seed=meta["seed"], dt_s=meta["dt_s"], result=meta["result"],
                   outcome=meta["outcome"], info=meta["info"], **arrays)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def blocked(ego_xy: np.ndarray, dt_s: float, stuck_seconds: float) -> bool:
    """True when the last ``stuck_seconds`` of positions [T, 2] span less than BLOCKED_MIN_M."""
    n = int(round(stuck_seconds / dt_s))
    if stuck_seconds <= 0 or len(ego_xy) <= n:
        return False
    recent = np.asarray(ego_xy[-n - 1:], dtype=np.float64)
    return bool(np.linalg.norm(recent - recent[-1], axis=1).max() < BLOCKED_MIN_M)


# --------------------------------------------------------------------------- comfort


def comfort_signals(xy: np.ndarray, yaw: np.ndarray, dt_s: float) -> Dict[str, np.ndarray]:
    """The six comfort signals (COMFORT_BOUNDS' keys) from positions [N, 2] and headings [N]
    sampled every dt_s (N >= 3), Savitzky-Golay filtered (module docstring)."""
    from scipy.signal import savgol_filter

    xy = np.asarray(xy, dtype=np.float64)
    yaw = np.unwrap(np.asarray(yaw, dtype=np.float64))
    n = len(yaw)
    window = min(SAVGOL_WINDOW, n if n % 2 else n - 1)
    order = min(SAVGOL_ORDER, window - 1)

    def sg(values, deriv=0):
        return savgol_filter(values, window_length=window, polyorder=order, deriv=deriv, delta=dt_s, axis=0)

    speed = np.linalg.norm(sg(xy, deriv=1), axis=1)
    lon = sg(speed, deriv=1)
    yaw_rate = sg(yaw, deriv=1)
    lat = speed * yaw_rate
    magnitude = np.hypot(lon, lat)
    return {
        "lon_accel": lon,
        "lat_accel": lat,
        "jerk": sg(sg(magnitude), deriv=1),
        "lon_jerk": sg(sg(lon), deriv=1),
        "yaw_accel": sg(yaw, deriv=2),
        "yaw_rate": yaw_rate,
    }


def comfort_windows(t_s: np.ndarray, xy: np.ndarray, yaw: np.ndarray) -> List[Dict[str, bool]]:
    """Per window (see the module docstring): {signal: inside its bounds} for each of the six."""
    t_s = np.asarray(t_s, dtype=np.float64)
    if len(t_s) < 2:
        return []
    dt = float(np.median(np.diff(t_s)))
    stride = max(1, int(round(1.0 / (COMFORT_RATE_HZ * dt))))
    idx = np.arange(0, len(t_s), stride)
    n = len(idx)
    if n < 3:
        return []
    signals = comfort_signals(np.asarray(xy)[idx], np.asarray(yaw)[idx], dt * stride)
    starts = [0] if n <= COMFORT_WINDOW else list(range(0, n - COMFORT_WINDOW + 1, COMFORT_WINDOW))
    out = []
    for s in starts:
        e = min(s + COMFORT_WINDOW, n)
        out.append({name: bool(np.all((values[s:e] > COMFORT_BOUNDS[name][0]) & (values[s:e] < COMFORT_BOUNDS[name][1])))
                    for name, values in signals.items()})
    return out


def comfort_summary(windows: Sequence[Dict[str, bool]]) -> Dict[str, object]:
    """windows, comfortable, fraction (NaN without windows) and, per signal, the fraction of
    windows where it left its bounds."""
    n = len(windows)
    comfortable = sum(all(w.values()) for w in windows)
    return {
        "windows": n,
        "comfortable": comfortable,
        "fraction": comfortable / n if n else math.nan,
        "violations": {name: (sum(not w[name] for w in windows) / n if n else math.nan) for name in COMFORT_BOUNDS},
    }


# --------------------------------------------------------------------------- route offset


def route_offsets(route_xy: np.ndarray, xy: np.ndarray):
    """Each point's signed lateral offset from the route polyline [T] (m, left of the route's
    direction +) and the route length left after its projection onto the route [T] (m)."""
    route_xy, xy = np.asarray(route_xy, dtype=float), np.asarray(xy, dtype=float).reshape(-1, 2)
    segment, arc, cumulative = project_onto_route(route_xy, xy)
    seg_vec = np.diff(route_xy, axis=0)[segment]
    along = seg_vec / np.maximum(np.linalg.norm(seg_vec, axis=1), 1e-9)[:, None]
    off = xy - (route_xy[segment] + (arc - cumulative[segment])[:, None] * along)
    lateral = along[:, 0] * off[:, 1] - along[:, 1] * off[:, 0]
    return lateral, cumulative[-1] - arc


def route_offset_summary(log: EpisodeLog) -> Dict[str, float]:
    """mean_abs: mean |offset| over the episode; end: mean offset over the route's last
    ROUTE_END_M (NaN when the ego never got there)."""
    if log.num_steps == 0 or len(log.route) < 2:
        return {"mean_abs": math.nan, "end": math.nan}
    lateral, left_m = route_offsets(log.route, log.ego[:, :2])
    near_end = left_m < ROUTE_END_M
    return {"mean_abs": float(np.mean(np.abs(lateral))),
            "end": float(np.mean(lateral[near_end])) if near_end.any() else math.nan}


# --------------------------------------------------------------------------- outcome


def episode_metrics(log: EpisodeLog) -> Dict[str, object]:
    """Outcome, comfort and runtime numbers of one episode."""
    outcome = log.outcome
    collision = [k for k in COLLISION_KEYS if outcome.get(k)]
    arrived = bool(outcome.get("arrive_dest")) or log.result == "arrived"
    off_road = bool(outcome.get("out_of_road") or outcome.get("crash_sidewalk"))
    rc = 1.0 if arrived else float(np.clip(float(outcome.get("route_completion", 0.0) or 0.0), 0.0, 1.0))
    comfort = comfort_summary(comfort_windows(log.t_s, log.ego[:, :2], log.ego[:, 2]))
    status = log.plan_status[log.plan_status >= 0]
    return {
        "seed": int(log.seed),
        "result": log.result,
        "success": bool(arrived and not collision and not off_road),
        "route_completion": rc,
        "collision": bool(collision),
        "collision_kinds": collision,
        "off_road": off_road,
        "timeout": log.result == "timeout",
        "blocked": log.result == "blocked",
        "duration_s": log.duration_s,
        "distance_m": log.distance_m,
        "mean_speed_mps": float(np.mean(log.ego[:, 3])) if log.num_steps else math.nan,
        "comfort": comfort,
        "route_offset_m": route_offset_summary(log),
        "plan_status_counts": {name: int(np.sum(status == i)) for i, name in enumerate(STATUS_NAMES)},
        "steps_without_plan": int(np.sum(log.plan_status < 0)),
        "ae_ms": summarize(log.plan_ms[np.isfinite(log.plan_ms)]),
        "context_age_ms": summarize(ok_context_ages(log)),
        "ue_ms": summarize(log.context_compute_ms),
        "wall_s": float(log.info.get("wall_s", math.nan)),
    }


def ok_context_ages(log: EpisodeLog) -> np.ndarray:
    """Context ages [ms] of the plans with status OK (a STALE_CONTEXT plan at an episode's
    start carries the previous episode's context: counted by status, not as an age)."""
    return log.context_age_ms[(log.plan_status == 0) & np.isfinite(log.context_age_ms)]


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def wilson_interval(successes: int, n: int, z: float = 1.96):
    """95% Wilson score interval of a proportion (NaN, NaN for n = 0)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def policy_summary(logs: Sequence[EpisodeLog]) -> Dict[str, object]:
    """Per-policy numbers over its episodes (rates are fractions of episodes)."""
    per = [episode_metrics(log) for log in logs]
    n = len(per)
    if n == 0:
        return {"episodes": 0}

    def rate(key):
        return sum(bool(m[key]) for m in per) / n

    windows = sum(m["comfort"]["windows"] for m in per)
    comfortable = sum(m["comfort"]["comfortable"] for m in per)
    violations = {name: (sum(m["comfort"]["violations"][name] * m["comfort"]["windows"] for m in per
                             if m["comfort"]["windows"]) / windows if windows else math.nan)
                  for name in COMFORT_BOUNDS}
    distance_km = sum(m["distance_m"] for m in per) / 1000.0
    sim_s = sum(m["duration_s"] for m in per)
    wall_s = sum(float(log.info.get("wall_s", math.nan)) for log in logs)
    successes = sum(m["success"] for m in per)
    collisions = sum(m["collision"] for m in per)
    status = {name: sum(m["plan_status_counts"][name] for m in per) for name in STATUS_NAMES}
    cat = lambda attr: np.concatenate([getattr(log, attr)[np.isfinite(getattr(log, attr))] for log in logs])  # noqa: E731
    return {
        "episodes": n,
        "seeds": [m["seed"] for m in per],
        "success_rate": successes / n,
        "success_rate_ci95": wilson_interval(successes, n),
        "route_completion": float(np.mean([m["route_completion"] for m in per])),
        "route_completion_median": float(np.median([m["route_completion"] for m in per])),
        "collision_rate": collisions / n,
        "vehicle_collision_rate": sum("crash_vehicle" in m["collision_kinds"] for m in per) / n,
        "off_road_rate": rate("off_road"),
        "timeout_rate": rate("timeout"),
        "blocked_rate": rate("blocked"),
        "results": {r: sum(m["result"] == r for m in per) for r in RESULTS},
        "distance_km": distance_km,
        "collisions_per_km": collisions / distance_km if distance_km > 0 else math.nan,
        "mean_speed_mps": sum(m["distance_m"] for m in per) / sim_s if sim_s > 0 else math.nan,
        "comfort": {"windows": windows, "comfortable": comfortable,
                    "fraction": comfortable / windows if windows else math.nan,
                    "episode_mean": float(np.nanmean([m["comfort"]["fraction"] for m in per]))
                    if any(m["comfort"]["windows"] for m in per) else math.nan,
                    "violations": violations},
        "route_offset_m": {key: _nanmean([m["route_offset_m"][key] for m in per]) for key in ("mean_abs", "end")},
        "plan_status_counts": status,
        "steps_without_plan": sum(m["steps_without_plan"] for m in per),
        "ae_ms": summarize(cat("plan_ms")),
        "plan_wait_ms": summarize(cat("plan_wait_ms")),
        "context_age_ms": summarize(np.concatenate([ok_context_ages(log) for log in logs])),
        "ue_ms": summarize(np.concatenate([log.context_compute_ms for log in logs])),
        "sim_s": sim_s,
        "wall_s": wall_s,
        "wall_per_sim_s": wall_s / sim_s if sim_s > 0 else math.nan,
        "per_episode": per,
    }


__all__ = ["EpisodeLog", "COMFORT_BOUNDS", "COMFORT_RATE_HZ", "COMFORT_WINDOW", "comfort_signals", "comfort_windows",
           "comfort_summary", "episode_metrics", "ok_context_ages", "policy_summary", "wilson_interval", "blocked",
           "RESULTS", "NO_PLAN", "ROUTE_END_M", "route_offsets", "route_offset_summary"]
