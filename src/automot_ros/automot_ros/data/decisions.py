"""The meta-action vocabulary shared by the model's heads, the ROS messages and evaluation.

Class indices equal the automot_msgs/MetaAction constants (this module imports no ROS).
"""

# Lateral classes (MetaAction.LAT_*).
LAT_STRAIGHT, LAT_SLIGHT_LEFT, LAT_LEFT, LAT_SLIGHT_RIGHT, LAT_RIGHT = range(5)
LATERAL_NAMES = ("straight", "slight left", "left", "slight right", "right")
# Longitudinal classes (MetaAction.LON_*).
LON_STOP, LON_DECELERATE, LON_KEEP, LON_ACCELERATE = range(4)
LONGITUDINAL_NAMES = ("stop", "decelerate", "keep", "accelerate")

# A decision is made for now, +1 s and +2 s after the plan's stamp.
DECISION_HORIZONS_S = (0.0, 1.0, 2.0)
HORIZON_NAMES = ("now", "+1s", "+2s")
