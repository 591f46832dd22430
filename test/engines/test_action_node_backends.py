"""action_node on the torch and the onnxruntime-cpu backends, in real processes: the same
recorded context and the same 50 inputs, published by the test, give the same plans on
the same topics (tiny model). The onnxruntime node starts with an empty engine directory,
so it also exports the ONNX file on the fly."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
import torch
from automot_msgs.msg import ContextInfo, DrivingPlan
from nav_msgs.msg import Odometry, Path as PathMsg
from sensor_msgs.msg import Image

from automot_ros.data.synthetic import SyntheticScenario
from automot_ros.model import format_instruction
from automot_ros.ros.image_conv import rgb_to_image
from automot_ros.ros.odometry_conv import ego_to_odometry
from automot_ros.ros.qos import ROUTE_QOS, SENSOR_QOS
from automot_ros.ros.route_conv import xy_to_path
from automot_ros.ros.time_conv import ns_to_stamp, stamp_to_ns
from automot_ros.runtime.context_shm import ContextWriter

pytestmark = pytest.mark.slow
INPUTS = 50
BACKENDS = ("torch", "onnxruntime-cpu")


def _node_args(namespace: str, backend: str, **params):
    suffix = backend.replace("-", "_")
    args = [sys.executable, "-m", "automot_ros.nodes.action_node", "--ros-args", "-r", f"__ns:={namespace}",
            "-r", f"__node:=action_node_{suffix}", "-r", f"plan:=plan_{suffix}"]
    for name, value in {"model": "tiny", "backend": backend, "num_threads": 1, "max_context_age_s": 1000.0,
                        "cameras": "[front]", **params}.items():
        args += ["-p", f"{name}:={value}"]
    return args


def test_action_node_plans_match_between_torch_and_onnxruntime(rclpy_node, start_process, tiny_model, tmp_path):
    namespace = f"/automot_engines_{os.getpid()}"
    engine_dir = tmp_path / "engines"  # empty: the onnxruntime node exports on the fly
    nodes = {backend: start_process(_node_args(namespace, backend, engine_dir=str(engine_dir)))
             for backend in BACKENDS}

    # One recorded context (a real tiny UE prefill) in shared memory, announced below.
    scenario = SyntheticScenario(image_height=64, image_width=128)
    t0 = time.time_ns()
    frames = np.stack([scenario.render(scenario.ego_at(t, 0)) for t in (-0.75, -0.5, -0.25, 0.0)])
    context = tiny_model.understand(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
                                    format_instruction([[10.0, 0.0], [20.0, 0.5]], 8.0))
    d = tiny_model.cfg.decoder
    writer = ContextWriter(f"automot_test_{os.getpid()}_engines", tiny_model.model_id, d.layers, d.kv_heads,
                           d.head_dim, max_tokens=context.num_tokens)
    try:
        seq, slot = writer.write(context.kv, t0, context.next_position)
        info = ContextInfo(seq=seq, segment=writer.name, slot=slot, num_layers=d.layers,
                           num_tokens=context.num_tokens, dtype="float32", model_id=tiny_model.model_id)
        info.header.stamp = ns_to_stamp(t0)

        plans = {backend: {} for backend in BACKENDS}
        for backend in BACKENDS:
            rclpy_node.create_subscription(
                DrivingPlan, f"{namespace}/plan_{backend.replace('-', '_')}",
                lambda msg, b=backend: plans[b].__setitem__(stamp_to_ns(msg.header.stamp), msg), 100)
        context_pub = rclpy_node.create_publisher(ContextInfo, f"{namespace}/context", 10)
        camera_pub = rclpy_node.create_publisher(Image, f"{namespace}/camera/front/image_raw", SENSOR_QOS)
        odom_pub = rclpy_node.create_publisher(Odometry, f"{namespace}/ego/odom", SENSOR_QOS)
        route_pub = rclpy_node.create_publisher(PathMsg, f"{namespace}/route", ROUTE_QOS)
        route_pub.publish(xy_to_path(scenario.route(), ns_to_stamp(t0), "odom"))

        counter = iter(range(1, 10_000))

        def send() -> int:
            """Announce the context and publish one synchronized camera + odometry set."""
            k = next(counter)
            stamp = t0 + k * 50_000_000
            ego = scenario.ego_at(0.05 * k, stamp)
            ego = type(ego)(stamp, ego.x, ego.y, ego.yaw, 3.0 + (k % 10))  # varied speeds
            context_pub.publish(info)
            camera_pub.publish(rgb_to_image(scenario.render(ego), ns_to_stamp(stamp), "front_camera"))
            odom_pub.publish(ego_to_odometry(ego, "odom"))
            return stamp

        def both_ok(stamp) -> bool:
            return all(stamp in plans[b] and plans[b][stamp].status == DrivingPlan.STATUS_OK for b in BACKENDS)

        # Warm-up: until both nodes plan on the context (the onnxruntime one exports first).
        deadline = time.monotonic() + 50.0
        ready = False
        while time.monotonic() < deadline and not ready:
            stamp = send()
            ready = rclpy_node.spin_until(lambda s=stamp: both_ok(s), 0.5)
            assert all(n.alive() for n in nodes.values()), {b: n.output()[-3000:] for b, n in nodes.items()}
        assert ready, {b: n.output()[-3000:] for b, n in nodes.items()}

        compared = []
        attempts = 0
        while len(compared) < INPUTS and attempts < INPUTS + 10:
            attempts += 1
            stamp = send()
            if rclpy_node.spin_until(lambda s=stamp: both_ok(s), 5.0):
                compared.append(stamp)
        assert len(compared) == INPUTS, f"{len(compared)} of {attempts} inputs planned by both nodes"
    finally:
        writer.close()
        outputs = {b: n.output() for b, n in nodes.items()}

    worst_path = worst_conf = 0.0
    for stamp in compared:
        a, b = (plans[backend][stamp] for backend in BACKENDS)
        assert (a.backend, b.backend) == BACKENDS
        assert a.context_seq == b.context_seq == seq
        assert [(m.lateral, m.longitudinal) for m in a.meta_actions] == \
            [(m.lateral, m.longitudinal) for m in b.meta_actions], stamp
        worst_conf = max(worst_conf, max(abs(m.confidence - n.confidence) for m, n in zip(a.meta_actions,
                                                                                           b.meta_actions)))
        for points_a, points_b in ((a.path, b.path), (a.waypoints, b.waypoints)):
            xy_a = np.array([(p.x, p.y) for p in points_a])
            xy_b = np.array([(p.x, p.y) for p in points_b])
            assert xy_a.shape == xy_b.shape and len(xy_a) in (20, 6)
            worst_path = max(worst_path, float(np.abs(xy_a - xy_b).max()))
    print(f"torch vs onnxruntime-cpu over {INPUTS} inputs: path/waypoints max abs diff {worst_path:.2e} m, "
          f"confidence {worst_conf:.2e}")
    assert worst_path <= 1e-3 and worst_conf <= 1e-4, (worst_path, worst_conf)
    # Different inputs gave different plans (the comparison is not trivially equal).
    assert len({round(plans["torch"][s].waypoints[-1].x, 4) for s in compared}) > 5

    assert "exporting it now" in outputs["onnxruntime-cpu"], outputs["onnxruntime-cpu"][-3000:]
    assert (engine_dir / f"{tiny_model.model_id}.ae.fp32.onnx").is_file()
    assert (engine_dir / f"{tiny_model.model_id}.ae.parity.json").is_file()
    for backend, node in nodes.items():
        assert node.stop() == 0, node.output()[-3000:]
