"""The automot_msgs interfaces, built by colcon, work across processes over DDS."""

import math
import subprocess
import sys

from automot_msgs.msg import ContextInfo, DrivingPlan, MetaAction
from automot_msgs.srv import Ask
from automot_ros.ask_client import ask, wait_for_reply_path
from automot_ros.ros.introspection import message_to_dict
from sample_messages import sample_plan


def test_interfaces_have_the_agreed_fields_and_constants():
    assert (MetaAction.LAT_STRAIGHT, MetaAction.LAT_SLIGHT_LEFT, MetaAction.LAT_LEFT) == (0, 1, 2)
    assert (MetaAction.LAT_SLIGHT_RIGHT, MetaAction.LAT_RIGHT) == (3, 4)
    assert (MetaAction.LON_STOP, MetaAction.LON_DECELERATE, MetaAction.LON_KEEP, MetaAction.LON_ACCELERATE) == (
        0, 1, 2, 3,
    )
    assert (
        DrivingPlan.STATUS_OK,
        DrivingPlan.STATUS_STALE_CONTEXT,
        DrivingPlan.STATUS_NO_CONTEXT,
        DrivingPlan.STATUS_INPUT_ERROR,
    ) == (0, 1, 2, 3)
    assert list(DrivingPlan.get_fields_and_field_types()) == [
        "header", "meta_actions", "path", "waypoints", "context_seq", "context_age_ms",
        "inference_ms", "backend", "status",
    ]
    assert list(ContextInfo.get_fields_and_field_types()) == [
        "header", "seq", "segment", "slot", "num_layers", "num_tokens", "dtype", "model_id", "compute_ms",
    ]
    assert list(Ask.Request.get_fields_and_field_types()) == ["question"]
    assert list(Ask.Response.get_fields_and_field_types()) == [
        "success", "answer", "error", "context_seq", "latency_ms",
    ]


def test_driving_plan_crosses_processes_with_every_field_equal(rclpy_node, python_peer):
    peer = python_peer("ros/interface_peer.py", "publish-plan")
    received = []
    rclpy_node.create_subscription(DrivingPlan, "/automot/plan", received.append, 10)

    assert rclpy_node.spin_until(lambda: received, timeout_s=30.0), peer.output()

    got, want = message_to_dict(received[0]), message_to_dict(sample_plan())
    assert got.keys() == want.keys()
    # float32 fields round-trip exactly because sample values are exact in float32.
    assert got == want
    assert len(got["path"]) == 20 and len(got["waypoints"]) == 6 and len(got["meta_actions"]) == 3
    assert math.isclose(got["context_age_ms"], 312.5)


def test_ask_service_is_answered_across_processes(rclpy_node, python_peer):
    peer = python_peer("ros/interface_peer.py", "serve-ask")
    client = rclpy_node.create_client(Ask, "/automot/ask")
    assert rclpy_node.spin_until(client.service_is_ready, timeout_s=30.0), peer.output()
    assert wait_for_reply_path(client, rclpy_node.spin_until, timeout_s=30.0), peer.output()

    response = ask(client, "what is ahead?", rclpy_node.spin_until, timeout_s=10.0)
    assert response is not None and response.success and response.answer == "?daeha si tahw"
    assert response.error == "" and response.context_seq == 42 and response.latency_ms >= 0.0


def test_automot_ask_prints_the_answers_of_a_serving_process(python_peer):
    peer = python_peer("ros/interface_peer.py", "serve-ask")
    result = subprocess.run([sys.executable, "-m", "automot_ros.cli", "ask", "what is ahead?", "left?",
                             "--timeout", "30"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout, result.stderr, peer.output())
    assert "A: ?daeha si tahw" in result.stdout and "A: ?tfel" in result.stdout
