"""Launch the automot stack: understanding_node, action_node and language_node.

    ros2 launch automot_ros drive.launch.py [config:=FILE] [model:=smol] [checkpoint:=FILE]
        [backend:=torch] [namespace:=/automot] [use_sim_time:=false]

`automot drive` starts the same three executables with the same parameter file where
`launch` is not installed (a venv with PyPI ROS 2 wheels).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

NODES = ("understanding_node", "action_node", "language_node")


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {"use_sim_time": arg("use_sim_time").lower() == "true"}
    for name in ("model", "checkpoint", "backend"):
        if arg(name):
            overrides[name] = arg(name)
    return [
        Node(
            package="automot_ros",
            executable=name,
            name=name,
            namespace=arg("namespace"),
            parameters=[arg("config"), overrides],
            output="screen",
            emulate_tty=True,
        )
        for name in NODES
    ]


def generate_launch_description():
    share = get_package_share_directory("automot_ros")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=os.path.join(share, "config", "drive.yaml"),
                              description="ros__parameters file for the three nodes"),
        DeclareLaunchArgument("model", default_value="", description="model config name or path ('' = the file's)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="trained checkpoint ('' = the file's)"),
        DeclareLaunchArgument("backend", default_value="", description="Action Expert backend ('' = the file's)"),
        DeclareLaunchArgument("namespace", default_value="/automot", description="node namespace"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
        OpaqueFunction(function=_nodes),
    ])
