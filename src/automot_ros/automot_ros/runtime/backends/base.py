"""The one interface every Action Expert backend implements."""

from __future__ import annotations

import abc

import numpy as np

from automot_ros.runtime.context_shm import ContextSnapshot
from automot_ros.runtime.plan_result import Trajectory


class ActionBackend(abc.ABC):
    """Runs the Action Expert for one input on a context read from shared memory."""

    #: Reported in DrivingPlan.backend: torch, onnxruntime-cpu, onnxruntime-cuda, tensorrt.
    #: ``runtime.backends.factory.select_backend`` builds one by name (or ``auto``).
    name: str

    @abc.abstractmethod
    def run(self, context: ContextSnapshot, scene_chw: np.ndarray, target_points: np.ndarray,
            speed_mps: float) -> Trajectory:
        """context.kv [layers, 2, kv_heads, tokens, head_dim]; scene_chw [3, H, W] uint8;
        target_points [K, 2] m in the ego frame (the route at the model's action.route_lookahead_m); speed in m/s."""

    def close(self) -> None:
        """Release what the backend holds (device buffers); the default holds nothing."""


class BackendUnavailable(ValueError):
    """A backend cannot run here (library, GPU or engine file missing); the message says
    why and what to do. A ValueError, so a node exits with the message (code 2)."""
