"""The understanding node's prefill schedule under sim time, and the bridge's mirror of it
(runtime/sim_time.py)."""

from __future__ import annotations

from automot_ros.runtime.sim_time import SimTimeSchedule, UnderstandingMirror


def test_sim_time_schedule_is_due_once_per_period_and_restarts_after_a_gap():
    schedule = SimTimeSchedule(2.0)
    stamps = [1_000_000_000 + k * 50_000_000 for k in range(41)]
    due = [s for s in stamps if schedule.due(s)]
    assert due == stamps[::10]
    assert schedule.due(stamps[-1] + 7_000_000_000)  # after a gap: at once
    assert not schedule.due(stamps[-1] + 7_050_000_000)
    every = SimTimeSchedule(20.0)
    assert all(every.due(s) for s in stamps)


def test_understanding_mirror_expects_a_context_once_the_history_is_complete():
    mirror = UnderstandingMirror(20.0, frames=4, interval_s=0.25)
    expected = [k for k in range(40) if mirror.frame(k * 50_000_000)]
    assert expected[0] == 13 and expected == list(range(13, 40))  # 4 frames 0.25 s apart: from 0.65 s
    slow = UnderstandingMirror(2.0)
    expected = [k for k in range(60) if slow.frame(k * 50_000_000)]
    assert expected == [20, 30, 40, 50]  # due every 0.5 s; at 0 and 0.5 s the history is short
    # A new episode 5 s later starts over: the old frames are too far back to count.
    assert [k for k in range(60, 100) if slow.frame(5_000_000_000 + k * 50_000_000)] == [80, 90]
