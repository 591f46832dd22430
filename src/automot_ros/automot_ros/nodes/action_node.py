"""action_node: synchronized cameras + odometry (+ the latest route) and the newest
context -> Action Expert -> DrivingPlan, nav_msgs/Path, MarkerArray and diagnostics.

Cameras and odometry are matched with ApproximateTime semantics (message_filters where
installed, the project's own policy otherwise, same parameters). Every matched set gives
exactly one DrivingPlan: OK, STALE_CONTEXT, NO_CONTEXT or INPUT_ERROR.
"""

from __future__ import annotations

from automot_msgs.msg import DrivingPlan
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

from automot_ros.errors import InputError
from automot_ros.nodes.common import load_model, run, subscribe_contexts
from automot_ros.nodes.params import ActionParams, declare
from automot_ros.ros.diagnostics_conv import diagnostics_msg
from automot_ros.ros.qos import ROUTE_QOS, SENSOR_QOS
from automot_ros.ros.image_conv import camera_topic, to_rgb
from automot_ros.ros.odometry_conv import odometry_to_ego
from automot_ros.ros.plan_conv import plan_to_markers, plan_to_msg, plan_to_path
from automot_ros.ros.route_conv import path_to_xy
from automot_ros.ros.time_conv import stamp_to_ns
from automot_ros.runtime.action import ActionRunner
from automot_ros.runtime.approximate_sync import make_approximate_sync
from automot_ros.runtime.backends.factory import BackendFactory
from automot_ros.runtime.context_source import ContextSource
from automot_ros.runtime.plan_result import PlanStatus
from automot_ros.runtime.rate_window import RateWindow


class ActionNode(Node):
    def __init__(self):
        super().__init__("action_node")
        self.params = p = declare(self, ActionParams)
        # The torch model is built only for the torch backend or an on-the-fly ONNX export.
        factory = BackendFactory(p.model, p.checkpoint, p.engine_dir, p.precision, p.device, p.num_threads,
                                 load_torch_model=lambda: load_model(p), log=self.get_logger().info)
        backend = factory.select(p.backend)
        self.contexts = ContextSource(factory.model_id)
        self.runner = ActionRunner(
            backend, self.contexts, scene_size=factory.cfg.action.scene.image_size,
            max_context_age_s=p.max_context_age_s, lookahead_m=factory.cfg.action.route_lookahead_m,
        )
        self.route_xy = None
        self.last_result = None
        self.plans = RateWindow()
        self.inference = RateWindow()

        self.plan_pub = self.create_publisher(DrivingPlan, "plan", 10)
        self.path_pub = self.create_publisher(Path, "path", 10)
        self.marker_pub = self.create_publisher(MarkerArray, "markers", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        subscribe_contexts(self, self.contexts, p.error_log_period_s)
        self.create_subscription(Path, "route", self.on_route, ROUTE_QOS)

        self.sync = make_approximate_sync(len(p.cameras) + 1, p.queue_size, p.slop_s)
        self.sync.register_callback(self.on_synchronized)
        for index, camera in enumerate(p.cameras):
            self.create_subscription(
                *camera_topic(camera, p.image_transport), lambda msg, i=index: self.sync.add_msg(i, msg),
                SENSOR_QOS,
            )
        self.create_subscription(
            Odometry, "ego/odom", lambda msg: self.sync.add_msg(len(p.cameras), msg), SENSOR_QOS
        )
        self.create_timer(p.diagnostics_period_s, self.publish_diagnostics)
        self.get_logger().info(
            f"model {factory.model_id}, backend {self.runner.backend.name}, sync {type(self.sync).__name__} "
            f"(queue {p.queue_size}, slop {p.slop_s:g} s) over {p.cameras} + odometry"
        )

    def on_route(self, msg: Path) -> None:
        try:
            self.route_xy = path_to_xy(msg)
        except InputError as error:
            self.get_logger().warning(f"route dropped: {error}", throttle_duration_sec=self.params.error_log_period_s)

    def on_synchronized(self, *msgs) -> None:
        *images, odom = msgs
        stamp_ns = stamp_to_ns(images[0].header.stamp)
        try:
            for image, expected in zip(images, self.params.camera_frame_ids):
                if expected and image.header.frame_id != expected:
                    raise InputError(f"image from unknown camera frame {image.header.frame_id!r}")
            result = self.runner.step(stamp_ns, to_rgb(images[0]), odometry_to_ego(odom), self.route_xy)
        except InputError as error:
            result = self.runner.input_error(stamp_ns, str(error))
        if result.status == PlanStatus.INPUT_ERROR:
            self.get_logger().warning(
                f"input error ({self.runner.status_counts[PlanStatus.INPUT_ERROR]} so far): {result.error}",
                throttle_duration_sec=self.params.error_log_period_s,
            )
        frame_id = self.params.frame_id
        self.plan_pub.publish(plan_to_msg(result, frame_id))
        self.path_pub.publish(plan_to_path(result, frame_id))
        self.marker_pub.publish(plan_to_markers(result, frame_id))
        self.plans.add()
        if result.trajectory is not None:
            self.inference.add(result.inference_ms)
        self.last_result = result

    def publish_diagnostics(self) -> None:
        counts = {status.name: n for status, n in self.runner.status_counts.items()}
        last = self.last_result
        values = {
            "plan_rate_hz": self.plans.rate_hz(),
            "inference_ms_p50": self.inference.percentile(50) or 0.0,
            "inference_ms_p90": self.inference.percentile(90) or 0.0,
            "context_age_ms": last.context_age_ms if last is not None else float("nan"),
            "context_seq": last.context_seq if last is not None else 0,
            "context_reattachments": self.contexts.reattachments,
            "backend": self.runner.backend.name,
            **{f"count_{name}": n for name, n in counts.items()},
        }
        status = last.status if last is not None else PlanStatus.NO_CONTEXT
        level = {PlanStatus.OK: "OK", PlanStatus.STALE_CONTEXT: "WARN"}.get(status, "ERROR")
        self.diag_pub.publish(
            diagnostics_msg(self.get_clock().now().to_msg(), f"{self.get_fully_qualified_name()}: plan",
                            "automot", level, status.name, values)
        )

    def destroy_node(self):
        self.contexts.close()
        self.runner.backend.close()
        return super().destroy_node()


def main(args=None):
    raise SystemExit(run(ActionNode, args))


if __name__ == "__main__":
    main()
