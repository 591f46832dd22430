"""What the action runtime produces per synchronized input, ready for any transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Optional

import numpy as np

# Spacing of the waypoints (DESIGN.md section 1).
WAYPOINT_DT_S = 0.5


class PlanStatus(IntEnum):
    """Mirrors automot_msgs/DrivingPlan STATUS_* (the library imports no ROS)."""

    OK = 0
    STALE_CONTEXT = 1
    NO_CONTEXT = 2
    INPUT_ERROR = 3


@dataclass(frozen=True)
class Trajectory:
    """The Action Expert's outputs for one input, in the ego frame at the camera stamp."""

    lateral: np.ndarray  # [3] int, LAT_* class per horizon
    longitudinal: np.ndarray  # [3] int, LON_* class per horizon
    confidence: np.ndarray  # [3] float, probability of the chosen (lateral, longitudinal) pair
    path_xy: np.ndarray  # [20, 2] m
    waypoints_xy: np.ndarray  # [6, 2] m, WAYPOINT_DT_S apart

    @property
    def waypoint_heading(self) -> np.ndarray:
        """[6] rad: direction from the previous waypoint (the first from the ego origin)."""
        steps = np.diff(np.vstack([np.zeros((1, 2)), self.waypoints_xy]), axis=0)
        return np.arctan2(steps[:, 1], steps[:, 0])

    @property
    def waypoint_speed(self) -> np.ndarray:
        """[6] m/s: distance from the previous waypoint over WAYPOINT_DT_S."""
        steps = np.diff(np.vstack([np.zeros((1, 2)), self.waypoints_xy]), axis=0)
        return np.linalg.norm(steps, axis=1) / WAYPOINT_DT_S


@dataclass(frozen=True)
class PlanResult:
    status: PlanStatus
    stamp_ns: int  # the camera stamp the plan was computed from
    trajectory: Optional[Trajectory] = None  # None for NO_CONTEXT and INPUT_ERROR
    context_seq: int = 0
    context_age_ms: float = float("nan")
    inference_ms: float = 0.0
    backend: str = ""
    error: str = ""
    extra: dict = field(default_factory=dict)
