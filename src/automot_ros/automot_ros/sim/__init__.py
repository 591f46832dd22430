"""Simulators as ground-truth sources (no ROS). `state` is plain numpy; `metadrive_env`
imports MetaDrive lazily (it needs Python < 3.12)."""
