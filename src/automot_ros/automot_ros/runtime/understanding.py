"""The Understanding Expert at a low rate: frame history + route + speed -> a shared context."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from automot_ros.data.ego import EgoState
from automot_ros.data.image import to_model_frame
from automot_ros.data.route import DEFAULT_LOOKAHEAD_M, next_target_points
from automot_ros.model import format_instruction
from automot_ros.runtime.context_shm import ContextWriter
from automot_ros.runtime.frame_history import FrameHistory


@dataclass(frozen=True)
class PublishedContext:
    """What was written to shared memory, for the ContextInfo announcement."""

    seq: int
    slot: int
    stamp_ns: int  # newest frame used
    num_layers: int
    num_tokens: int
    dtype: str
    model_id: str
    compute_ms: float


class UnderstandingRunner:
    """Owns the frame history, the latest ego state and route, and the context writer.

    ``add_frame``/``set_ego``/``set_route`` may be called from other threads than ``tick``.
    """

    def __init__(self, model, segment: str, frames: int = 4, interval_s: float = 0.25,
                 lookahead_m=DEFAULT_LOOKAHEAD_M, slots: int = 3):
        self.model = model
        self.segment = segment
        self.slots = slots
        self.frame_size = tuple(model.cfg.vision.image_size)
        self.lookahead_m = tuple(lookahead_m)
        self.history = FrameHistory(frames=frames, interval_s=interval_s)
        self._lock = threading.Lock()
        self._ego: Optional[EgoState] = None
        self._route: Optional[np.ndarray] = None
        self._last_stamp_ns: Optional[int] = None
        self.dtype = "float32"
        self.writer: Optional[ContextWriter] = None

    def add_frame(self, stamp_ns: int, rgb_hwc: np.ndarray) -> None:
        frame = to_model_frame(rgb_hwc, *self.frame_size)
        with self._lock:
            self.history.add(stamp_ns, frame)

    def set_ego(self, ego: EgoState) -> None:
        with self._lock:
            self._ego = ego

    def set_route(self, route_xy: np.ndarray) -> None:
        with self._lock:
            self._route = route_xy

    def newest_stamp_ns(self) -> Optional[int]:
        with self._lock:
            return self.history.newest_stamp_ns

    def waiting_for(self) -> str:
        """Why ``tick`` would not run now ("" when it would)."""
        with self._lock:
            if self._ego is None:
                return "odometry"
            if self._route is None:
                return "route"
            selected = self.history.select()
            if selected is None:
                return (f"{self.history.frames} frames {self.history.interval_ns / 1e9:g} s apart "
                        f"(have {len(self.history)} over {self.history.span_s:.2f} s)")
            if selected[0][-1] == self._last_stamp_ns:
                return "a new frame"
        return ""

    def tick(self) -> Optional[PublishedContext]:
        """Prefill the newest frames + instruction and publish a slot; None if inputs are missing."""
        with self._lock:
            selected = self.history.select()
            ego, route = self._ego, self._route
        if selected is None or ego is None or route is None or selected[0][-1] == self._last_stamp_ns:
            return None
        stamps, frames = selected
        instruction = format_instruction(next_target_points(route, ego, self.lookahead_m), ego.speed_mps)
        start = time.perf_counter()
        context = self.model.understand(torch.from_numpy(frames), instruction)
        compute_ms = (time.perf_counter() - start) * 1e3
        if self.writer is None:
            self.writer = self._create_writer(context.kv.shape)
        seq, slot = self.writer.write(context.kv, stamp_ns=stamps[-1], next_position=context.next_position)
        self._last_stamp_ns = stamps[-1]
        return PublishedContext(
            seq=seq, slot=slot, stamp_ns=stamps[-1], num_layers=int(context.kv.shape[0]),
            num_tokens=context.num_tokens, dtype=self.dtype, model_id=context.model_id, compute_ms=compute_ms,
        )

    def _create_writer(self, kv_shape) -> ContextWriter:
        """Sized from the first context: its token count varies only with the instruction's
        digits, so twice the first count is ample room for every later one."""
        layers, _, kv_heads, tokens, head_dim = kv_shape
        return ContextWriter(self.segment, model_id=self.model.model_id, num_layers=layers, kv_heads=kv_heads,
                             head_dim=head_dim, max_tokens=2 * tokens, dtype=self.dtype, slots=self.slots)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
