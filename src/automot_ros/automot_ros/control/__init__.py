"""Vehicle control from a DrivingPlan (no ROS): path tracking and speed tracking."""
