"""The reference backend: the PyTorch model itself."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from automot_ros.model import ContextCache
from automot_ros.runtime.backends.base import ActionBackend
from automot_ros.runtime.context_shm import ContextSnapshot
from automot_ros.runtime.plan_result import Trajectory

# Shared-memory views are mapped read-only on purpose (the context is immutable); torch
# warns that it cannot write through them, which it never does here.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def trajectory_from_plan(plan, index: int = 0) -> Trajectory:
    """Element ``index`` of a model Plan (batched tensors) as a Trajectory."""
    return Trajectory(
        lateral=plan.lateral[index].numpy(),
        longitudinal=plan.longitudinal[index].numpy(),
        confidence=plan.confidence[index].numpy(),
        path_xy=plan.path[index].numpy().astype(np.float64),
        waypoints_xy=plan.waypoints[index].numpy().astype(np.float64),
    )


class TorchBackend(ActionBackend):
    name = "torch"

    def __init__(self, model):
        self.model = model

    def run(self, context: ContextSnapshot, scene_chw, target_points, speed_mps) -> Trajectory:
        cache = ContextCache.from_kv(torch.from_numpy(context.kv), context.model_id, context.next_position)
        plan = self.model.act(
            cache,
            torch.from_numpy(scene_chw)[None],
            torch.as_tensor(target_points, dtype=torch.float32)[None],
            torch.tensor([speed_mps], dtype=torch.float32),
        )
        return trajectory_from_plan(plan)
