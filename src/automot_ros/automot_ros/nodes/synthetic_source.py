"""synthetic_source: a labeled-synthetic sensor, odometry and route publisher for demos
and tests: the traffic scenario of data/synthetic_traffic.py rendered by the sensor model,
as the front camera (the UE's input) and the BEV raster (the AE's). Both images and the
odometry share each stamp; the route is latched and republished every 5 s.
"""

from __future__ import annotations

from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from sensor_msgs.msg import Image

from automot_ros.data.synthetic_traffic import TrafficScenario
from automot_ros.nodes.common import run
from automot_ros.ros.qos import ROUTE_QOS, SENSOR_QOS
from automot_ros.ros.image_conv import rgb_to_image
from automot_ros.ros.odometry_conv import ego_to_odometry
from automot_ros.ros.route_conv import xy_to_path
from automot_ros.ros.time_conv import ns_to_stamp


class SyntheticSource(Node):
    def __init__(self):
        super().__init__("synthetic_source")
        self.rate_hz = self.declare_parameter("rate_hz", 20.0).value
        self.camera = self.declare_parameter("camera", "front").value
        self.camera_frame_id = self.declare_parameter("camera_frame_id", "front_camera").value
        self.bev_camera = self.declare_parameter("bev_camera", "bev").value
        self.odom_frame_id = self.declare_parameter("odom_frame_id", "odom").value
        self.scenario = TrafficScenario()
        self.image_pub = self.create_publisher(Image, f"camera/{self.camera}/image_raw", SENSOR_QOS)
        self.bev_pub = self.create_publisher(Image, f"camera/{self.bev_camera}/image_raw", SENSOR_QOS)
        self.odom_pub = self.create_publisher(Odometry, "ego/odom", SENSOR_QOS)
        self.route_pub = self.create_publisher(Path, "route", ROUTE_QOS)
        self.start_ns = self.get_clock().now().nanoseconds
        self.frames = 0
        self.publish_route()
        self.create_timer(5.0, self.publish_route)
        self.create_timer(1.0 / self.rate_hz, self.publish_frame)
        self.get_logger().info(f"SYNTHETIC data at {self.rate_hz:g} Hz on camera/{self.camera}/image_raw, "
                               f"camera/{self.bev_camera}/image_raw, ego/odom, route")

    def publish_route(self) -> None:
        self.route_pub.publish(xy_to_path(self.scenario.route(), ns_to_stamp(self.start_ns), self.odom_frame_id))

    def publish_frame(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        t_s = (now_ns - self.start_ns) / 1e9
        ego = self.scenario.ego_at(t_s, now_ns)
        front, bev = self.scenario.render(t_s)
        stamp = ns_to_stamp(now_ns)
        self.image_pub.publish(rgb_to_image(front, stamp, self.camera_frame_id))
        self.bev_pub.publish(rgb_to_image(bev.transpose(1, 2, 0), stamp, "base_link"))
        self.odom_pub.publish(ego_to_odometry(ego, self.odom_frame_id))
        self.frames += 1


def main(args=None):
    raise SystemExit(run(SyntheticSource, args))


if __name__ == "__main__":
    main()
