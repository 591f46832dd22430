"""Windowed rate and latency figures for diagnostics."""

from __future__ import annotations

import time
from collections import deque
from typing import Optional

import numpy as np


class RateWindow:
    """Events (with an optional value, e.g. a latency) over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 2.0, clock=time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self._events: deque = deque()

    def add(self, value: float = 0.0) -> None:
        self._events.append((self.clock(), value))
        self._trim()

    def _trim(self) -> None:
        horizon = self.clock() - self.window_s
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()

    def rate_hz(self) -> float:
        self._trim()
        return len(self._events) / self.window_s

    def percentile(self, q: float) -> Optional[float]:
        self._trim()
        return float(np.percentile([v for _, v in self._events], q)) if self._events else None
