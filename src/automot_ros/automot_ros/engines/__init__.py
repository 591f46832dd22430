"""Export, TensorRT build and the engine files of the Action Expert (no ROS, lazy heavy imports)."""
