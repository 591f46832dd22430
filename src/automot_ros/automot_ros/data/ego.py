"""The ego vehicle's state and the transform into its frame (REP-103: x forward, y left)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from automot_ros.errors import InputError


@dataclass(frozen=True)
class EgoState:
    """Ego pose in the odometry frame and its speed, at one stamp."""

    stamp_ns: int
    x: float
    y: float
    yaw: float  # rad, counter-clockwise from the odometry frame's x axis
    speed_mps: float

    def __post_init__(self):
        values = {"x": self.x, "y": self.y, "yaw": self.yaw, "speed": self.speed_mps}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            raise InputError(f"ego state has non-finite {', '.join(bad)}")

    def to_ego_frame(self, points_xy: np.ndarray) -> np.ndarray:
        """Points [N, 2] in the odometry frame -> [N, 2] in this ego frame."""
        cos_yaw, sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        dx = points_xy[:, 0] - self.x
        dy = points_xy[:, 1] - self.y
        return np.stack([cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy], axis=1)
