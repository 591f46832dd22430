"""What every automot node shares: model loading and a clean run/shutdown."""

from __future__ import annotations

import signal
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def load_model(params):
    """Build the configured model (lazily importing torch-heavy code) in eval mode."""
    import torch

    from automot_ros.model import build_model

    if params.num_threads > 0:
        torch.set_num_threads(params.num_threads)
    model = build_model(params.model, checkpoint=params.checkpoint or None)
    return model.to(params.device).eval()


def subscribe_contexts(node, contexts, error_log_period_s: float):
    """Feed the node's ContextSource from the ``context`` announcements; an announcement it
    refuses (another model's context) is logged at a throttled rate."""
    from automot_msgs.msg import ContextInfo

    from automot_ros.ros.context_conv import announcement_from_msg

    def on_context(msg: ContextInfo) -> None:
        try:
            contexts.announce(announcement_from_msg(msg))
        except ValueError as error:
            node.get_logger().error(str(error), throttle_duration_sec=error_log_period_s)

    return node.create_subscription(ContextInfo, "context", on_context, 10)


def default_segment(namespace: str) -> str:
    """automot_context_<namespace>: one segment per UE node, stable across restarts."""
    cleaned = "".join(c if c.isalnum() else "_" for c in namespace.strip("/"))
    return f"automot_context_{cleaned or 'root'}"


def spin_until_stopped(node, executor, stop: threading.Event) -> int:
    """The default loop of ``run``: serve callbacks until a signal or shutdown."""
    while not stop.is_set() and rclpy.ok():
        executor.spin_once(timeout_sec=0.1)
    return 0


def run(node_cls, args=None, loop=spin_until_stopped) -> int:
    """Init rclpy, run ``loop(node, executor, stop)`` on a ``node_cls`` until it returns (the
    default: until SIGINT/SIGTERM), always destroy the node; exit code (``loop``'s, or 2 for
    bad parameters).

    The signals only set ``stop``: the loop ends, callbacks finish, and only then is the
    node destroyed (the context writer unlinks its segment) and the context shut down. With
    rclpy's own handlers the context would be invalidated under running callbacks.
    """
    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = node_cls()
        executor.add_node(node)
        return loop(node, executor, stop)
    except ValueError as error:  # bad parameters or model config: say so, exit non-zero
        print(f"[{node_cls.__name__}] error: {error}", file=sys.stderr)
        return 2
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
