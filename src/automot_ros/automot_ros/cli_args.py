"""Command-line arguments shared by the commands that start the stack (drive, demo, replay,
eval closed-loop): the parameter file and what overrides it."""

from __future__ import annotations

import argparse

from automot_ros.paths import config_dir


def add_stack_args(parser: argparse.ArgumentParser, sim_time_flag: bool = True) -> None:
    parser.add_argument("--config", default=str(config_dir() / "drive.yaml"),
                        help="ros__parameters file for the nodes (default: %(default)s)")
    parser.add_argument("--model", help="model config name or YAML path (overrides the file's)")
    parser.add_argument("--checkpoint", help="trained checkpoint: a path, auto (the one shipped for the model) or "
                                             "none (untrained) (overrides the file's)")
    parser.add_argument("--backend", help="Action Expert backend: auto, torch, onnxruntime, onnxruntime-cpu, "
                                           "onnxruntime-cuda or tensorrt (overrides the file's)")
    parser.add_argument("--namespace", default="/automot", help="node namespace (default: %(default)s)")
    if sim_time_flag:
        parser.add_argument("--use-sim-time", action="store_true", help="nodes follow /clock")
