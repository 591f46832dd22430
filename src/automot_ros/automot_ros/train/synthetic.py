"""A small in-memory driving dataset with learnable targets, for tests and CI (no simulator).

Items have DrivingDataset's keys and shapes (data/dataset.py). Each sample drives a
circular arc: speed s and curvature k are drawn per sample; the future waypoints, path and
route target points lie on that arc, the labels follow from k and s, and the one QA pair
states the speed; there is no other traffic (future_agents empty). The frames and the
scene raster are smooth noise plus a brightness ramp that encodes k, so the targets are
predictable from the inputs. NOT driving data.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from automot_ros.data.dataset import FUTURE_AGENT_SLOTS
from automot_ros.data.decisions import (
    LAT_LEFT,
    LAT_RIGHT,
    LAT_SLIGHT_LEFT,
    LAT_SLIGHT_RIGHT,
    LAT_STRAIGHT,
    LON_KEEP,
    LON_STOP,
)
from automot_ros.data.route import DEFAULT_LOOKAHEAD_M
from automot_ros.eval.open_loop import FUTURE_TIMES_S
from automot_ros.model.config import load_model_config
from automot_ros.model.prompt import format_instruction

CAMERA_HZ = 20.0
STRIDE = 5  # a sample every 5 frames (0.25 s), as `automot data collect` writes them
FIRST_FRAME = 15


def arc_points(distances: np.ndarray, curvature: float) -> np.ndarray:
    """Points [K, 2] at arc lengths ``distances`` along a circle of ``curvature`` (1/m,
    positive = left) starting at the origin heading +x."""
    d = np.asarray(distances, dtype=np.float64)
    if abs(curvature) < 1e-6:
        return np.stack([d, np.zeros_like(d)], axis=1)
    return np.stack([np.sin(curvature * d) / curvature, (1.0 - np.cos(curvature * d)) / curvature], axis=1)


def _lateral(curvature: float) -> int:
    if curvature >= 0.03:
        return LAT_LEFT
    if curvature >= 0.01:
        return LAT_SLIGHT_LEFT
    if curvature <= -0.03:
        return LAT_RIGHT
    if curvature <= -0.01:
        return LAT_SLIGHT_RIGHT
    return LAT_STRAIGHT


class SyntheticDriving(Dataset):
    """``samples`` items over ``episodes`` episodes for the model config ``model``."""

    manifest = {"camera_hz": CAMERA_HZ, "sample_stride": STRIDE, "synthetic": True}

    def __init__(self, model="tiny", samples: int = 64, episodes: int = 4, seed: int = 0):
        cfg = load_model_config(model)
        self.frames_shape = (cfg.vision.frames, 3, *cfg.vision.image_size)
        self.scene_shape = (3, *cfg.action.scene.image_size)
        self.route_lookahead_m = cfg.action.route_lookahead_m
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.speed = rng.uniform(0.0, 15.0, samples).astype(np.float32)
        self.curvature = rng.uniform(-0.05, 0.05, samples)
        per = math.ceil(samples / episodes)
        self._meta = [(i // per, FIRST_FRAME + STRIDE * (i % per)) for i in range(samples)]

    def __len__(self) -> int:
        return len(self.speed)

    def meta(self, i: int) -> Tuple[int, int]:
        return self._meta[i]

    def qa(self, i: int) -> List[dict]:
        s = float(self.speed[i])
        return [{"kind": "speed", "question": "How fast are we going?",
                 "answer": f"{s:.1f} m/s ({s * 3.6:.0f} km/h).", "fields": {"speed_mps": round(s, 1)}}]

    def _image(self, shape, i: int, salt: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 7919 + i * 31 + salt)
        *lead, h, w = shape
        coarse = torch.rand(*lead, max(1, h // 8), max(1, w // 8), generator=g)
        image = torch.nn.functional.interpolate(coarse.reshape(-1, 1, *coarse.shape[-2:]), size=(h, w),
                                                mode="bilinear", align_corners=False).reshape(*lead, h, w)
        ramp = torch.linspace(-1.0, 1.0, w) * float(self.curvature[i]) / 0.05  # left/right brightness: the bend
        return ((0.6 * image + 0.2 + 0.2 * ramp) * 255).clamp(0, 255).to(torch.uint8)

    def __getitem__(self, i: int) -> dict:
        s, k = float(self.speed[i]), float(self.curvature[i])
        seed, frame = self._meta[i]
        return {
            "frames": self._image(self.frames_shape, i, 1),
            "instruction": format_instruction(arc_points(np.array(DEFAULT_LOOKAHEAD_M), k), s),
            "scene_input": self._image(self.scene_shape, i, 2),
            **self.image_free_fields(i),
            "qa": self.qa(i),
            "seed": seed,
            "frame": frame,
        }

    def image_free_fields(self, i: int) -> dict:
        """The item's IMAGE_FREE_FIELDS, without drawing its images."""
        s, k = float(self.speed[i]), float(self.curvature[i])
        return {
            "target_points": torch.from_numpy(arc_points(self.route_lookahead_m, k).astype(np.float32)),
            "speed": torch.tensor(s, dtype=torch.float32),
            "future_xy": torch.from_numpy(arc_points(s * np.asarray(FUTURE_TIMES_S), k).astype(np.float32)),
            "future_speed": torch.full((len(FUTURE_TIMES_S),), s, dtype=torch.float32),
            "path_xy": torch.from_numpy(arc_points(np.arange(1.0, 21.0), k).astype(np.float32)),
            "labels": torch.tensor([[_lateral(k), LON_STOP if s < 0.5 else LON_KEEP]] * 3, dtype=torch.int64),
            "future_agents": torch.full((len(FUTURE_TIMES_S), FUTURE_AGENT_SLOTS, 5), float("nan")),  # no traffic
        }


__all__ = ["SyntheticDriving", "arc_points"]
