"""The running stack, in real processes: understanding, action and language nodes plus a
synthetic camera/odometry/route source, observed over DDS on loopback (tiny model)."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import cv2
import pytest
from automot_msgs.msg import ContextInfo, DrivingPlan
from automot_msgs.srv import Ask
from nav_msgs.msg import Odometry, Path as PathMsg
from sensor_msgs.msg import CompressedImage, Image

from automot_ros.ask_client import ask, wait_for_reply_path
from automot_ros.data.ego import EgoState
from automot_ros.data.synthetic import SyntheticScenario
from automot_ros.ros.image_conv import rgb_to_image
from automot_ros.ros.odometry_conv import ego_to_odometry
from automot_ros.ros.qos import ROUTE_QOS, SENSOR_QOS
from automot_ros.ros.route_conv import xy_to_path
from automot_ros.ros.time_conv import ns_to_stamp, stamp_to_ns

NAMESPACE = "/automot_it"


@pytest.fixture
def stack(start_process):
    """Start nodes: ``stack.start("action_node", max_context_age_s=1.0)``; segments the
    test's nodes created are removed at teardown even after a SIGKILL."""
    segment = f"automot_test_{os.getpid()}_ctx"

    class Stack:
        namespace = NAMESPACE

        def __init__(self):
            self.segment = segment

        def start(self, executable: str, **params):
            defaults = {"model": "tiny", "segment": segment, "num_threads": 1}
            if executable == "synthetic_source":
                defaults = {}
            args = [sys.executable, "-m", f"automot_ros.nodes.{executable}", "--ros-args", "-r", f"__ns:={NAMESPACE}"]
            for name, value in {**defaults, **params}.items():
                args += ["-p", f"{name}:={_param_text(value)}"]
            return start_process(args)

    yield Stack()
    stale = Path("/dev/shm") / segment
    if stale.exists():
        stale.unlink()


def _param_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) if not isinstance(v, str) else f"'{v}'" for v in value) + "]"
    return str(value)


pytestmark = pytest.mark.slow
OK, STALE, NO_CONTEXT, INPUT_ERROR = (DrivingPlan.STATUS_OK, DrivingPlan.STATUS_STALE_CONTEXT,
                                      DrivingPlan.STATUS_NO_CONTEXT, DrivingPlan.STATUS_INPUT_ERROR)


class Probe:
    """Records plans, contexts and camera stamps seen by the test's own node."""

    def __init__(self, node):
        self.node = node
        self.plans, self.contexts, self.camera_stamps = [], [], []
        node.create_subscription(DrivingPlan, f"{NAMESPACE}/plan", self.plans.append, 100)
        node.create_subscription(ContextInfo, f"{NAMESPACE}/context", self.contexts.append, 100)
        node.create_subscription(
            Image, f"{NAMESPACE}/camera/front/image_raw",
            lambda m: self.camera_stamps.append(stamp_to_ns(m.header.stamp)), SENSOR_QOS)

    def spin(self, seconds: float, until=lambda: False) -> bool:
        return self.node.spin_until(until, timeout_s=seconds)

    def ask(self, question: str, timeout_s: float = 60.0) -> Ask.Response:
        client = self.node.create_client(Ask, f"{NAMESPACE}/ask")
        assert self.spin(30.0, until=client.service_is_ready), "ask service did not appear"
        assert wait_for_reply_path(client, self.node.spin_until, 30.0), "ask service sent no reply"
        response = ask(client, question, self.node.spin_until, timeout_s)
        assert response is not None, "ask was not answered in time"
        return response


def test_stack_plans_every_synchronized_input_with_consistent_context_and_answers(rclpy_node, stack):
    probe = Probe(rclpy_node)
    procs = [stack.start("understanding_node", rate_hz=2.0),
             # Generous: the check here is the plumbing, not the UE's speed on a loaded CI core.
             stack.start("action_node", max_context_age_s=3.0),
             stack.start("language_node", max_new_tokens=8)]
    source = stack.start("synthetic_source", rate_hz=20.0)
    assert probe.spin(60.0, until=lambda: probe.contexts and probe.plans), [p.output()[-2000:] for p in procs]
    probe.plans.clear(), probe.contexts.clear(), probe.camera_stamps.clear()
    probe.spin(12.0)
    source.stop()
    probe.spin(1.0)  # let the last plans arrive

    # Plans for >= 90% of the synchronized inputs (camera and odometry share stamps).
    plan_stamps = {stamp_to_ns(p.header.stamp) for p in probe.plans}
    cameras = probe.camera_stamps
    assert len(cameras) >= 180, f"source published only {len(cameras)} frames in 12 s"
    covered = sum(s in plan_stamps for s in cameras) / len(cameras)
    assert covered >= 0.9, f"plans for {covered:.0%} of {len(cameras)} synchronized inputs"
    statuses = [p.status for p in probe.plans]
    assert statuses.count(OK) >= 0.9 * len(statuses), ([(p.status, round(p.context_age_ms), p.context_seq) for p in probe.plans][::8], [(c.seq, round(c.compute_ms)) for c in probe.contexts])

    # The context seq rises by one per prefill, at the UE rate (2 Hz, tiny prefill is fast).
    seqs = [c.seq for c in probe.contexts]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    span_s = (stamp_to_ns(probe.contexts[-1].header.stamp) - stamp_to_ns(probe.contexts[0].header.stamp)) / 1e9
    assert 1.4 <= (len(seqs) - 1) / span_s <= 2.6, f"{len(seqs)} contexts over {span_s:.1f} s"

    # context_age_ms = plan (camera) stamp - stamp of the context it used.
    context_stamp = {c.seq: stamp_to_ns(c.header.stamp) for c in probe.contexts}
    checked = 0
    for plan in probe.plans:
        if plan.context_seq in context_stamp:
            expected_ms = (stamp_to_ns(plan.header.stamp) - context_stamp[plan.context_seq]) / 1e6
            assert math.isclose(plan.context_age_ms, expected_ms, abs_tol=0.01), (plan.context_age_ms, expected_ms)
            assert len(plan.path) == 20 and len(plan.waypoints) == 6 and len(plan.meta_actions) == 3
            checked += 1
    assert checked >= 100

    response = probe.ask("What is ahead?")
    assert response.success and response.error == "" and response.context_seq >= 1, response

    # After shutdown: no node process and no shared-memory segment remain.
    for proc in procs:
        assert proc.stop() == 0, proc.output()[-2000:]
    assert not (Path("/dev/shm") / stack.segment).exists()


def test_action_node_survives_a_killed_understanding_node_and_recovers_after_restart(rclpy_node, stack):
    probe = Probe(rclpy_node)
    understanding = stack.start("understanding_node", rate_hz=4.0)
    stack.start("action_node", max_context_age_s=1.0)
    stack.start("synthetic_source", rate_hz=20.0)
    assert probe.spin(90.0, until=lambda: any(p.status == OK for p in probe.plans)), understanding.output()[-2000:]

    understanding.popen.kill()  # a crash: no cleanup, the stale segment stays behind
    understanding.popen.wait()
    killed_at = len(probe.plans)
    assert probe.spin(15.0, until=lambda: [p.status for p in probe.plans[-10:]] == [STALE] * 10)
    # Plans kept coming: OK while the last context was young enough, then STALE for good.
    after_kill = [p.status for p in probe.plans[killed_at:]]
    first_stale = after_kill.index(STALE)
    assert set(after_kill[:first_stale]) <= {OK} and set(after_kill[first_stale:]) == {STALE}, after_kill

    restarted_at = len(probe.plans)
    restarted = stack.start("understanding_node", rate_hz=4.0)
    assert probe.spin(60.0, until=lambda: any(p.status == OK for p in probe.plans[restarted_at:])), \
        restarted.output()[-2000:]
    recovered = [p for p in probe.plans[restarted_at:] if p.status == OK]
    # The new writer's sequence starts again: the action node re-attached to the new segment.
    assert recovered[0].context_seq <= 3, recovered[0].context_seq
    assert restarted.stop() == 0
    assert not (Path("/dev/shm") / stack.segment).exists()


def test_bad_inputs_give_input_error_and_nodes_stay_alive(rclpy_node, stack):
    probe = Probe(rclpy_node)
    action = stack.start("action_node", cameras=["front"], camera_frame_ids=["front_camera"])
    camera_pub = rclpy_node.create_publisher(Image, f"{NAMESPACE}/camera/front/image_raw", SENSOR_QOS)
    odom_pub = rclpy_node.create_publisher(Odometry, f"{NAMESPACE}/ego/odom", SENSOR_QOS)
    route_pub = rclpy_node.create_publisher(PathMsg, f"{NAMESPACE}/route", ROUTE_QOS)
    scenario = SyntheticScenario(image_height=64, image_width=128)
    route_pub.publish(xy_to_path(scenario.route(), ns_to_stamp(0), "odom"))
    good_rgb = scenario.render(scenario.ego_at(0.0, 0))
    t0 = time.time_ns()

    def send(k: int, image: Image = None, odom: Odometry = None, stamp_ns: int = None) -> int:
        stamp_ns = stamp_ns if stamp_ns is not None else t0 + k * 100_000_000
        image = image or rgb_to_image(good_rgb, None, "front_camera")
        image.header.stamp = ns_to_stamp(stamp_ns)
        odom = odom or ego_to_odometry(EgoState(stamp_ns, 0.0, 0.0, 0.0, 5.0), "odom")
        odom.header.stamp = ns_to_stamp(stamp_ns)
        camera_pub.publish(image)
        odom_pub.publish(odom)
        probe.spin(0.3)
        return stamp_ns

    # Send well-formed sets until one gets its NO_CONTEXT plan: the node is up, matching
    # sets, and has the (latched) route.
    k = 0
    while not any(p.status == NO_CONTEXT for p in probe.plans) and k < 100:
        send(k)
        k += 1
    assert any(p.status == NO_CONTEXT for p in probe.plans), action.output()[-2000:]

    wrong_encoding = rgb_to_image(good_rgb, None, "front_camera")
    wrong_encoding.encoding = "32FC1"
    wrong_size = rgb_to_image(good_rgb, None, "front_camera")
    wrong_size.data = wrong_size.data[:-7]
    nan_odom = ego_to_odometry(EgoState(0, 0.0, 0.0, 0.0, 1.0), "odom")
    nan_odom.pose.pose.position.x = float("nan")
    unknown_camera = rgb_to_image(good_rgb, None, "rear_camera")
    bad = {"wrong encoding": dict(image=wrong_encoding), "wrong size": dict(image=wrong_size),
           "NaN odometry": dict(odom=nan_odom), "unknown camera": dict(image=unknown_camera)}
    sent = {name: send(k + i, **kwargs) for i, (name, kwargs) in enumerate(bad.items())}
    newest = send(k + 10)
    sent["stamps going backwards"] = send(0, stamp_ns=newest - 500_000_000)
    last_good = send(k + 11)
    probe.spin(2.0)

    status_at = {stamp_to_ns(p.header.stamp): p.status for p in probe.plans}
    for name, stamp in sent.items():
        assert status_at.get(stamp) == INPUT_ERROR, f"{name}: status {status_at.get(stamp)}"
    assert status_at.get(last_good) == NO_CONTEXT
    assert action.alive()
    bad_plan = next(p for p in probe.plans if p.status == INPUT_ERROR)
    assert not bad_plan.path and not bad_plan.waypoints
    assert action.stop() == 0


def test_action_node_plans_from_compressed_images(rclpy_node, stack):
    probe = Probe(rclpy_node)
    action = stack.start("action_node", cameras=["front"], image_transport="compressed")
    camera_pub = rclpy_node.create_publisher(CompressedImage, f"{NAMESPACE}/camera/front/image_raw/compressed",
                                             SENSOR_QOS)
    odom_pub = rclpy_node.create_publisher(Odometry, f"{NAMESPACE}/ego/odom", SENSOR_QOS)
    route_pub = rclpy_node.create_publisher(PathMsg, f"{NAMESPACE}/route", ROUTE_QOS)
    scenario = SyntheticScenario(image_height=64, image_width=128)
    route_pub.publish(xy_to_path(scenario.route(), ns_to_stamp(0), "odom"))
    ok, jpeg = cv2.imencode(".jpg", scenario.render(scenario.ego_at(0.0, 0))[:, :, ::-1])
    t0 = time.time_ns()
    for k in range(100):
        stamp = ns_to_stamp(t0 + k * 100_000_000)
        image = CompressedImage(format="jpeg", data=jpeg.tobytes())
        image.header.stamp = stamp
        odom = ego_to_odometry(EgoState(t0 + k * 100_000_000, 0.0, 0.0, 0.0, 5.0), "odom")
        camera_pub.publish(image)
        odom_pub.publish(odom)
        if probe.spin(0.2, until=lambda: any(p.status == NO_CONTEXT for p in probe.plans)):
            break
    assert any(p.status == NO_CONTEXT for p in probe.plans), action.output()[-2000:]
    assert action.stop() == 0
