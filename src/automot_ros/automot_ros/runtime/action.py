"""The Action Expert at camera rate: synchronized inputs + the newest context -> a plan."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from automot_ros.data.ego import EgoState
from automot_ros.data.image import to_model_frame
from automot_ros.data.route import next_target_points
from automot_ros.errors import InputError
from automot_ros.runtime.context_source import ContextSource
from automot_ros.runtime.plan_result import PlanResult, PlanStatus


class ActionRunner:
    """Validates one synchronized input, reads the newest context and runs the backend.

    Status rules (DrivingPlan.STATUS_*): no context yet -> NO_CONTEXT (no trajectory);
    context older than ``max_context_age_s`` -> STALE_CONTEXT (trajectory still computed);
    invalid input -> INPUT_ERROR (counted, no trajectory). It never raises for bad input.
    ``scene_size`` and ``lookahead_m`` are the model's (action.scene.image_size, action.route_lookahead_m).
    """

    def __init__(self, backend, context_source: ContextSource, scene_size, lookahead_m,
                 max_context_age_s: float = 3.0):
        self.backend = backend
        self.contexts = context_source
        self.scene_size = tuple(scene_size)
        self.max_context_age_ns = int(max_context_age_s * 1e9)
        self.lookahead_m = tuple(lookahead_m)
        self._last_stamp_ns: Optional[int] = None
        self.status_counts = {status: 0 for status in PlanStatus}

    def step(self, stamp_ns: int, rgb_hwc: np.ndarray, ego: EgoState, route_xy: Optional[np.ndarray]) -> PlanResult:
        try:
            result = self._step(stamp_ns, rgb_hwc, ego, route_xy)
        except InputError as error:
            return self.input_error(stamp_ns, str(error))
        self.status_counts[result.status] += 1
        return result

    def input_error(self, stamp_ns: int, reason: str) -> PlanResult:
        """Count and return an INPUT_ERROR result (also for errors found before ``step``,
        e.g. while decoding the messages)."""
        self.status_counts[PlanStatus.INPUT_ERROR] += 1
        return PlanResult(PlanStatus.INPUT_ERROR, stamp_ns, backend=self.backend.name, error=reason)

    def _step(self, stamp_ns, rgb_hwc, ego, route_xy) -> PlanResult:
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            raise InputError(f"camera stamp {stamp_ns} ns is not after the previous {self._last_stamp_ns} ns")
        if route_xy is None:
            raise InputError("no route received yet")
        scene = to_model_frame(rgb_hwc, *self.scene_size)
        targets = next_target_points(route_xy, ego, self.lookahead_m)
        self._last_stamp_ns = stamp_ns
        snapshot = self.contexts.latest()
        if snapshot is None:
            return PlanResult(PlanStatus.NO_CONTEXT, stamp_ns, backend=self.backend.name)
        start = time.perf_counter()
        trajectory = self.backend.run(snapshot, scene, targets, ego.speed_mps)
        if not snapshot.still_valid():  # the writer lapped the slot while we read it: use a copy
            snapshot = self.contexts.latest(copy=True)
            if snapshot is None:
                return PlanResult(PlanStatus.NO_CONTEXT, stamp_ns, backend=self.backend.name)
            trajectory = self.backend.run(snapshot, scene, targets, ego.speed_mps)
        inference_ms = (time.perf_counter() - start) * 1e3
        age_ns = stamp_ns - snapshot.stamp_ns
        status = PlanStatus.STALE_CONTEXT if age_ns > self.max_context_age_ns else PlanStatus.OK
        return PlanResult(
            status, stamp_ns, trajectory, context_seq=snapshot.seq, context_age_ms=age_ns / 1e6,
            inference_ms=inference_ms, backend=self.backend.name,
        )

