"""Calling the `ask` service (automot_msgs/srv/Ask) without losing the first answer.

Fast DDS can drop a service's response when the server has not yet discovered the client's
reply reader (ros2/rmw_fastrtps#467: it waits about 100 ms, then gives up), although
``service_is_ready()`` is already true: that only says the request path is matched. The
request is then served but its answer never arrives. An answer costs seconds of decoding,
so instead of re-asking, ``wait_for_reply_path`` first sends empty questions, which every
Ask server answers at once (the language node with "the question is empty"), until one
reply comes back: from then on the reply path is matched.

``spin_until(predicate, timeout_s) -> bool`` spins the caller's node or executor until the
predicate holds or the time is up (each caller has its own way of spinning).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from automot_msgs.srv import Ask

SpinUntil = Callable[[Callable[[], bool], float], bool]

# How long one empty question may go unanswered before another is sent: well above a
# served reply's round trip on loopback, well below a caller's patience.
PROBE_PERIOD_S = 1.0


def wait_for_reply_path(client, spin_until: SpinUntil, timeout_s: float,
                        probe_period_s: float = PROBE_PERIOD_S) -> bool:
    """True once an empty question sent through ``client`` got a reply (of any kind) within
    ``timeout_s``; False if none did. Call it after ``service_is_ready()``."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0.0:
            return False
        probe = client.call_async(Ask.Request(question=""))
        if spin_until(probe.done, min(probe_period_s, remaining)):
            return True


def ask(client, question: str, spin_until: SpinUntil, timeout_s: float) -> Optional[Ask.Response]:
    """The server's response to ``question``, or None if none came within ``timeout_s``."""
    future = client.call_async(Ask.Request(question=question))
    spin_until(future.done, timeout_s)
    return future.result() if future.done() else None


__all__ = ["PROBE_PERIOD_S", "ask", "wait_for_reply_path"]
