"""The Understanding Expert's camera history: the newest frame and earlier ones at fixed spacing."""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from automot_ros.errors import InputError


class FrameHistory:
    """Keeps recent frames and picks ``frames`` of them ``interval_s`` apart, newest last.

    For target times t, t - interval, ..., the stored frame nearest each is taken if it lies
    within half an interval; otherwise the history is not yet (or no longer) complete.
    """

    def __init__(self, frames: int = 4, interval_s: float = 0.25):
        if frames < 1 or interval_s <= 0.0:
            raise ValueError(f"need frames >= 1 and interval_s > 0, got {frames}, {interval_s}")
        self.frames = frames
        self.interval_ns = int(round(interval_s * 1e9))
        self._stamps: deque = deque()
        self._images: deque = deque()

    def add(self, stamp_ns: int, frame: np.ndarray) -> None:
        if self._stamps and stamp_ns <= self._stamps[-1]:
            raise InputError(f"frame stamp {stamp_ns} ns is not after the previous {self._stamps[-1]} ns")
        self._stamps.append(stamp_ns)
        self._images.append(frame)
        # One extra interval of slack so the oldest target always has its nearest frame.
        horizon_ns = (self.frames + 1) * self.interval_ns
        while self._stamps[-1] - self._stamps[0] > horizon_ns:
            self._stamps.popleft()
            self._images.popleft()

    def clear(self) -> None:
        self._stamps.clear()
        self._images.clear()

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def span_s(self) -> float:
        return (self._stamps[-1] - self._stamps[0]) / 1e9 if self._stamps else 0.0

    @property
    def newest_stamp_ns(self):
        return self._stamps[-1] if self._stamps else None

    def select(self):
        """(stamps [frames], frames stacked [frames, ...]) oldest first, or None if incomplete."""
        if not self._stamps:
            return None
        stamps = list(self._stamps)
        chosen = []
        for k in reversed(range(self.frames)):
            target = stamps[-1] - k * self.interval_ns
            i = bisect.bisect_left(stamps, target)
            candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
            best = min(candidates, key=lambda j: abs(stamps[j] - target))
            if abs(stamps[best] - target) > self.interval_ns // 2:
                return None
            chosen.append(best)
        return [stamps[j] for j in chosen], np.stack([self._images[j] for j in chosen])
