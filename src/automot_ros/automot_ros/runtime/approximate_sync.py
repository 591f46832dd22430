"""ApproximateTime synchronization of N message streams by stamp (no ROS needed).

``message_filters`` is not on PyPI (DESIGN.md section 4), so the nodes feed their own
subscriptions into a :class:`SyncPolicy`: the real ``message_filters``
ApproximateTimeSynchronizer when it is importable (a ROS 2 install), otherwise
:class:`ApproximateTimeSync`, which has the same parameters and the same matching rule
as message_filters' *Python* synchronizer (not the C++ ApproximateTime policy, which
uses a different, pivot-based search):

- each input keeps a queue keyed by stamp (a message with a stamp already queued on
  that input replaces it); beyond ``queue_size`` entries the oldest stamp is dropped;
- when a message with stamp ``t`` arrives on input ``i``, every other input's queued
  stamps with ``|s - t| <= slop`` are candidates, ordered by closeness to ``t`` (ties
  keep arrival order); if some input has no candidate nothing happens;
- combinations are tried in that order (input 0's candidate varying slowest) and the
  first whose spread ``max - min`` is strictly below ``slop`` is emitted: the callback
  gets one message per input, in input order, and exactly those messages leave their
  queues. Older unmatched messages stay until ``queue_size`` pushes them out.
  (So ``slop = 0`` never matches: use exact stamps with a small positive slop.)

Stamps are integer nanoseconds (``int``), float seconds (``float``), an rclpy
``Time`` (``.nanoseconds``) or a ``builtin_interfaces/Time`` (``.sec``, ``.nanosec``).
``slop`` is in seconds. A message without a stamp (``stamp=None``) is dropped unless
``allow_headerless``, in which case it is stamped with ``clock_ns()`` on arrival.
"""

from __future__ import annotations

import abc
import itertools
import logging
import threading
import time
from typing import Any, Callable, List, Optional

__all__ = [
    "SyncPolicy",
    "ApproximateTimeSync",
    "MessageFiltersSync",
    "make_approximate_sync",
    "to_nanoseconds",
    "header_stamp",
]

_log = logging.getLogger(__name__)


def to_nanoseconds(stamp) -> int:
    """Integer nanoseconds from an int (ns), a float (s), an rclpy Time or a
    builtin_interfaces/Time."""
    if isinstance(stamp, bool):
        raise TypeError("a bool is not a stamp")
    if isinstance(stamp, int):
        return stamp
    if isinstance(stamp, float):
        return round(stamp * 1e9)
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    raise TypeError(f"cannot read a stamp from {type(stamp).__name__}")


def header_stamp(msg) -> Optional[Any]:
    """``msg.header.stamp`` if the message has one, else None (headerless)."""
    header = getattr(msg, "header", None)
    return getattr(header, "stamp", None)


class SyncPolicy(abc.ABC):
    """What a node feeds its inputs into and gets matched sets from.

    Both implementations take ``(num_inputs, queue_size, slop, allow_headerless)`` and
    call each registered callback as ``cb(msg_0, ..., msg_{N-1}, *args)``, like
    message_filters' ``registerCallback``.
    """

    def __init__(self, num_inputs: int, queue_size: int, slop: float, allow_headerless: bool = False):
        if num_inputs < 1:
            raise ValueError(f"num_inputs must be >= 1, got {num_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self.slop = slop
        self.allow_headerless = allow_headerless

    @abc.abstractmethod
    def register_callback(self, cb: Callable[..., Any], *args) -> None:
        """Call ``cb(*matched_msgs, *args)`` for every matched set."""

    @abc.abstractmethod
    def add(self, index: int, stamp, msg) -> None:
        """Feed ``msg`` with ``stamp`` (None: headerless) into input ``index``."""

    def add_msg(self, index: int, msg) -> None:
        """Feed a ROS message, stamped by its ``header.stamp`` (headerless if none)."""
        self.add(index, header_stamp(msg), msg)


class ApproximateTimeSync(SyncPolicy):
    """The project's own ApproximateTime policy (rule in the module docstring).

    ``clock_ns`` stamps headerless messages when ``allow_headerless`` (default: system
    time, as ROS time is without sim time). Thread-safe; callbacks run after the
    internal lock is released, in the thread that completed the set.
    """

    def __init__(self, num_inputs: int, queue_size: int, slop: float, allow_headerless: bool = False,
                 clock_ns: Callable[[], int] = time.time_ns):
        super().__init__(num_inputs, queue_size, slop, allow_headerless)
        self._slop_ns = round(slop * 1e9)
        self._clock_ns = clock_ns
        # Per input: stamp_ns -> msg. dicts keep arrival order, which breaks ties.
        self._queues: List[dict] = [{} for _ in range(num_inputs)]
        self._callbacks: list = []
        self._lock = threading.Lock()
        self._warned_headerless = False

    def register_callback(self, cb: Callable[..., Any], *args) -> None:
        self._callbacks.append((cb, args))

    def queued(self, index: int) -> List[int]:
        """Stamps (ns) waiting on input ``index``, in arrival order (for tests/diagnostics)."""
        with self._lock:
            return list(self._queues[index])

    def add(self, index: int, stamp, msg) -> bool:
        """Feed one message; returns True if it completed (and emitted) a set."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input {index} out of range [0, {self.num_inputs})")
        if stamp is None:
            if not self.allow_headerless:
                if not self._warned_headerless:
                    _log.warning("dropping headerless messages: allow_headerless is False")
                    self._warned_headerless = True
                return False
            t = self._clock_ns()
        else:
            t = to_nanoseconds(stamp)
        with self._lock:
            matched = self._insert_and_match(index, t, msg)
        if matched is None:
            return False
        for cb, args in self._callbacks:
            cb(*matched, *args)
        return True

    def _insert_and_match(self, index: int, t: int, msg) -> Optional[tuple]:
        queues = self._queues
        mine = queues[index]
        mine[t] = msg
        while len(mine) > self.queue_size:
            del mine[min(mine)]
        slop = self._slop_ns
        candidates = []
        for j, queue in enumerate(queues):
            if j == index:
                continue
            near = sorted((s for s in queue if abs(s - t) <= slop), key=lambda s: abs(s - t))
            if not near:
                return None
            candidates.append(near)
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, t)
            # The new message may itself have been the oldest one dropped above: then
            # it is not in its queue and no set can include it.
            if max(stamps) - min(stamps) < slop and all(s in q for q, s in zip(queues, stamps)):
                return tuple(q.pop(s) for q, s in zip(queues, stamps))
        return None


class MessageFiltersSync(SyncPolicy):
    """message_filters' ApproximateTimeSynchronizer behind the SyncPolicy interface.

    Inputs are message_filters ``SimpleFilter`` objects the node pushes into, so the
    node's subscriptions stay its own either way. message_filters reads each message's
    ``header.stamp`` itself: the ``stamp`` passed to ``add`` is ignored (use
    ``add_msg``, or pass the header stamp).
    """

    def __init__(self, num_inputs: int, queue_size: int, slop: float, allow_headerless: bool = False):
        super().__init__(num_inputs, queue_size, slop, allow_headerless)
        import message_filters  # only on ROS 2 installs

        self._inputs = [message_filters.SimpleFilter() for _ in range(num_inputs)]
        self._sync = message_filters.ApproximateTimeSynchronizer(
            self._inputs, queue_size, slop, allow_headerless=allow_headerless)

    def register_callback(self, cb: Callable[..., Any], *args) -> None:
        self._sync.registerCallback(cb, *args)

    def add(self, index: int, stamp, msg) -> None:
        self._inputs[index].signalMessage(msg)


def make_approximate_sync(num_inputs: int, queue_size: int, slop: float, allow_headerless: bool = False,
                          prefer_message_filters: bool = True) -> SyncPolicy:
    """message_filters' synchronizer if importable (and preferred), else ours."""
    if prefer_message_filters:
        try:
            return MessageFiltersSync(num_inputs, queue_size, slop, allow_headerless)
        except ImportError:
            pass
    return ApproximateTimeSync(num_inputs, queue_size, slop, allow_headerless)
