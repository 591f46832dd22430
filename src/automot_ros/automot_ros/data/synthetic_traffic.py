"""A SYNTHETIC traffic scenario for replay tests and the README demo (clearly labeled).

The road, route and camera model of `synthetic.SyntheticScenario`, plus:
- an ego that follows the route's centerline with a speed profile (cruise, brake to a
  crawl, hold, speed up again), so the ground truth has every longitudinal class;
- kinematic agent vehicles: a lead car on the ego's line that keeps 11-17 m ahead,
  oncoming cars 2.6 m to the left, and cars parked 2.6 m to the right;
- the scene as simulator ground truth (``sim_state``: a two-lane road map, the route, the
  agents), so the project's sensor model (data/sensors.py) renders both inputs exactly as
  in the simulator: the front camera (with "SYNTHETIC" printed on it) and the BEV raster.

Positions are exact functions of time (no integration drift): the ego and every agent move
along the centerline by arc length, offset sideways along its normal. The ego's reported
speed is its true path speed, so odometry and positions agree. Nothing here says anything
about driving quality; it exercises the interfaces and the metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

from automot_ros.data.ego import EgoState
from automot_ros.data.sensors import DEFAULT_BEV, DEFAULT_CAMERA, BevSpec, CameraSpec, render_bev, render_front
from automot_ros.data.synthetic import SyntheticScenario
from automot_ros.sim.state import LINE_EDGE, LINE_SOLID, EgoPose, RoadMap, SimState, offset_polyline

# (duration s, acceleration m/s^2) after the start; the last segment lasts forever.
EGO_SPEED_PROFILE = ((4.0, 0.0), (3.0, -1.5), (2.0, 0.0), (3.0, 1.5), (math.inf, 0.0))
EGO_START_SPEED_MPS = 8.0
CAR_SIZE_M = (4.5, 1.9, 1.5)  # length, width, height of every agent
LANE_WIDTH_M = 3.5
SIDE_OFFSET_M = 2.6  # oncoming (left, +) and parked (right, -) cars from the centerline
ONCOMING_SPEED_MPS = 9.0
ONCOMING_START_S_M = (45.0, 95.0, 150.0, 210.0)  # arc positions at t = 0
PARKED_S_M = (70.0, 118.0, 175.0)
LEAD_GAP_M = (14.0, 3.0, 9.0)  # mean, amplitude, period [s]: gap(t) = mean + amp sin(2 pi t / period)
AGENT_SPEEDS_MPS = {"oncoming": ONCOMING_SPEED_MPS, "parked": 0.0}  # the lead car drives at the ego's speed


@dataclass(frozen=True)
class AgentBox:
    """One agent's box in the odometry frame: center (x, y), yaw, size."""

    agent_id: int
    kind: str  # lead, oncoming or parked
    x: float
    y: float
    yaw: float
    length: float
    width: float
    height: float

    def as_array(self) -> np.ndarray:
        """(cx, cy, length, width, yaw), the eval.open_loop box layout."""
        return np.array([self.x, self.y, self.length, self.width, self.yaw])


class TrafficScenario:
    """Ego, agents, ground truth and sensor images at any time t [s] from the start. Deterministic."""

    def __init__(self, road: SyntheticScenario = SyntheticScenario()):
        self.road = road
        # Arc length along the centerline as a function of its x parameter (dense table).
        self._x = np.arange(0.0, road.route_length_m, 0.05)
        dy = np.gradient(road.centerline(self._x)[:, 1], self._x)
        self._s = np.concatenate([[0.0], np.cumsum(np.hypot(1.0, 0.5 * (dy[1:] + dy[:-1])) * 0.05)])
        # For the sensors: the ego's lane centered on the centerline (the parked cars stand on
        # its right edge) and the oncoming lane left of it, both LANE_WIDTH_M wide.
        center = road.route(spacing_m=2.0)
        self.road_map = RoadMap.from_lanes([(center, LANE_WIDTH_M, LINE_SOLID, LINE_EDGE),
                                            (offset_polyline(center, LANE_WIDTH_M), LANE_WIDTH_M, LINE_EDGE, -1)])

    # -- kinematics
    def ego_arc(self, t_s: float) -> Tuple[float, float]:
        """Ego arc length [m] along the centerline and speed [m/s] at t."""
        s, v, t = 0.0, EGO_START_SPEED_MPS, 0.0
        for duration, accel in EGO_SPEED_PROFILE:
            dt = min(duration, t_s - t)
            if dt <= 0.0:
                break
            s += v * dt + 0.5 * accel * dt * dt
            v += accel * dt
            t += dt
        return s, v

    def _pose_at_arc(self, s_m: float, offset_m: float = 0.0) -> Tuple[float, float, float]:
        """(x, y, yaw) on the centerline at arc length s, offset sideways (left +)."""
        x = float(np.interp(s_m, self._s, self._x))
        road = self.road
        slope = road.curve_amplitude_m * 2.0 * math.pi / road.curve_wavelength_m * math.cos(
            2.0 * math.pi * x / road.curve_wavelength_m)
        yaw = math.atan(slope)
        y = float(road.centerline([x])[0, 1])
        return x - offset_m * math.sin(yaw), y + offset_m * math.cos(yaw), yaw

    def ego_at(self, t_s: float, stamp_ns: int) -> EgoState:
        s, v = self.ego_arc(t_s)
        x, y, yaw = self._pose_at_arc(s)
        return EgoState(stamp_ns=stamp_ns, x=x, y=y, yaw=yaw, speed_mps=v)

    def agents_at(self, t_s: float) -> List[AgentBox]:
        length, width, height = CAR_SIZE_M
        boxes = []
        mean, amplitude, period = LEAD_GAP_M
        lead_s = self.ego_arc(t_s)[0] + mean + amplitude * math.sin(2.0 * math.pi * t_s / period)
        specs = [("lead", lead_s, 0.0, 0.0)]
        specs += [("oncoming", s0 - ONCOMING_SPEED_MPS * t_s, SIDE_OFFSET_M, math.pi) for s0 in ONCOMING_START_S_M]
        specs += [("parked", s, -SIDE_OFFSET_M, 0.0) for s in PARKED_S_M]
        for agent_id, (kind, s, offset, turn) in enumerate(specs):
            if not 0.0 <= s <= self._s[-1]:
                continue
            x, y, yaw = self._pose_at_arc(s, offset)
            yaw = math.atan2(math.sin(yaw + turn), math.cos(yaw + turn))
            boxes.append(AgentBox(agent_id, kind, x, y, yaw, length, width, height))
        return boxes

    def route(self) -> np.ndarray:
        return self.road.route()

    # -- ground truth and sensors
    def sim_state(self, t_s: float) -> SimState:
        """The scene at t as simulator ground truth (sim/state.py)."""
        ego = self.ego_at(t_s, 0)
        agents = self.agents_at(t_s)
        return SimState(
            t_s=t_s, ego=EgoPose(ego.x, ego.y, ego.yaw, ego.speed_mps), road=self.road_map, route=self.route(),
            agent_boxes=np.array([a.as_array() for a in agents]).reshape(-1, 5),
            agent_speeds=np.array([AGENT_SPEEDS_MPS.get(a.kind, ego.speed_mps) for a in agents]),
            agent_heights=np.array([a.height for a in agents]), agent_ids=np.array([a.agent_id for a in agents]))

    def render(self, t_s: float, camera: CameraSpec = DEFAULT_CAMERA,
               bev: BevSpec = DEFAULT_BEV) -> Tuple[np.ndarray, np.ndarray]:
        """(front camera [H, W, 3] RGB with a "SYNTHETIC" label, BEV raster [3, Hb, Wb]) at t."""
        state = self.sim_state(t_s)
        front = render_front(state, camera)
        scale = max(0.3, camera.width / 640.0)
        cv2.putText(front, "SYNTHETIC", (4, int(14 * scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
        return front, render_bev(state, bev)
