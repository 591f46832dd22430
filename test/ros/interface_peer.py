"""A second process for the interface tests: publishes a sample plan or serves Ask.

    python interface_peer.py publish-plan   publish sample_plan() on /automot/plan at 10 Hz
    python interface_peer.py serve-ask      answer /automot/ask with the question reversed
"""

import sys
import time

import rclpy
from automot_msgs.msg import DrivingPlan
from automot_msgs.srv import Ask
from rclpy.executors import ExternalShutdownException
from sample_messages import sample_plan


def publish_plan(node):
    publisher = node.create_publisher(DrivingPlan, "/automot/plan", 10)
    node.create_timer(0.1, lambda: publisher.publish(sample_plan()))


def serve_ask(node):
    def answer(request, response):
        start = time.perf_counter()
        response.success = bool(request.question)
        response.answer = request.question[::-1]
        response.error = "" if request.question else "empty question"
        response.context_seq = 42
        response.latency_ms = (time.perf_counter() - start) * 1e3
        return response

    node.create_service(Ask, "/automot/ask", answer)


def main():
    rclpy.init()
    node = rclpy.create_node("automot_interface_peer")
    {"publish-plan": publish_plan, "serve-ask": serve_ask}[sys.argv[1]](node)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
