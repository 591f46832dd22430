"""The ROS side of `automot replay`: publish a bag's serialized messages, record the stack's.

Messages go out as the CDR bytes the bag holds (rclpy publishes ``bytes`` as a serialized
message, like `ros2 bag play`), so nothing is converted; the rclpy class is only needed for
the topic's type support. Recording subscribes with ``raw=True`` and keeps the CDR bytes
with the wall-clock receive time, like `ros2 bag record`. Callbacks only queue; the caller
writes the bag from its own thread.
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from typing import Dict, Optional

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> sensor_msgs.msg.Image (ValueError when not installed)."""
    try:
        package, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ValueError, ImportError, AttributeError) as error:
        raise ValueError(f"message type {msgtype!r} is not available to rclpy here: {error}") from error


def publisher_qos(latched: bool) -> QoSProfile:
    """Reliable (matches reliable and best-effort readers); latched topics TRANSIENT_LOCAL."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1 if latched else 10,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


RECORD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE)


class BagPlayerNode:
    """A node on a context of its own, spun by a background thread while the caller plays."""

    def __init__(self, name: str = "automot_replay"):
        self.context = rclpy.context.Context()
        # No rclpy signal handlers: SIGINT stays Python's KeyboardInterrupt, which the replay
        # turns into "stop playing, record what is in flight, score".
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.publishers: Dict[str, object] = {}
        self.received: "queue.Queue[tuple]" = queue.Queue()  # (topic, receive wall ns, CDR bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="replay_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down under the spin
                if self._stop.is_set():
                    return
                raise

    def add_publisher(self, topic: str, msgtype: str, latched: bool = False) -> None:
        self.publishers[topic] = self.node.create_publisher(message_class(msgtype), topic, publisher_qos(latched))

    def publish(self, topic: str, cdr: bytes) -> None:
        self.publishers[topic].publish(bytes(cdr))

    def record(self, topic: str, msgtype: str, on_message=None) -> None:
        """Queue every message on topic as (topic, receive time, bytes); on_message(bytes) too."""

        def callback(data: bytes) -> None:
            self.received.put((topic, time.time_ns(), bytes(data)))
            if on_message is not None:
                on_message(data)

        self.node.create_subscription(message_class(msgtype), topic, callback, RECORD_QOS, raw=True)

    def subscribers(self, topic: str) -> int:
        return self.node.count_subscribers(topic)

    def publishers_on(self, topic: str) -> int:
        return self.node.count_publishers(topic)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def drain(self, limit: Optional[int] = None):
        """The queued recordings, oldest first."""
        items = []
        while limit is None or len(items) < limit:
            try:
                items.append(self.received.get_nowait())
            except queue.Empty:
                break
        return items
