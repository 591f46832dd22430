"""What every automot node shares: model loading and a clean run/shutdown."""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor


def load_model(params):
    """Build the configured model (lazily importing torch-heavy code) in eval mode."""
    import torch

    from automot_ros.model import build_model

    if params.num_threads > 0:
        torch.set_num_threads(params.num_threads)
    model = build_model(params.model, checkpoint=params.checkpoint or None)
    return model.to(params.device).eval()


def default_segment(namespace: str) -> str:
    """automot_context_<namespace>: one segment per UE node, stable across restarts."""
    cleaned = "".join(c if c.isalnum() else "_" for c in namespace.strip("/"))
    return f"automot_context_{cleaned or 'root'}"


def run(node_cls, args=None, threads: int = 1) -> int:
    """Init rclpy, spin ``node_cls`` until SIGINT/SIGTERM, always destroy it; exit code."""
    # rclpy's own SIGINT/SIGTERM handling shuts the context down, spin returns, and the
    # node's destroy_node() releases what it holds (the context writer unlinks its segment).
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    try:
        node = node_cls()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as error:  # bad parameters or model config: say so, exit non-zero
        print(f"[{node_cls.__name__}] error: {error}", file=sys.stderr)
        return 2
    finally:
        executor.shutdown()  # no callback may run while the node releases its resources
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
