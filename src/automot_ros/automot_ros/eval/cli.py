"""`automot eval ...`: evaluation commands (argument parsing only; the work is imported lazily).

    automot eval closed-loop   MetaDrive in closed loop with the stack (async/sync) and baselines
    automot eval open-loop     a trained model vs constant velocity on held-out samples (L2, collisions, path)
    automot eval hvi           answer accuracy on held-out templated questions
"""

from __future__ import annotations

import argparse

from automot_ros.cli_args import add_stack_args


def _size(text: str):
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, got {text!r}")
    return height, width


def cmd_closed_loop(args) -> int:
    from pathlib import Path

    from automot_ros.closed_loop import ClosedLoopOptions, run_closed_loop, score_only
    from automot_ros.sim.closed_loop import EpisodeSettings

    if args.score_only:
        return score_only(args.score_only, plots=not args.no_plots)
    if args.sim != "metadrive":
        raise SystemExit(f"automot eval closed-loop: unknown simulator {args.sim!r}")
    if not Path(args.config).is_file():
        raise SystemExit(f"automot eval closed-loop: parameter file {args.config} does not exist")
    modes = [m for m in args.mode.replace("both", "async,sync").split(",") if m]
    baselines = [b for b in args.baselines.split(",") if b and b != "none"]
    out = args.out or f"closed-loop-{'-'.join(modes) or 'baselines'}-{__import__('time').strftime('%Y%m%d-%H%M%S')}"
    settings = EpisodeSettings(map_blocks=args.map_blocks, traffic_density=args.traffic_density,
                               max_seconds=args.max_seconds, stuck_seconds=args.stuck_seconds)
    opts = ClosedLoopOptions(
        out=out, episodes=args.episodes, seed_start=args.seed_start, manifest=args.manifest,
        modes=[] if args.no_model else modes, baselines=baselines, model=args.model, checkpoint=args.checkpoint,
        backend=args.backend, device=args.device, num_threads=args.num_threads, config=args.config, namespace=args.namespace, ue_rate_hz=args.ue_rate,
        camera_hz=args.camera_rate,
        settings=settings, plan_timeout_s=args.plan_timeout, startup_timeout_s=args.startup_timeout,
        plots=not args.no_plots, force=args.force)
    return run_closed_loop(opts)


def cmd_open_loop(args) -> int:
    from automot_ros.eval.held_out import OpenLoopOptions, run_open_loop

    run_open_loop(OpenLoopOptions(data=args.data, out=args.out, split=args.split, model=args.model,
                                  checkpoint=args.checkpoint, cache_dir=args.cache_dir, ue_period_s=args.ue_period,
                                  threads=args.threads, plots=not args.no_plots))
    return 0


def cmd_hvi(args) -> int:
    from automot_ros.eval.hvi import HviOptions, run_hvi

    run_hvi(HviOptions(data=args.data, out=args.out, split=args.split, model=args.model, checkpoint=args.checkpoint,
                       samples=args.samples, max_new_tokens=args.max_new_tokens, threads=args.threads))
    return 0


def _add_held_out_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--split", default="heldout", help="(default: %(default)s)")
    p.add_argument("--model", default="smol", help="model config name or YAML path (default: %(default)s)")
    p.add_argument("--checkpoint", default="auto",
                   help="trained checkpoint: a path, auto (the shipped one) or none (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")


def add_eval_parser(commands) -> None:
    evaluation = commands.add_parser("eval", help="evaluation: closed loop in a simulator, open loop and "
                                                  "question answering on held-out data")
    sub = evaluation.add_subparsers(dest="eval_command", required=True)
    p = sub.add_parser(
        "open-loop", help="a trained model vs constant velocity on held-out samples: L2, collision rate and path error",
        description="Plan every sample of a collection's split with the Action Expert on deployment-paired "
                    "UE contexts (a tick every --ue-period s; computed once and cached) and with constant "
                    "velocity; score both against the expert's future: L2 and collision rate at 1/2/3 s in the "
                    "stp3 and uniad conventions, their paths against the driven path (L2 at 5/10/20 m, the lateral "
                    "error in turns), and the meta-action accuracy; the model's collision rate minus "
                    "constant velocity's comes with a 95 % interval from resampling whole episodes. Writes "
                    "OUT/metrics.json, report.md and l2_collision.png. Several collections are scored as one pool.")
    p.add_argument("--data", required=True, nargs="+", metavar="DIR",
                   help="one or more collection directories (automot data collect), scored as one pool")
    _add_held_out_arguments(p)
    p.add_argument("--cache-dir", help="context cache root (default: OUT/cache; a training run's cache is reused "
                                       "when the UE weights and data match)")
    p.add_argument("--ue-period", type=float, default=0.5, help="UE tick period [s] (default: %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plot")
    p.set_defaults(func=cmd_open_loop)
    p = sub.add_parser(
        "hvi", help="answer accuracy on held-out templated questions",
        description="For evenly spaced samples of a collection's split: prefill the sample's context, answer its "
                    "templated questions (action and reason, lead vehicle, nearby vehicles, lane, route, speed) "
                    "as the language node does, and score each on the fact it asks for. Writes OUT/hvi.json, "
                    "answers.jsonl and report.md.")
    p.add_argument("--data", required=True, help="a collection directory (automot data collect)")
    _add_held_out_arguments(p)
    p.add_argument("--samples", type=int, default=40, help="samples to ask about (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="(default: %(default)s)")
    p.set_defaults(func=cmd_hvi)
    p = sub.add_parser(
        "closed-loop", help="drive MetaDrive with the stack in closed loop (async/sync) and the baselines; report",
        description="Run N episodes (one procedural MetaDrive map and its traffic per seed) with the stack in "
                    "closed loop through ROS 2 (a simulator bridge steps MetaDrive in lockstep with the plans, on "
                    "sim time), and the same seeds with the baselines; write OUT/metrics.json, report.md, "
                    "episodes.csv and plots/. Exit code 0: reported; 1: a run failed or nothing to report.")
    p.add_argument("--sim", default="metadrive", choices=("metadrive",), help="(default: %(default)s)")
    add_stack_args(p, sim_time_flag=False)
    p.add_argument("--episodes", type=int, default=20, help="number of episodes (default: %(default)s)")
    p.add_argument("--mode", default="async",
                   help="async, sync or both (async,sync): how the Action Expert gets its context "
                        "(default: %(default)s)")
    p.add_argument("--device", help="torch device of both experts: cpu or cuda[:N] (default: config's)")
    p.add_argument("--num-threads", type=int, help="torch threads per node (default: config's); the lockstep "
                                                   "loop never runs both experts at once in sync mode")
    p.add_argument("--seed-start", type=int, help="first seed (default: 100000, or the manifest's held-out seeds)")
    p.add_argument("--manifest", help="a data collection's manifest.json: evaluate on its held-out seeds (or check "
                                      "that --seed-start's seeds are not in its training split)")
    p.add_argument("--baselines", default="expert,constant-velocity",
                   help="comma list of expert, constant-velocity, route, or none (default: %(default)s)")
    p.add_argument("--no-model", action="store_true", help="run only the baselines")
    p.add_argument("--out", help="output directory (default: ./closed-loop-<mode>-<date>-<time>)")
    p.add_argument("--max-seconds", type=float, default=90.0,
                   help="simulated time limit per episode (default: %(default)s, as the data collection)")
    p.add_argument("--stuck-seconds", type=float, default=20.0,
                   help="end an episode as blocked after this long without moving 1 m; 0: never "
                        "(default: %(default)s)")
    p.add_argument("--map-blocks", type=int, default=3, help="blocks per procedural map (default: %(default)s)")
    p.add_argument("--traffic-density", type=float, default=0.08, help="(default: %(default)s)")
    p.add_argument("--ue-rate", type=float, help="UE prefill rate in async mode [Hz of sim time] (default: "
                                                 "config's rate_hz); sync mode prefills every frame")
    p.add_argument("--camera-rate", type=float, default=20.0,
                   help="camera frames (each planned on) per second of sim time: 20 (every simulator step) or a "
                        "divisor (10, 5, ...); the plan is held in between (default: %(default)s)")
    p.add_argument("--plan-timeout", type=float, default=60.0,
                   help="longest wall-clock wait for one frame's plan or context (default: %(default)s s)")
    p.add_argument("--startup-timeout", type=float, default=300.0,
                   help="seconds for the stack to come up (default: %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--force", action="store_true", help="replace --out if it holds an earlier closed-loop output")
    p.add_argument("--score-only", metavar="OUT_DIR", help="re-write the report of an earlier run")
    p.set_defaults(func=cmd_closed_loop)
