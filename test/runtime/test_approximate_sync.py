"""ApproximateTime policy: hand-built stamp sequences with the expected matched sets."""

import sys
import types
from types import SimpleNamespace as NS

import pytest

from automot_ros.runtime.approximate_sync import (
    ApproximateTimeSync, MessageFiltersSync, SyncPolicy, make_approximate_sync, to_nanoseconds)

MS = 1_000_000  # ns


def make(num_inputs=2, queue_size=10, slop=0.010, **kw):
    sync = ApproximateTimeSync(num_inputs, queue_size, slop, **kw)
    out = []
    sync.register_callback(lambda *msgs: out.append(msgs))
    return sync, out


def test_exact_match_emits_and_clears_queues():
    sync, out = make()
    assert sync.add(0, 1.0, "a1") is False
    assert sync.add(1, 1.0, "b1") is True
    assert out == [("a1", "b1")]
    assert sync.queued(0) == [] and sync.queued(1) == []


def test_within_slop_matches_outside_does_not():
    sync, out = make(slop=0.010)
    sync.add(0, 1000 * MS, "a1")
    sync.add(1, 1004 * MS, "b1")
    assert out == [("a1", "b1")]
    sync.add(0, 2000 * MS, "a2")
    sync.add(1, 2020 * MS, "b2")  # 20 ms apart: no set, both stay queued
    assert out == [("a1", "b1")]
    assert sync.queued(0) == [2000 * MS] and sync.queued(1) == [2020 * MS]
    sync.add(0, 2021 * MS, "a3")  # matches b2; the older unmatched a2 stays queued
    assert out[-1] == ("a3", "b2")
    assert sync.queued(0) == [2000 * MS] and sync.queued(1) == []


def test_spread_equal_to_slop_is_not_a_match():
    sync, out = make(slop=0.010)
    sync.add(0, 0, "a")
    sync.add(1, 10 * MS, "b")  # within slop of each other, but the spread must be < slop
    assert out == []
    sync.add(1, 9 * MS, "b2")
    assert out == [("a", "b2")]


def test_queue_size_overflow_drops_oldest_stamp():
    sync, out = make(queue_size=2)
    sync.add(0, 3.0, "a3")
    sync.add(0, 1.0, "a1")
    sync.add(0, 2.0, "a2")  # three queued > 2: the oldest stamp (1.0) goes, not the first to arrive
    assert sorted(sync.queued(0)) == [2_000_000_000, 3_000_000_000]
    sync.add(1, 1.0, "b1")
    assert out == []
    sync.add(1, 2.0, "b2")
    assert out == [("a2", "b2")]


def test_new_message_dropped_by_overflow_cannot_match():
    sync, out = make(queue_size=1)
    sync.add(1, 5.0, "b5")
    sync.add(0, 6.0, "a6")
    sync.add(0, 5.0, "a5")  # older than the queued a6: overflow drops a5 itself
    assert out == [] and sync.queued(0) == [6_000_000_000]


def test_out_of_order_arrival():
    sync, out = make()
    sync.add(0, 3.0, "a3")
    sync.add(0, 1.0, "a1")
    sync.add(1, 1.001, "b1")
    sync.add(1, 3.002, "b3")
    assert out == [("a1", "b1"), ("a3", "b3")]


def test_one_stream_missing_emits_nothing():
    sync, out = make(num_inputs=3, queue_size=5)
    for k in range(20):
        sync.add(0, k * 0.1, f"a{k}")
        sync.add(1, k * 0.1, f"b{k}")
    assert out == []
    assert len(sync.queued(0)) == 5 and len(sync.queued(1)) == 5  # bounded meanwhile
    sync.add(2, 1.9, "c19")
    assert out == [("a19", "b19", "c19")]


def test_closest_candidates_win_and_order_is_input_order():
    sync, out = make(num_inputs=3, slop=0.020)
    sync.add(0, 1.000, "a_far")
    sync.add(0, 1.008, "a_near")
    sync.add(1, 1.009, "b")
    sync.add(2, 1.010, "c")
    assert out == [("a_near", "b", "c")]
    assert sync.queued(0) == [1_000_000_000]


def test_first_valid_combination_in_closeness_order():
    # slop 10 ns; c arrives at 0. Candidates for input 0 by closeness: -6 then 9.
    # (-6, 4, 0) spreads 10 (not < 10), so (9, 4, 0) is the set.
    sync, out = make(num_inputs=3, slop=10e-9)
    sync.add(0, 9, "a9")
    sync.add(0, -6, "a-6")
    sync.add(1, 4, "b4")
    sync.add(2, 0, "c0")
    assert out == [("a9", "b4", "c0")]


def test_same_stamp_replaces_queued_message():
    sync, out = make()
    sync.add(0, 1.0, "a-old")
    sync.add(0, 1.0, "a-new")
    sync.add(1, 1.0, "b")
    assert out == [("a-new", "b")]


def test_headerless_messages():
    sync, out = make()
    assert sync.add(0, None, "a") is False and sync.queued(0) == []
    clock = iter([5 * MS, 6 * MS])
    sync, out = make(allow_headerless=True, clock_ns=lambda: next(clock))
    sync.add_msg(0, "no header")  # stamped 5 ms on arrival
    sync.add_msg(1, NS(header=NS(stamp=NS(sec=0, nanosec=5 * MS + 1))))
    assert out and out[0][0] == "no header"


def test_stamp_forms():
    assert to_nanoseconds(1_500_000_000) == 1_500_000_000
    assert to_nanoseconds(1.5) == 1_500_000_000
    assert to_nanoseconds(NS(nanoseconds=7)) == 7  # rclpy.time.Time
    assert to_nanoseconds(NS(sec=2, nanosec=3)) == 2_000_000_003  # builtin_interfaces/Time
    with pytest.raises(TypeError):
        to_nanoseconds("1.0")
    with pytest.raises(TypeError):
        to_nanoseconds(True)


def test_callbacks_get_extra_args_and_all_run():
    sync = ApproximateTimeSync(2, 10, 0.01)
    got = []
    sync.register_callback(lambda a, b, tag: got.append((a, b, tag)), "first")
    sync.register_callback(lambda a, b: got.append((a, b)))
    sync.add(0, 1.0, "a")
    sync.add(1, 1.0, "b")
    assert got == [("a", "b", "first"), ("a", "b")]


def test_single_input_passes_through():
    sync, out = make(num_inputs=1)
    sync.add(0, 1.0, "x")
    assert out == [("x",)]


def test_invalid_parameters():
    for args in [(0, 10, 0.1), (2, 0, 0.1), (2, 10, -0.1)]:
        with pytest.raises(ValueError):
            ApproximateTimeSync(*args)
    with pytest.raises(IndexError):
        ApproximateTimeSync(2, 10, 0.1).add(2, 1.0, "x")


def test_factory_falls_back_without_message_filters(monkeypatch):
    monkeypatch.setitem(sys.modules, "message_filters", None)  # import raises ImportError
    sync = make_approximate_sync(3, 7, 0.05, allow_headerless=True)
    assert isinstance(sync, ApproximateTimeSync) and isinstance(sync, SyncPolicy)
    assert (sync.num_inputs, sync.queue_size, sync.slop, sync.allow_headerless) == (3, 7, 0.05, True)
    assert isinstance(make_approximate_sync(2, 1, 0.1, prefer_message_filters=False), ApproximateTimeSync)


def test_factory_uses_message_filters_with_identical_parameters(monkeypatch):
    """A stand-in message_filters with its public API (SimpleFilter inputs,
    ApproximateTimeSynchronizer(fs, queue_size, slop, allow_headerless), registerCallback)."""
    created = {}

    class SimpleFilter:
        def __init__(self):
            self.callbacks = []

        def registerCallback(self, cb, *args):
            self.callbacks.append((cb, args))

        def signalMessage(self, *msg):
            for cb, args in self.callbacks:
                cb(*(msg + args))

    class ApproximateTimeSynchronizer(SimpleFilter):
        def __init__(self, fs, queue_size, slop, allow_headerless=False):
            super().__init__()
            created.update(fs=fs, queue_size=queue_size, slop=slop, allow_headerless=allow_headerless)
            self._impl = ApproximateTimeSync(len(fs), queue_size, slop, allow_headerless)
            self._impl.register_callback(self.signalMessage)
            for i, f in enumerate(fs):
                f.registerCallback(lambda msg, i=i: self._impl.add_msg(i, msg))

    fake = types.ModuleType("message_filters")
    fake.SimpleFilter, fake.ApproximateTimeSynchronizer = SimpleFilter, ApproximateTimeSynchronizer
    monkeypatch.setitem(sys.modules, "message_filters", fake)

    sync = make_approximate_sync(2, 4, 0.02)
    assert isinstance(sync, MessageFiltersSync)
    assert (created["queue_size"], created["slop"], created["allow_headerless"]) == (4, 0.02, False)
    assert len(created["fs"]) == 2
    out = []
    sync.register_callback(lambda *msgs: out.append(msgs))
    a = NS(header=NS(stamp=NS(sec=1, nanosec=0)))
    b = NS(header=NS(stamp=NS(sec=1, nanosec=5 * MS)))
    sync.add_msg(0, a)
    sync.add_msg(1, b)
    assert out == [(a, b)]
