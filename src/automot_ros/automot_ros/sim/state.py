"""Simulator ground truth as plain numpy: the static road map and the per-step state.

Everything the sensor model (data/sensors.py) and the sample builder (data/samples.py) read
comes from these types, never from a simulator object, so tests can build states by hand
and a state can be pickled or stored. World frame: the simulator's map frame, right-handed,
x/y in meters, yaw counter-clockwise from +x (REP-103 once transformed into the ego frame:
x forward, y left). Boxes use eval.open_loop's layout (cx, cy, length, width, yaw).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

# Lane marking kinds (RoadMap.line_kinds).
LINE_BROKEN = 0  # dashed: lane change allowed
LINE_SOLID = 1  # continuous: center line, no lane change
LINE_EDGE = 2  # road edge (curb / boundary)
LINE_KIND_NAMES = ("broken", "solid", "edge")
DEFAULT_AGENT_HEIGHT_M = 1.5


def _pack(polylines: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Polylines -> (points [P, 2] float64, offsets [L + 1] int64)."""
    arrays = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polylines]
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in arrays])
    points = np.concatenate(arrays) if arrays else np.zeros((0, 2))
    return points, offsets


def _bounds(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Axis-aligned bounds [L, 4] (xmin, ymin, xmax, ymax) of each packed polyline."""
    out = np.zeros((len(offsets) - 1, 4))
    for i in range(len(offsets) - 1):
        p = points[offsets[i]:offsets[i + 1]]
        out[i] = (*p.min(0), *p.max(0))
    return out


@dataclass(frozen=True, eq=False)  # identity hash: renderers cache per map
class RoadMap:
    """Static road geometry of one map, packed for fast per-frame transforms.

    surface_points/offsets: one polygon per lane (its left boundary forward, its right
    boundary backward): the drivable surface. line_points/offsets: lane markings and road
    edges as polylines, line_kinds [L] one of LINE_*. *_bounds: axis-aligned boxes for culling.
    """

    surface_points: np.ndarray
    surface_offsets: np.ndarray
    line_points: np.ndarray
    line_offsets: np.ndarray
    line_kinds: np.ndarray
    surface_bounds: np.ndarray
    line_bounds: np.ndarray

    @classmethod
    def from_polylines(cls, surfaces: Sequence[np.ndarray], lines: Sequence[np.ndarray],
                       line_kinds: Sequence[int]) -> "RoadMap":
        if len(lines) != len(line_kinds):
            raise ValueError(f"{len(lines)} lines but {len(line_kinds)} kinds")
        if any(len(s) < 3 for s in surfaces) or any(len(p) < 2 for p in lines):
            raise ValueError("surfaces need >= 3 points and lines >= 2")
        sp, so = _pack(surfaces)
        lp, lo = _pack(lines)
        kinds = np.asarray(line_kinds, dtype=np.int64).reshape(-1)
        if kinds.size and (kinds.min() < 0 or kinds.max() > LINE_EDGE):
            raise ValueError(f"line kinds must be in 0..{LINE_EDGE}")
        return cls(sp, so, lp, lo, kinds, _bounds(sp, so), _bounds(lp, lo))

    @classmethod
    def from_lanes(cls, lanes: Sequence[Tuple[np.ndarray, float, int, int]]) -> "RoadMap":
        """Lanes given as (centerline [N, 2], width m, left line kind, right line kind); a
        kind of -1 draws no line. Left/right are relative to the lane's direction."""
        surfaces, lines, kinds = [], [], []
        for center, width, left_kind, right_kind in lanes:
            left, right = offset_polyline(center, width / 2.0), offset_polyline(center, -width / 2.0)
            surfaces.append(np.concatenate([left, right[::-1]]))
            for side, kind in ((left, left_kind), (right, right_kind)):
                if kind >= 0:
                    lines.append(side)
                    kinds.append(kind)
        return cls.from_polylines(surfaces, lines, kinds)

    @property
    def num_surfaces(self) -> int:
        return len(self.surface_offsets) - 1

    @property
    def num_lines(self) -> int:
        return len(self.line_offsets) - 1


def offset_polyline(points: np.ndarray, lateral_m: float) -> np.ndarray:
    """A polyline [N, 2] shifted sideways by lateral_m (positive: to its left)."""
    points = np.asarray(points, dtype=np.float64)
    tangent = np.gradient(points, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    return points + lateral_m * normal


@dataclass(frozen=True)
class EgoPose:
    """The ego vehicle: center pose in the world frame, speed, size, lane (if known)."""

    x: float
    y: float
    yaw: float
    speed_mps: float
    length: float = 4.515
    width: float = 1.852
    lane_index: int = -1  # 0 = leftmost lane of its road (next to the center line); -1 unknown
    lane_count: int = 0  # lanes of its road in its direction; 0 unknown

    def to_ego_frame(self, points_xy: np.ndarray) -> np.ndarray:
        """World points [..., 2] -> ego frame [..., 2] (x forward, y left)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        d = np.asarray(points_xy, dtype=np.float64) - (self.x, self.y)
        return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)

    def boxes_to_ego_frame(self, boxes: np.ndarray) -> np.ndarray:
        """World boxes [A, 5] (cx, cy, length, width, yaw) -> the same boxes in the ego frame."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        out = boxes.copy()
        out[:, :2] = self.to_ego_frame(boxes[:, :2])
        out[:, 4] = (boxes[:, 4] - self.yaw + np.pi) % (2 * np.pi) - np.pi
        return out


@dataclass(frozen=True)
class SimState:
    """One simulator step's ground truth.

    agent_boxes [A, 5] world (cx, cy, length, width, yaw); agent_speeds [A] m/s;
    agent_heights [A] m; agent_ids [A] int (stable within an episode); route [R, 2] world
    (lane centers from the start to the destination); outcome: the simulator's flags
    (arrive_dest, crash_vehicle, crash_object, crash_sidewalk, out_of_road, route_completion, ...).
    """

    t_s: float
    ego: EgoPose
    road: RoadMap
    route: np.ndarray
    agent_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    agent_speeds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    agent_heights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    agent_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    outcome: Dict[str, float] = field(default_factory=dict)
    step: int = 0
    seed: Optional[int] = None

    def __post_init__(self):
        boxes = np.asarray(self.agent_boxes, dtype=np.float64).reshape(-1, 5)
        n = len(boxes)
        object.__setattr__(self, "agent_boxes", boxes)
        # Hand-built states may leave out speeds (0), heights (DEFAULT_AGENT_HEIGHT_M) and ids (0..A-1).
        defaults = {"agent_speeds": np.zeros(n), "agent_heights": np.full(n, DEFAULT_AGENT_HEIGHT_M),
                    "agent_ids": np.arange(n, dtype=np.int64)}
        for name, default in defaults.items():
            if n and len(getattr(self, name)) == 0:
                object.__setattr__(self, name, default)
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} agent boxes")

    @property
    def num_agents(self) -> int:
        return len(self.agent_ids)
