"""QoS profiles the nodes agree on."""

from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data

# The route is latched: a late joiner still gets the last one.
ROUTE_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Cameras and odometry: best effort, shallow (a late frame is worth less than a new one).
SENSOR_QOS = qos_profile_sensor_data
