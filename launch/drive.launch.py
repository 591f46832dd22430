"""Launch the automot stack: understanding_node, action_node and language_node.

    ros2 launch automot_ros drive.launch.py [config:=FILE] [model:=smol] [checkpoint:=FILE]
        [backend:=torch] [engine_dir:=DIR] [precision:=fp32] [namespace:=/automot]
        [use_sim_time:=false] [build_only:=false]

build_only:=true runs `automot engines build` for the action node's model, checkpoint,
engine_dir and precision (the parameter file's, or these arguments) and exits: the ONNX
is exported if missing and the TensorRT engine built or reused; no node starts.

`automot drive` starts the same three executables with the same parameter file where
`launch` is not installed (a venv with PyPI ROS 2 wheels).
"""

import os

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

NODES = ("understanding_node", "action_node", "language_node")


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    if arg("build_only").lower() == "true":
        return _build_engines(arg)
    overrides = {"use_sim_time": arg("use_sim_time").lower() == "true"}
    for name in ("model", "checkpoint", "backend", "engine_dir", "precision"):
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


def _build_engines(arg):
    """`automot engines build` with the launch's parameter file and overrides, then shut down."""
    command = [os.path.join(get_package_prefix("automot_ros"), "lib", "automot_ros", "automot"),
               "engines", "build", "--config", arg("config")]
    for name in ("model", "checkpoint", "engine_dir", "precision"):
        if arg(name):
            command += [f"--{name.replace('_', '-')}", arg(name)]
    build = ExecuteProcess(cmd=command, output="screen", name="build_engines")
    return [build, RegisterEventHandler(OnProcessExit(target_action=build, on_exit=[EmitEvent(event=Shutdown(
        reason="build_only: engines built"))]))]


def generate_launch_description():
    share = get_package_share_directory("automot_ros")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=os.path.join(share, "config", "drive.yaml"),
                              description="ros__parameters file for the three nodes"),
        DeclareLaunchArgument("model", default_value="", description="model config name or path ('' = the file's)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="trained checkpoint ('' = the file's)"),
        DeclareLaunchArgument("backend", default_value="", description="Action Expert backend ('' = the file's)"),
        DeclareLaunchArgument("engine_dir", default_value="",
                              description="ONNX/TensorRT engine directory ('' = the file's)"),
        DeclareLaunchArgument("precision", default_value="", description="fp32 or fp16 ('' = the file's)"),
        DeclareLaunchArgument("build_only", default_value="false",
                              description="true: build the Action Expert engines (automot engines build) and exit"),
        DeclareLaunchArgument("namespace", default_value="/automot", description="node namespace"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
        OpaqueFunction(function=_nodes),
    ])
