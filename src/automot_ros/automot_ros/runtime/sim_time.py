"""The Understanding Expert's rate under simulated time (no ROS, no torch).

With ``use_sim_time`` the understanding node schedules its prefills on sim time as carried
by the camera stamps (a simulator bridge stamps its frames from the /clock it publishes),
not on the wall clock: a prefill is due for the first frame stamped at or after the due
time. So a lockstep simulator that waits for the stack gets the same contexts however slow
the CPU is. A simulator bridge predicts the node's contexts with ``UnderstandingMirror``
(the same schedule and the same frame-history rule, fed the same stamps).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from automot_ros.runtime.frame_history import FrameHistory


class SimTimeSchedule:
    """Due times every 1/rate_hz of sim time (integer ns).

    ``due(stamp_ns)`` is True for the first frame at or after the due time, and then moves
    the due time one period on; a stream that fell more than a period behind (a gap, e.g.
    between two episodes) restarts one period after the frame.
    """

    def __init__(self, rate_hz: float):
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.period_ns = int(round(1e9 / rate_hz))
        self.next_ns: Optional[int] = None

    def due(self, stamp_ns: int) -> bool:
        if self.next_ns is not None and stamp_ns < self.next_ns:
            return False
        following = stamp_ns + self.period_ns if self.next_ns is None else self.next_ns + self.period_ns
        self.next_ns = following if following > stamp_ns else stamp_ns + self.period_ns
        return True


class UnderstandingMirror:
    """Whether the understanding node will publish a context for a frame it receives: its
    prefill is due (SimTimeSchedule) and its frame history is complete (FrameHistory).
    Assumes the node has odometry and a route, and sees every frame."""

    def __init__(self, rate_hz: float, frames: int = 4, interval_s: float = 0.25):
        self.schedule = SimTimeSchedule(rate_hz)
        self.history = FrameHistory(frames=frames, interval_s=interval_s)
        self._blank = np.zeros((1, 1, 1), dtype=np.uint8)

    def frame(self, stamp_ns: int) -> bool:
        self.history.add(stamp_ns, self._blank)
        due = self.schedule.due(stamp_ns)
        return due and self.history.select() is not None
