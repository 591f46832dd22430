"""`automot`: the stack's command line (the venv's stand-in for `ros2 launch` and friends).

    automot drive            run the three nodes with config/drive.yaml (like drive.launch.py)
    automot demo             the main job: the stack on a synthetic source, plans, rates, one answer
    automot ask QUESTION...  ask a running stack (its /automot/ask service), print the answers
    automot engines export   the Action Expert to ONNX (fp32 + fp16) with torch parity (JSON)
    automot engines build    a TensorRT engine from that ONNX (needs TensorRT and a GPU)
    automot replay BAG       play a rosbag2 into the stack, record its plans, score them (report)
    automot data synth-bag   write a short SYNTHETIC bag (camera, BEV, odometry, route, agent boxes)
    automot data collect     drive MetaDrive's expert: bags and training samples (+ QA)
    automot eval closed-loop MetaDrive in closed loop with the stack (async/sync) and baselines; report
    automot train            train the projector and the Action Expert (torchrun-ready)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from automot_ros.cli_args import add_stack_args
from automot_ros.engines.cli import add_engines_parser
from automot_ros.eval.cli import add_eval_parser
from automot_ros.train.cli import add_train_parser

DEFAULT_QUESTION = "What should the car do next, and why?"


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


def cmd_ask(args) -> int:
    import rclpy
    from automot_msgs.srv import Ask

    from automot_ros.ask_client import ask, wait_for_reply_path

    rclpy.init()
    node = rclpy.create_node("automot_ask", namespace=args.namespace)

    def spin_until(predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))
        return bool(predicate())

    try:
        client = node.create_client(Ask, "ask")
        if not client.wait_for_service(timeout_sec=args.timeout):
            print(f"automot ask: no {client.srv_name} service within {args.timeout:g} s; is the stack running?")
            return 1
        if not wait_for_reply_path(client, spin_until, args.timeout):
            print(f"automot ask: {client.srv_name} is offered but sent no reply within {args.timeout:g} s")
            return 1
        answered = 0
        for question in args.questions:
            response = ask(client, question, spin_until, args.timeout)
            print(f"Q: {question}")
            if response is None:
                print(f"   no answer within {args.timeout:g} s")
            elif response.success:
                answered += 1
                print(f"A: {response.answer}   ({response.latency_ms:.0f} ms, context seq {response.context_seq})")
            else:
                print(f"   not answered: {response.error}")
        return 0 if answered == len(args.questions) else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def cmd_replay(args) -> int:
    from automot_ros.replay import ReplayOptions, run_replay, score_output

    if args.score_only:
        if args.bag:
            raise SystemExit("automot replay: --score-only takes the output directory, not a bag")
        return score_output(args.score_only, plots=not args.no_plots)
    if not args.bag:
        raise SystemExit("automot replay: name a bag (or --score-only OUT_DIR)")
    if args.use_sim_time:
        raise SystemExit("automot replay: --use-sim-time is not supported (the replay publishes no /clock; "
                         "the nodes use the messages' header stamps)")
    out = args.out or f"replay-{Path(args.bag.rstrip('/')).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    opts = ReplayOptions(
        bag=args.bag, out=out, rate=args.rate, fast=args.fast, remaps=args.remap, topics=args.topics,
        boxes_topic=args.boxes_topic or None, odom_topic=args.odom_topic, namespace=args.namespace,
        start_stack={True: "always", False: "never", None: "auto"}[args.start_stack],
        config=_check_config(args.config), overrides=_overrides(args), startup_timeout_s=args.startup_timeout,
        drain_s=args.drain, fast_timeout_s=args.fast_timeout, plots=not args.no_plots, force=args.force,
    )
    return run_replay(opts)


def cmd_synth_bag(args) -> int:
    from automot_ros.data.synthetic_bag import write_synthetic_bag

    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"automot data synth-bag: --size must be HxW, got {args.size!r}")
    if Path(args.out).exists():
        if not args.force:
            raise SystemExit(f"automot data synth-bag: {args.out} already exists (--force replaces a synthetic bag)")
        from automot_ros.replay import bag_custom_data

        if bag_custom_data(args.out).get("automot.synthetic") != "true":
            raise SystemExit(f"automot data synth-bag: {args.out} is not a bag written by synth-bag: not replaced")
        shutil.rmtree(args.out)
    summary = write_synthetic_bag(args.out, duration_s=args.duration, rate_hz=args.rate, image_size=(height, width),
                                  storage=args.storage, compress=args.compress)
    print(f"wrote SYNTHETIC bag {summary['path']} ({summary['storage']}, {summary['frames']} frames over "
          f"{summary['duration_s']:g} s, {summary['bytes'] / 1e6:.1f} MB): "
          + ", ".join(f"{topic} x{n}" for topic, n in summary["counts"].items()))
    return 0


def cmd_collect(args) -> int:
    from automot_ros.data.collect import CollectConfig, collect
    from automot_ros.data.recovery import LateralPerturbation
    from automot_ros.sim.metadrive_env import metadrive_available

    if args.sim != "metadrive":
        raise SystemExit(f"automot data collect: unknown simulator {args.sim!r}")
    ok, why = metadrive_available()
    if not ok:
        raise SystemExit(f"automot data collect: {why}")
    sizes = {}
    for name in ("camera_size", "bev_size"):
        try:
            sizes[name] = tuple(int(v) for v in getattr(args, name).lower().split("x"))
        except ValueError:
            raise SystemExit(f"automot data collect: --{name.replace('_', '-')} must be HxW")
    manifest = collect(CollectConfig(
        episodes=args.episodes, out=args.out, workers=args.workers, seed_start=args.seed_start,
        heldout_fraction=args.heldout_fraction, map_blocks=args.map_blocks, traffic_density=args.traffic_density,
        max_seconds=args.max_seconds, stride=args.stride, bags=not args.no_bags,
        perturbation=LateralPerturbation() if args.recovery else None, **sizes))
    summary = manifest["summary"]
    print(f"{summary['episodes']} episodes ({summary['failed']} failed), {summary['samples']} samples, "
          f"{summary['wall_s']:.0f} s ({summary['episodes_per_min']} episodes/min, {summary['workers']} workers); "
          f"results {summary['results']}; held out: seeds {manifest['splits']['heldout']}; "
          f"manifest {Path(args.out) / 'manifest.json'}")
    return 1 if summary["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    drive = commands.add_parser("drive", help="run understanding, action and language nodes")
    add_stack_args(drive)
    drive.add_argument("--duration", type=float, help="stop after this many seconds (default: until a signal)")
    drive.set_defaults(func=cmd_drive)

    demo = commands.add_parser("demo", help="the stack on a synthetic source: plans, rates and one answer")
    add_stack_args(demo)
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of driving (default: %(default)s)")
    demo.add_argument("--question", default=DEFAULT_QUESTION, help="asked once (default: %(default)r)")
    demo.set_defaults(func=cmd_demo)

    ask = commands.add_parser(
        "ask", help="ask a running stack's language node (the ask service) and print the answers",
        description="Call <namespace>/ask (automot_msgs/srv/Ask) once per question, as `ros2 service call "
                    "/automot/ask automot_msgs/srv/Ask \"{question: '...'}\"` does. Exit code 0 when every "
                    "question was answered.")
    ask.add_argument("questions", nargs="+", metavar="QUESTION")
    ask.add_argument("--namespace", default="/automot", help="the stack's namespace (default: %(default)s)")
    ask.add_argument("--timeout", type=float, default=60.0,
                     help="seconds to wait for the service, for its first reply and for each answer "
                          "(default: %(default)s)")
    ask.set_defaults(func=cmd_ask)

    replay = commands.add_parser(
        "replay", help="play a rosbag2 into the stack, record DrivingPlan/ContextInfo, score, report",
        description="Play BAG (rosbag2 directory, .mcap or .db3) into a running stack, or start one; record "
                    "its plans into OUT/recorded; write OUT/metrics.json, report.md, frames.csv and plots/. "
                    "Exit code 0: scored; 1: failed; 3: the bag is truncated or corrupt (what was read before "
                    "the damage is scored).")
    replay.add_argument("bag", nargs="?", help="input bag: rosbag2 directory (mcap or sqlite3) or one storage file")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=1.0,
                      help="playback speed factor on the recorded timing (default: %(default)s; <1 slows down)")
    pace.add_argument("--fast", action="store_true",
                      help="no pacing: each camera frame goes out once the previous frame's plan is in")
    replay.add_argument("--out", help="output directory (default: ./replay-<bag>-<date>-<time>)")
    replay.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="rename a bag topic when publishing, like ros2 bag play --remap; repeatable; "
                             "'/a/:=/b/' moves a namespace")
    replay.add_argument("--topics", nargs="+", metavar="TOPIC",
                        help="publish exactly these bag topics (default: those named like the stack's inputs)")
    replay.add_argument("--boxes-topic", default="/automot/agents",
                        help="bag topic of ground-truth agent boxes, visualization_msgs/MarkerArray of CUBEs in "
                             "the odometry frame ('' for none; default: %(default)s)")
    replay.add_argument("--odom-topic", help="bag topic of the ground-truth odometry (default: the one published "
                                             "as <namespace>/ego/odom)")
    stack = replay.add_mutually_exclusive_group()
    stack.add_argument("--start-stack", dest="start_stack", action="store_true", default=None,
                       help="always start the stack (default: start one only when none answers)")
    stack.add_argument("--no-start-stack", dest="start_stack", action="store_false",
                       help="only use a running stack; fail when none answers")
    add_stack_args(replay)
    replay.add_argument("--startup-timeout", type=float, default=180.0,
                        help="seconds for a started stack to come up, or with --no-start-stack for the "
                             "running one to be found (default: %(default)s)")
    replay.add_argument("--drain", type=float, default=5.0,
                        help="after the bag: wait this long for a plan before stopping (default: %(default)s s)")
    replay.add_argument("--fast-timeout", type=float, default=10.0,
                        help="with --fast: longest wait for a frame's plan (default: %(default)s s)")
    replay.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    replay.add_argument("--force", action="store_true", help="replace --out if it holds an earlier replay's output")
    replay.add_argument("--score-only", metavar="OUT_DIR", help="re-score an earlier replay's output directory")
    replay.set_defaults(func=cmd_replay)

    data = commands.add_parser("data", help="sample data")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser(
        "synth-bag", help="write a short SYNTHETIC rosbag2 (camera, BEV, odometry, route, agent boxes)",
        description="Write a SYNTHETIC rosbag2 from a kinematic scenario: /automot/camera/front/image_raw, "
                    "/automot/camera/bev/image_raw (the BEV raster), /automot/ego/odom, /automot/route (latched) and /automot/agents (MarkerArray of CUBE boxes "
                    "in the odometry frame). Its metadata says automot.synthetic: true.")
    synth.add_argument("out", help="bag directory to create")
    synth.add_argument("--duration", type=float, default=12.0, help="seconds (default: %(default)s)")
    synth.add_argument("--rate", type=float, default=20.0, help="camera/odometry rate [Hz] (default: %(default)s)")
    synth.add_argument("--size", default="128x256", help="front image HxW (default: %(default)s; the BEV raster "
                                                         "is always the model's 128x256)")
    synth.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="(default: %(default)s)")
    synth.add_argument("--compress", action="store_true", help="zstd (mcap chunks, sqlite3 messages)")
    synth.add_argument("--force", action="store_true", help="replace OUT if it is a bag written by synth-bag")
    synth.set_defaults(func=cmd_synth_bag)
    collect = data_commands.add_parser(
        "collect", help="drive MetaDrive's expert (physics-only) and record bags and training samples",
        description="Run N expert episodes (one procedural MetaDrive map and traffic per seed) and write OUT/bags/ "
                    "(rosbag2 for automot replay), OUT/episodes/ (npz samples + QA jsonl) and OUT/manifest.json "
                    "(seeds, train/heldout split, outcomes).")
    collect.add_argument("--sim", default="metadrive", choices=("metadrive",), help="(default: %(default)s)")
    collect.add_argument("--episodes", type=int, required=True, help="number of episodes (seeds)")
    collect.add_argument("--workers", type=int, default=1, help="parallel simulator processes (default: %(default)s)")
    collect.add_argument("--out", required=True, help="output directory")
    collect.add_argument("--seed-start", type=int, default=0, help="first seed (default: %(default)s)")
    collect.add_argument("--heldout-fraction", type=float, default=0.1,
                         help="the last seeds held out for evaluation (default: %(default)s)")
    collect.add_argument("--map-blocks", type=int, default=3, help="blocks per procedural map (default: %(default)s)")
    collect.add_argument("--traffic-density", type=float, default=0.08, help="(default: %(default)s)")
    collect.add_argument("--max-seconds", type=float, default=90.0, help="episode time limit (default: %(default)s)")
    collect.add_argument("--stride", type=int, default=5, help="a sample every N frames at 20 Hz (default: %(default)s)")
    collect.add_argument("--camera-size", default="128x256", help="front image HxW (default: %(default)s)")
    collect.add_argument("--bev-size", default="128x256", help="BEV raster HxW (default: %(default)s)")
    collect.add_argument("--no-bags", action="store_true", help="write training samples only")
    collect.add_argument("--recovery", action="store_true",
                         help="recovery data: every 5-9 s the expert holds a 0.5-1.5 m offset from its lane's "
                              "center for 1.5-3 s, then steers back; samples whose future holds the offset are "
                              "invalid, so only the way back is learned (data/recovery.py)")
    collect.set_defaults(func=cmd_collect)

    add_engines_parser(commands)
    add_eval_parser(commands)
    add_train_parser(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
