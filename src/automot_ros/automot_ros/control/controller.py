"""Tracks a DrivingPlan with a car (no ROS): pure pursuit on the planned path, PI control of
the planned speed, mapped to MetaDrive's action (steering, throttle_brake) in [-1, 1].

A plan (``Plan``) is what the Action Expert publishes, in the ego frame at its stamp (x
forward, y left, m): the spatial path (20 points about 1 m apart) and the temporal
trajectory (6 waypoints 0.5 s apart), plus the pose the car had at that stamp.

Rules (``PlanController.update``, called once per control step):

- The newest plan is held until a newer one arrives. A held plan is re-expressed in the
  current ego frame through the pose at its stamp, so it keeps pointing at the same place
  on the road, and its speed target is read at the plan's age.
- No usable plan -> brake to a stop (``max_decel_stop``, then hold the brake), keeping the
  steering: no plan yet, a plan whose status is not OK (NO_CONTEXT and INPUT_ERROR carry
  no trajectory; STALE_CONTEXT means the context is older than the action node's
  ``max_context_age_s``; in a closed-loop run that is only ever the previous episode's
  context) or a plan older than ``max_plan_age_s``.
- Lateral (pure pursuit): from the rear axle, the point of the path at the lookahead
  distance ``clip(lookahead_min_m + lookahead_gain_s * speed, ..., lookahead_max_m)``
  (the path is extended along its last segment when shorter, and the waypoints stand in
  for a degenerate path); curvature 2 y / L^2, steering angle atan(wheelbase * curvature).
  The steering command is rate-limited so that the yaw acceleration it causes stays near
  ``max_yaw_accel`` (the comfort bound is 1.93 rad/s^2).
- Longitudinal: target speed = distance the planned trajectory covers in the next
  ``speed_horizon_s`` (1 s: waypoints 1 and 2, i.e. the mean of their speeds, speed =
  distance between consecutive waypoints over 0.5 s) divided by that time; below
  ``stop_speed_mps`` the car stops. PI on the speed error -> acceleration command, limited
  to [-max_decel, max_accel] (inside the comfort bounds (-4.05, 2.40) m/s^2) and to
  ``max_jerk``, then mapped to throttle or brake with the vehicle's measured gains.
  Stopping (the plan's target below stop_speed_mps, or no usable plan) brakes at once with
  ``max_decel_stop`` (no jerk limit: a stop is not delayed for comfort).

MetaDrive's action (0.4.3, its default vehicle): steering angle = steering x 40 deg,
positive to the left; throttle_brake > 0 is engine force (1.0 -> about 2.9 m/s^2 from
standstill), < 0 is brake force (-0.25 -> about 5 m/s^2, -0.5 -> about 9 m/s^2); coasting
loses about 0.3 m/s^2 (measured, see VehicleModel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from automot_ros.runtime.plan_result import WAYPOINT_DT_S

Pose = Tuple[float, float, float]  # x, y, yaw in the world (odometry) frame


@dataclass(frozen=True)
class VehicleModel:
    """The controlled car. Defaults: MetaDrive 0.4.3's DefaultVehicle, gains measured here
    (throttle 1.0 from standstill: 2.94 m/s^2 over 3 s; brake -0.25: 5.0 m/s^2 from 10 m/s;
    throttle 0: -0.29 m/s^2 at 9 m/s; steering 0.1 at 11 m/s: 3.8 deg effective)."""

    wheelbase_m: float = 2.469  # front 1.052 + rear 1.417
    rear_axle_m: float = 1.417  # from the box center (the ego frame's origin) back to the rear axle
    max_steer_rad: float = math.radians(40.0)
    accel_per_throttle: float = 2.9  # m/s^2 at throttle_brake = 1
    decel_per_brake: float = 20.0  # m/s^2 per unit of brake (small values)
    coast_decel: float = 0.3  # m/s^2 lost at throttle_brake = 0


@dataclass(frozen=True)
class ControllerConfig:
    vehicle: VehicleModel = field(default_factory=VehicleModel)
    dt_s: float = 0.05  # control period (the simulator step)
    # Pure pursuit.
    lookahead_min_m: float = 4.0
    lookahead_gain_s: float = 0.4  # tuned on the route baseline: 16 of 16 arrived without traffic (0.6: 15)
    lookahead_max_m: float = 15.0
    max_yaw_accel: float = 1.5  # rad/s^2 the steering rate may cause at the current speed
    steer_rate_range: Tuple[float, float] = (0.5, 3.0)  # bounds of that rate [action units / s]
    # Speed.
    speed_horizon_s: float = 1.0
    stop_speed_mps: float = 0.5
    kp: float = 1.0  # (m/s^2) / (m/s)
    ki: float = 0.3  # (m/s^2) / m
    integral_limit: float = 1.0  # m/s^2
    max_accel: float = 1.8  # the car overshoots the command at low speed (less drag than coast_decel)
    max_decel: float = 4.0
    max_decel_stop: float = 3.0  # braking to a stop (no plan, or the plan stops)
    max_jerk: float = 3.0  # m/s^3 on the acceleration command (comfort bound 4.13)
    standstill_mps: float = 0.3  # below this a stopping car holds the brake
    hold_brake: float = 0.2  # throttle_brake while holding (negative of it)
    # Plans older than this are not followed (brake to a stop).
    max_plan_age_s: float = 1.0


@dataclass(frozen=True)
class Plan:
    """One DrivingPlan as numbers. ok: status OK with a trajectory."""

    stamp_s: float
    pose: Pose  # the car's pose at stamp_s (the plan's frame)
    path_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [P, 2]
    waypoints_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [6, 2], WAYPOINT_DT_S apart
    ok: bool = True
    status: int = 0


@dataclass(frozen=True)
class Control:
    steering: float  # [-1, 1], + left
    throttle_brake: float  # [-1, 1], + throttle, - brake
    target_speed_mps: float  # nan when braking for want of a plan
    accel_cmd: float  # m/s^2 after limits
    mode: str  # "track", "stop" (the plan stops), or why it brakes: "no_plan", "not_ok", "too_old"

    def action(self) -> Tuple[float, float]:
        return (self.steering, self.throttle_brake)


def transform_points(points_xy: np.ndarray, from_pose: Pose, to_pose: Pose) -> np.ndarray:
    """Points [N, 2] in the ego frame at ``from_pose`` -> the ego frame at ``to_pose``."""
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    x0, y0, a0 = from_pose
    x1, y1, a1 = to_pose
    c0, s0 = math.cos(a0), math.sin(a0)
    world = np.stack([x0 + c0 * points[:, 0] - s0 * points[:, 1], y0 + s0 * points[:, 0] + c0 * points[:, 1]], axis=1)
    c1, s1 = math.cos(a1), math.sin(a1)
    d = world - (x1, y1)
    return np.stack([c1 * d[:, 0] + s1 * d[:, 1], -s1 * d[:, 0] + c1 * d[:, 1]], axis=1)


def polyline_length(points_xy: np.ndarray) -> float:
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) if len(points) > 1 else 0.0


def lookahead_point(path_xy: np.ndarray, distance_m: float, origin=(0.0, 0.0)) -> Optional[np.ndarray]:
    """The first point of the polyline ``origin -> path`` at ``distance_m`` from ``origin``;
    past the end, the last segment is extended. None when the polyline has no direction."""
    origin = np.asarray(origin, dtype=np.float64)
    points = np.vstack([origin[None], np.asarray(path_xy, dtype=np.float64).reshape(-1, 2)])
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    points = np.vstack([points[:1], points[1:][steps > 1e-6]])
    if len(points) < 2:
        return None
    direction = points[-1] - points[-2]
    points = np.vstack([points, points[-1] + direction / np.linalg.norm(direction) * (distance_m + 1.0)])
    rel = points - origin
    dist = np.linalg.norm(rel, axis=1)
    for i in range(len(points) - 1):
        if dist[i] < distance_m <= dist[i + 1]:
            a, b = rel[i], rel[i + 1] - rel[i]
            # |a + t b| = d, for t in [0, 1]: the larger root of the quadratic.
            qa, qb, qc = b @ b, 2.0 * (a @ b), a @ a - distance_m**2
            t = (-qb + math.sqrt(max(qb * qb - 4.0 * qa * qc, 0.0))) / (2.0 * qa)
            return origin + a + min(max(t, 0.0), 1.0) * b
    return None


def pure_pursuit_angle(path_xy: np.ndarray, speed_mps: float, cfg: ControllerConfig) -> Optional[float]:
    """Steering angle [rad] (+ left) that puts the rear axle on a circle through the path's
    lookahead point; None without a usable path."""
    lookahead = min(max(cfg.lookahead_min_m + cfg.lookahead_gain_s * max(speed_mps, 0.0), cfg.lookahead_min_m),
                    cfg.lookahead_max_m)
    rear = np.array([-cfg.vehicle.rear_axle_m, 0.0])
    target = lookahead_point(path_xy, lookahead, origin=(0.0, 0.0))
    if target is None:
        return None
    rel = target - rear
    dist2 = float(rel @ rel)
    if dist2 < 1e-6:
        return None
    curvature = 2.0 * rel[1] / dist2
    return math.atan(cfg.vehicle.wheelbase_m * curvature)


def target_speed(waypoints_xy: np.ndarray, age_s: float = 0.0, horizon_s: float = 1.0) -> float:
    """Mean planned speed over [age, age + horizon] s: the arc length the waypoints (from the
    origin at t = 0, then WAYPOINT_DT_S apart) cover in that time, over the time. The window
    is clamped to the trajectory's end."""
    wp = np.asarray(waypoints_xy, dtype=np.float64).reshape(-1, 2)
    if len(wp) == 0:
        return 0.0
    points = np.vstack([np.zeros((1, 2)), wp])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    times = WAYPOINT_DT_S * np.arange(len(points))
    end = times[-1]
    t1 = min(max(age_s, 0.0) + horizon_s, end)
    t0 = max(t1 - horizon_s, 0.0)
    if t1 <= t0:
        return 0.0
    return float((np.interp(t1, times, s) - np.interp(t0, times, s)) / (t1 - t0))


class PlanController:
    """Holds the newest plan and turns it into MetaDrive actions (rules in the module docstring)."""

    def __init__(self, cfg: ControllerConfig = ControllerConfig()):
        self.cfg = cfg
        self.plan: Optional[Plan] = None
        self.reset()

    def reset(self) -> None:
        self.plan = None
        self.steering = 0.0
        self.accel = 0.0
        self.integral = 0.0

    def set_plan(self, plan: Plan) -> None:
        """Hold ``plan`` unless the held one is newer."""
        if self.plan is None or plan.stamp_s >= self.plan.stamp_s:
            self.plan = plan

    def _why_not(self, now_s: float) -> str:
        plan = self.plan
        if plan is None:
            return "no_plan"
        if not plan.ok or len(plan.waypoints_xy) == 0:
            return "not_ok"
        if now_s - plan.stamp_s > self.cfg.max_plan_age_s:
            return "too_old"
        return ""

    def update(self, now_s: float, pose: Pose, speed_mps: float) -> Control:
        cfg = self.cfg
        why = self._why_not(now_s)
        if why:
            return self._stop(speed_mps, why, float("nan"))
        plan = self.plan
        age = max(now_s - plan.stamp_s, 0.0)
        path = transform_points(plan.path_xy, plan.pose, pose)  # the identity for a fresh plan
        waypoints = transform_points(plan.waypoints_xy, plan.pose, pose)
        if polyline_length(path) < 0.5:
            path = waypoints  # a degenerate path: steer along the trajectory instead
        angle = pure_pursuit_angle(path, speed_mps, cfg)
        if angle is not None:
            self._steer_towards(angle / cfg.vehicle.max_steer_rad, speed_mps)
        v_target = target_speed(plan.waypoints_xy, age, cfg.speed_horizon_s)
        if v_target < cfg.stop_speed_mps:
            return self._stop(speed_mps, "stop", v_target)
        error = v_target - speed_mps
        unsaturated = cfg.kp * error + self.integral
        if -cfg.max_decel < unsaturated < cfg.max_accel:  # conditional integration (anti-windup)
            self.integral = float(np.clip(self.integral + cfg.ki * error * cfg.dt_s,
                                          -cfg.integral_limit, cfg.integral_limit))
        desired = float(np.clip(cfg.kp * error + self.integral, -cfg.max_decel, cfg.max_accel))
        return Control(self.steering, self._throttle_brake(desired), v_target, self.accel, "track")

    # -- pieces
    def _steer_towards(self, command: float, speed_mps: float) -> None:
        cfg = self.cfg
        # yaw acceleration ~ speed x d(curvature)/dt, curvature ~ max_steer x steering / wheelbase
        gain = max(speed_mps, 0.1) * cfg.vehicle.max_steer_rad / cfg.vehicle.wheelbase_m
        rate = float(np.clip(cfg.max_yaw_accel / gain, *cfg.steer_rate_range))
        step = rate * cfg.dt_s
        target = float(np.clip(command, -1.0, 1.0))
        self.steering = float(np.clip(self.steering + np.clip(target - self.steering, -step, step), -1.0, 1.0))

    def _throttle_brake(self, desired_accel: float, jerk_limited: bool = True) -> float:
        cfg = self.cfg
        step = cfg.max_jerk * cfg.dt_s if jerk_limited else math.inf
        self.accel = float(self.accel + np.clip(desired_accel - self.accel, -step, step))
        net = self.accel + cfg.vehicle.coast_decel
        if net >= 0.0:
            return float(min(net / cfg.vehicle.accel_per_throttle, 1.0))
        return float(max(net / cfg.vehicle.decel_per_brake, -1.0))

    def _stop(self, speed_mps: float, mode: str, v_target: float) -> Control:
        """Brake to a stop (steering kept), then hold the brake."""
        cfg = self.cfg
        self.integral = 0.0
        if speed_mps < cfg.standstill_mps:
            self.accel = 0.0
            return Control(self.steering, -cfg.hold_brake, v_target, 0.0, mode)
        braking = self._throttle_brake(min(self.accel, -cfg.max_decel_stop), jerk_limited=False)
        return Control(self.steering, braking, v_target, self.accel, mode)


# --------------------------------------------------------------------------- baseline plans


def straight_plan(stamp_s: float, pose: Pose, speed_mps: float, path_points: int = 20, spacing_m: float = 1.0,
                  num_waypoints: int = 6) -> Plan:
    """Constant velocity: a straight path ahead and waypoints at ``speed_mps``."""
    path = np.stack([spacing_m * np.arange(1, path_points + 1), np.zeros(path_points)], axis=1)
    waypoints = np.stack([speed_mps * WAYPOINT_DT_S * np.arange(1, num_waypoints + 1), np.zeros(num_waypoints)],
                         axis=1)
    return Plan(stamp_s, tuple(pose), path, waypoints)


def route_plan(stamp_s: float, pose: Pose, route_xy: np.ndarray, speed_mps: float, path_points: int = 20,
               spacing_m: float = 1.0, num_waypoints: int = 6) -> Plan:
    """Follow the route's lane centers at ``speed_mps`` (clamped at the destination, so the
    waypoints bunch up and the car stops there); sees nothing else."""
    from automot_ros.data.ego import EgoState
    from automot_ros.data.route import next_target_points

    ego = EgoState(stamp_ns=int(round(stamp_s * 1e9)), x=float(pose[0]), y=float(pose[1]), yaw=float(pose[2]),
                   speed_mps=max(float(speed_mps), 0.0))
    path = next_target_points(route_xy, ego, tuple(spacing_m * np.arange(1, path_points + 1)))
    waypoints = next_target_points(route_xy, ego, tuple(max(speed_mps, 0.0) * WAYPOINT_DT_S
                                                        * np.arange(1, num_waypoints + 1)))
    return Plan(stamp_s, tuple(pose), path, waypoints)


def plan_from_arrays(stamp_s: float, pose: Pose, status: int, path_xy: Sequence, waypoints_xy: Sequence) -> Plan:
    """A Plan from a DrivingPlan's numbers (status 0 = OK)."""
    path = np.asarray(path_xy, dtype=np.float64).reshape(-1, 2)
    waypoints = np.asarray(waypoints_xy, dtype=np.float64).reshape(-1, 2)
    ok = status == 0 and len(waypoints) > 0 and np.isfinite(waypoints).all() and np.isfinite(path).all()
    return Plan(stamp_s, tuple(pose), path, waypoints, ok=bool(ok), status=int(status))


__all__ = ["VehicleModel", "ControllerConfig", "Plan", "Control", "PlanController", "pure_pursuit_angle",
           "target_speed", "lookahead_point", "transform_points", "straight_plan", "route_plan", "plan_from_arrays"]
