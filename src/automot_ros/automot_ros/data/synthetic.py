"""A synthetic, clearly labeled driving scenario: camera frames, odometry and a route.

Deterministic kinematics on a gently curving two-lane road, rendered by a pinhole camera
model. It exercises every interface of the stack without real data (none ships here); it
says nothing about driving quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from automot_ros.data.ego import EgoState

LANE_HALF_WIDTH_M = 3.5


@dataclass(frozen=True)
class SyntheticScenario:
    speed_mps: float = 8.0
    curve_amplitude_m: float = 6.0
    curve_wavelength_m: float = 120.0
    route_length_m: float = 2000.0
    image_height: int = 256
    image_width: int = 512
    camera_height_m: float = 1.5

    def centerline(self, s_m: np.ndarray) -> np.ndarray:
        """Road centerline [N, 2] at arc parameters s (x advances with s; y is a sine)."""
        s_m = np.asarray(s_m, dtype=np.float64)
        y = self.curve_amplitude_m * np.sin(2.0 * math.pi * s_m / self.curve_wavelength_m)
        return np.stack([s_m, y], axis=-1)

    def route(self, spacing_m: float = 2.0) -> np.ndarray:
        """The whole route [N, 2] in the odometry frame."""
        return self.centerline(np.arange(0.0, self.route_length_m, spacing_m))

    def ego_at(self, t_s: float, stamp_ns: int) -> EgoState:
        x = self.speed_mps * t_s  # dx/ds = 1: x is the parameter, close enough to arc length
        slope = self.curve_amplitude_m * 2.0 * math.pi / self.curve_wavelength_m
        yaw = math.atan(slope * math.cos(2.0 * math.pi * x / self.curve_wavelength_m))
        y = float(self.centerline([x])[0, 1])
        return EgoState(stamp_ns=stamp_ns, x=x, y=y, yaw=yaw, speed_mps=self.speed_mps)

    def render(self, ego: EgoState) -> np.ndarray:
        """The front camera's view [H, W, 3] uint8 RGB: sky, grass, road, lane markings."""
        h, w = self.image_height, self.image_width
        image = np.empty((h, w, 3), dtype=np.uint8)
        image[: h // 2] = (135, 180, 230)
        image[h // 2 :] = (70, 120, 60)
        ahead = self.centerline(np.linspace(ego.x + 2.0, ego.x + 80.0, 60))
        tangent = np.gradient(ahead, axis=0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        left = self._project(ego.to_ego_frame(ahead + LANE_HALF_WIDTH_M * normal))
        right = self._project(ego.to_ego_frame(ahead - LANE_HALF_WIDTH_M * normal))
        road = np.concatenate([left, right[::-1]]).astype(np.int32)
        cv2.fillPoly(image, [road], (90, 90, 95))
        for edge in (left, right):
            cv2.polylines(image, [edge.astype(np.int32)], False, (240, 240, 240), 2)
        center = self._project(ego.to_ego_frame(ahead)).astype(np.int32)
        for i in range(0, len(center) - 1, 4):  # dashed center line
            cv2.line(image, tuple(center[i]), tuple(center[i + 1]), (250, 210, 60), 2)
        return image

    def _project(self, points_ego: np.ndarray) -> np.ndarray:
        """Ground points [N, 2] (x forward, y left) -> pixel coordinates [N, 2], 90 deg HFOV."""
        h, w = self.image_height, self.image_width
        focal = w / 2.0
        x = np.maximum(points_ego[:, 0], 0.5)
        u = w / 2.0 - focal * points_ego[:, 1] / x
        v = h / 2.0 + focal * self.camera_height_m / x
        return np.stack([u, v], axis=1)
