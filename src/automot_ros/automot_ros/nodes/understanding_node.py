"""understanding_node: camera history + route + speed -> UE prefill -> shared-memory context.

Subscribes camera/<name>/image_raw (or its compressed topic), ego/odom and route; every 1/rate_hz it prefills the
newest frames and the instruction, writes a slot of its segment and publishes ContextInfo
on `context`. The prefill runs in a worker thread of its own (torch releases the GIL), so
the executor keeps taking frames while it runs: the history stays complete even when a
prefill takes longer than a frame period.

With use_sim_time the rate runs on sim time as the camera stamps carry it (a prefill is
due for the first frame stamped at or after each due time; runtime/sim_time.py), so a
lockstep simulator gets the same contexts on a slow CPU as on a fast one.
"""

from __future__ import annotations

import threading
import time

from automot_msgs.msg import ContextInfo
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node

from automot_ros.errors import InputError
from automot_ros.nodes.common import default_segment, load_model, run
from automot_ros.nodes.params import UnderstandingParams, declare
from automot_ros.ros.context_conv import context_info_msg
from automot_ros.ros.qos import ROUTE_QOS, SENSOR_QOS
from automot_ros.ros.image_conv import camera_topic, to_rgb
from automot_ros.ros.odometry_conv import odometry_to_ego
from automot_ros.ros.route_conv import path_to_xy
from automot_ros.ros.time_conv import stamp_to_ns
from automot_ros.runtime.sim_time import SimTimeSchedule
from automot_ros.runtime.understanding import UnderstandingRunner

class UnderstandingNode(Node):
    def __init__(self):
        super().__init__("understanding_node")
        self.params = p = declare(self, UnderstandingParams)
        model = load_model(p)
        segment = p.segment or default_segment(self.get_namespace())
        self.runner = UnderstandingRunner(
            model, segment, frames=p.frames, interval_s=p.frame_interval_s,
            lookahead_m=p.route_lookahead_m, slots=p.slots,
        )
        self.expected_frame_id = p.camera_frame_ids[0]
        self.context_pub = self.create_publisher(ContextInfo, "context", 10)
        self.create_subscription(*camera_topic(p.cameras[0], p.image_transport), self.on_image, SENSOR_QOS)
        self.create_subscription(Odometry, "ego/odom", self.on_odom, SENSOR_QOS)
        self.create_subscription(Path, "route", self.on_route, ROUTE_QOS)
        self._last_wait_log = 0.0
        self._stop = threading.Event()
        self._new_frame = threading.Event()
        sim_time = self.get_parameter("use_sim_time").value
        loop = self._prefill_loop_sim_time if sim_time else self._prefill_loop
        self._worker = threading.Thread(target=loop, name="ue_prefill", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"model {model.model_id} on {p.device}; context segment /dev/shm/{segment}; {p.rate_hz:g} Hz"
            + (" of sim time (camera stamps)" if sim_time else "")
        )

    def on_image(self, msg) -> None:
        try:
            if self.expected_frame_id and msg.header.frame_id != self.expected_frame_id:
                raise InputError(f"image from unknown camera frame {msg.header.frame_id!r}")
            self.runner.add_frame(stamp_to_ns(msg.header.stamp), to_rgb(msg))
            self._new_frame.set()
        except InputError as error:
            self.get_logger().warning(f"camera frame dropped: {error}", throttle_duration_sec=2.0)

    def on_odom(self, msg: Odometry) -> None:
        try:
            self.runner.set_ego(odometry_to_ego(msg))
        except InputError as error:
            self.get_logger().warning(f"odometry dropped: {error}", throttle_duration_sec=2.0)

    def on_route(self, msg: Path) -> None:
        try:
            self.runner.set_route(path_to_xy(msg))
        except InputError as error:
            self.get_logger().warning(f"route dropped: {error}", throttle_duration_sec=2.0)

    def _prefill_loop(self) -> None:
        """Prefill at rate_hz: a tick starts every period, or at once when one ran over."""
        period = 1.0 / self.params.rate_hz
        next_start = time.monotonic()
        while not self._stop.wait(max(0.0, next_start - time.monotonic())):
            next_start = max(next_start + period, time.monotonic())
            self.tick()

    def _prefill_loop_sim_time(self) -> None:
        """Prefill at rate_hz of sim time: on the first frame stamped at or after each due time."""
        schedule = SimTimeSchedule(self.params.rate_hz)
        while not self._stop.is_set():
            if not self._new_frame.wait(0.1):
                continue
            self._new_frame.clear()
            stamp_ns = self.runner.newest_stamp_ns()
            if stamp_ns is not None and schedule.due(stamp_ns):
                self.tick()

    def tick(self) -> None:
        published = self.runner.tick()
        if published is None:
            now = time.monotonic()
            if now - self._last_wait_log > 5.0:
                self._last_wait_log = now
                self.get_logger().info(f"waiting for {self.runner.waiting_for() or 'inputs'}")
            return
        self.context_pub.publish(context_info_msg(published, self.runner.segment))

    def destroy_node(self):
        self._stop.set()
        self._worker.join()
        self.runner.close()
        return super().destroy_node()


def main(args=None):
    raise SystemExit(run(UnderstandingNode, args))


if __name__ == "__main__":
    main()
