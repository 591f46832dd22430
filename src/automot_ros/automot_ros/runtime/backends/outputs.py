"""Raw Action Expert outputs (numpy, as ONNX/TensorRT return them) -> Trajectory.

The same arithmetic as ``model.plan.Plan`` (argmax per head; confidence = product of the
two softmax maxima), without torch, so the engine backends need no torch at run time.
"""

from __future__ import annotations

import numpy as np

from automot_ros.runtime.plan_result import Trajectory


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).max(-1)


def trajectory_from_outputs(lateral_logits: np.ndarray, longitudinal_logits: np.ndarray, path: np.ndarray,
                            waypoints: np.ndarray, index: int = 0) -> Trajectory:
    """lateral_logits [B, 3, 5], longitudinal_logits [B, 3, 4], path [B, 20, 2],
    waypoints [B, 6, 2] -> the Trajectory of batch item ``index``."""
    lat = np.asarray(lateral_logits[index], dtype=np.float32)
    lon = np.asarray(longitudinal_logits[index], dtype=np.float32)
    return Trajectory(
        lateral=lat.argmax(-1),
        longitudinal=lon.argmax(-1),
        confidence=(_softmax_max(lat) * _softmax_max(lon)).astype(np.float32),
        path_xy=np.asarray(path[index], dtype=np.float64),
        waypoints_xy=np.asarray(waypoints[index], dtype=np.float64),
    )
