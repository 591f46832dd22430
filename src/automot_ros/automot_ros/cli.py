"""`automot`: the stack's command line (the venv's stand-in for `ros2 launch` and friends).

    automot drive   run the three nodes with config/drive.yaml (like drive.launch.py)
    automot demo    the main job: the stack on a synthetic source, plans, rates, one answer
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from automot_ros.paths import config_dir

DEFAULT_QUESTION = "What should the car do next, and why?"


def _add_stack_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(config_dir() / "drive.yaml"),
                        help="ros__parameters file for the three nodes (default: %(default)s)")
    parser.add_argument("--model", help="model config name or YAML path (overrides the file's)")
    parser.add_argument("--checkpoint", help="trained checkpoint (safetensors; overrides the file's)")
    parser.add_argument("--backend", help="Action Expert backend (overrides the file's)")
    parser.add_argument("--namespace", default="/automot", help="node namespace (default: %(default)s)")
    parser.add_argument("--use-sim-time", action="store_true", help="nodes follow /clock")


def _overrides(args) -> dict:
    return {name: value for name, value in
            (("model", args.model), ("checkpoint", args.checkpoint), ("backend", args.backend)) if value is not None}


def _check_config(path: str) -> str:
    if not Path(path).is_file():
        raise SystemExit(f"automot: parameter file {path} does not exist")
    return path


def cmd_drive(args) -> int:
    from automot_ros.runtime.supervisor import Supervisor, stack_specs

    specs = stack_specs(_check_config(args.config), _overrides(args))
    return Supervisor(specs, namespace=args.namespace, use_sim_time=args.use_sim_time).run(args.duration)


def cmd_demo(args) -> int:
    from automot_ros.demo import run_demo

    return run_demo(_check_config(args.config), _overrides(args), args.namespace, args.duration, args.question)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    drive = commands.add_parser("drive", help="run understanding, action and language nodes")
    _add_stack_args(drive)
    drive.add_argument("--duration", type=float, help="stop after this many seconds (default: until a signal)")
    drive.set_defaults(func=cmd_drive)

    demo = commands.add_parser("demo", help="the stack on a synthetic source: plans, rates and one answer")
    _add_stack_args(demo)
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of driving (default: %(default)s)")
    demo.add_argument("--question", default=DEFAULT_QUESTION, help="asked once (default: %(default)r)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
