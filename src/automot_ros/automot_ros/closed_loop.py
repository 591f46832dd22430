"""`automot eval closed-loop`: drive MetaDrive with the stack in closed loop, and the baselines.

1. Seeds: ``--seed-start S --episodes N`` (S .. S+N-1; the default start, 100000, lies far
   past any collection's seeds, so every map is new to the model), or ``--manifest M``:
   the held-out seeds of a data collection (its manifest's ``splits.heldout``, first N);
   seeds in that collection's training split are refused.
2. Baselines (no stack), each in a process of its own (MetaDrive's engine is one per
   process), through the same episode loop, settings and metrics: sim/closed_loop.py.
3. Per mode (async, sync): starts the understanding and action nodes (config/drive.yaml
   plus overrides; use_sim_time) and nodes/sim_bridge.py, which drives the episodes in
   lockstep with the stack (see its docstring) and writes one log per episode. The UE runs
   at ``--ue-rate`` Hz of sim time in async mode (default: drive.yaml's rate_hz) and at the
   camera rate (20 Hz) in sync mode; the action node takes the BEV raster as its camera.
4. Report (eval/closed_loop_report.py): OUT/metrics.json, episodes.csv, report.md, plots/.

Layout: OUT/<policy>/episodes/seed_NNNNNN.npz (policies: automot-async, automot-sync,
expert, constant-velocity, route), OUT/<policy>/progress.jsonl and stack.log for the
model policies, OUT/run.json (the options).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import yaml

from automot_ros.sim.closed_loop import BASELINES, EpisodeSettings

MODES = ("async", "sync")
DEFAULT_SEED_START = 100_000


def log(text: str) -> None:
    print(f"automot eval closed-loop: {text}", flush=True)


@dataclass
class ClosedLoopOptions:
    out: str
    episodes: int = 20
    seed_start: Optional[int] = None
    manifest: Optional[str] = None
    modes: List[str] = field(default_factory=lambda: ["async"])
    baselines: List[str] = field(default_factory=lambda: ["expert", "constant-velocity"])
    model: Optional[str] = None  # None: drive.yaml's
    checkpoint: Optional[str] = None
    backend: Optional[str] = None
    device: Optional[str] = None  # None: drive.yaml's
    num_threads: Optional[int] = None  # torch threads per node; None: drive.yaml's
    config: str = ""
    namespace: str = "/automot"
    ue_rate_hz: Optional[float] = None  # async mode; None: drive.yaml's understanding_node rate_hz
    camera_hz: float = 20.0  # frames planned on per sim second (a divisor of the 20 Hz step); sync prefills each
    settings: EpisodeSettings = field(default_factory=EpisodeSettings)
    plan_timeout_s: float = 60.0
    startup_timeout_s: float = 300.0
    plots: bool = True
    force: bool = False


def resolve_seeds(opts: ClosedLoopOptions) -> Tuple[List[int], str]:
    """The evaluation seeds and where they come from."""
    if opts.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    if opts.manifest:
        manifest = json.loads(Path(opts.manifest).read_text())
        splits = manifest.get("splits", {})
        train = set(splits.get("train", []))
        if opts.seed_start is None:
            heldout = list(splits.get("heldout", []))
            if len(heldout) < opts.episodes:
                raise ValueError(f"{opts.manifest} holds out {len(heldout)} seeds; --episodes {opts.episodes} asks for "
                                 "more (use --seed-start for fresh seeds)")
            return heldout[:opts.episodes], f"held-out split of {opts.manifest}"
        seeds = list(range(opts.seed_start, opts.seed_start + opts.episodes))
        overlap = sorted(train & set(seeds))
        if overlap:
            raise ValueError(f"seeds {overlap[:5]}{'...' if len(overlap) > 5 else ''} are in the training split of "
                             f"{opts.manifest}: not held out")
        return seeds, f"seeds {seeds[0]}..{seeds[-1]} (none in the training split of {opts.manifest})"
    start = DEFAULT_SEED_START if opts.seed_start is None else opts.seed_start
    seeds = list(range(start, start + opts.episodes))
    return seeds, f"seeds {seeds[0]}..{seeds[-1]}" + (" (default: past any collection's seeds)"
                                                      if opts.seed_start is None else "")


def _yaml_str(value: str) -> str:
    """A ROS command-line parameter value that YAML reads back as this exact string."""
    return "'" + str(value).replace("'", "''") + "'"


def _drive_params(config: str) -> dict:
    try:
        return yaml.safe_load(Path(config).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


class _Interrupted(Exception):
    pass


def _raise_interrupt(_signum, _frame):
    raise _Interrupted


def run_model_mode(opts: ClosedLoopOptions, mode: str, seeds: List[int], out: Path, ue_rate_hz: float) -> int:
    """The stack + the simulator bridge on ``seeds``; returns the bridge's exit code."""
    from automot_ros.runtime.supervisor import NodeSpec, Supervisor

    policy = f"automot-{mode}"
    folder = out / policy
    folder.mkdir(parents=True, exist_ok=True)
    progress = folder / "progress.jsonl"
    if progress.exists():
        progress.unlink()
    rate = opts.camera_hz if mode == "sync" else ue_rate_hz
    segment = f"automot_closedloop_{os.getpid()}_{mode}"
    common = {k: _yaml_str(v) for k, v in (("model", opts.model), ("checkpoint", opts.checkpoint),
                                           ("device", opts.device)) if v}
    if opts.num_threads is not None:
        common["num_threads"] = str(int(opts.num_threads))
    ue = {**common, "rate_hz": str(rate), "cameras": "[front]", "camera_frame_ids": "['']", "segment": segment}
    ae = {**common, "cameras": "[bev]", "camera_frame_ids": "['']",
          # Sim time: ages are 0 .. 1/rate within an episode; the previous episode's context is older.
          "max_context_age_s": str(max(1.0, 2.0 / rate))}
    if opts.backend:
        ae["backend"] = _yaml_str(opts.backend)
    s = opts.settings
    info = {"model": opts.model or "drive.yaml", "checkpoint": opts.checkpoint or "", "backend": opts.backend or "",
            "device": opts.device or "", "num_threads": opts.num_threads}
    bridge = {
        "seeds": "[" + ",".join(str(int(x)) for x in seeds) + "]", "out_dir": _yaml_str(str(folder.resolve())),
        "policy": _yaml_str(policy), "mode": mode, "map_blocks": str(s.map_blocks),
        "traffic_density": str(float(s.traffic_density)), "max_seconds": str(float(s.max_seconds)),
        "stuck_seconds": str(float(s.stuck_seconds)), "ue_rate_hz": str(float(rate)),
        "camera_hz": str(float(opts.camera_hz)),
        "plan_timeout_s": str(float(opts.plan_timeout_s)), "context_timeout_s": str(float(opts.plan_timeout_s)),
        "startup_timeout_s": str(float(opts.startup_timeout_s)), "info_json": _yaml_str(json.dumps(info)),
    }
    drive = _drive_params(opts.config).get("understanding_node", {}).get("ros__parameters", {})
    for name, key in (("ue_frames", "frames"), ("ue_frame_interval_s", "frame_interval_s")):
        if key in drive:
            bridge[name] = str(drive[key])
    specs = [NodeSpec("understanding_node", ue, opts.config), NodeSpec("action_node", ae, opts.config),
             NodeSpec("sim_bridge", bridge)]
    stack_log = open(folder / "stack.log", "w")
    supervisor = Supervisor(specs, namespace=opts.namespace, use_sim_time=True, output=stack_log)
    log(f"[{policy}] starting understanding_node ({rate:g} Hz of sim time), action_node (BEV camera) and sim_bridge; "
        f"model {opts.model or 'from ' + opts.config}; log {folder / 'stack.log'}")
    seen = 0
    code = 1
    try:
        supervisor.start()
        while True:
            seen = _print_progress(progress, seen)
            bridge_code = supervisor.processes["sim_bridge"].poll()
            if bridge_code is not None:
                code = bridge_code
                break
            failure = [name for name in ("understanding_node", "action_node")
                       if supervisor.processes[name].poll() is not None]
            if failure:
                log(f"[{policy}] {failure[0]} exited with code {supervisor.processes[failure[0]].returncode}; "
                    f"stopping (log: {folder / 'stack.log'})")
                break
            time.sleep(0.5)
    except (_Interrupted, KeyboardInterrupt):
        log(f"[{policy}] interrupted: stopping the stack; episodes done so far are reported")
        code = 130
    finally:
        supervisor.stop()
        stack_log.close()
        _print_progress(progress, seen)
        stale = Path("/dev/shm") / segment
        if stale.exists():
            stale.unlink()
    if code not in (0, 130):
        tail = (folder / "stack.log").read_text(errors="replace").splitlines()[-20:]
        log(f"[{policy}] the run failed (exit {code}); last lines of {folder / 'stack.log'}:\n" + "\n".join(tail))
    return code


def _print_progress(path: Path, seen: int) -> int:
    if not path.exists():
        return seen
    lines = path.read_text().splitlines()
    for line in lines[seen:]:
        try:
            log(json.loads(line)["line"])
        except (ValueError, KeyError):
            pass
    return len(lines)


def run_baselines(opts: ClosedLoopOptions, seeds: List[int], out: Path) -> None:
    """The baselines, one after the other, in one spawned process (no ROS, no model)."""
    from automot_ros.sim.closed_loop import baseline_worker

    if not opts.baselines:
        return
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=baseline_worker, args=(list(opts.baselines), seeds, opts.settings.to_dict(),
                                                            str(out)), name="baselines")
    process.start()
    try:
        process.join()
    except (_Interrupted, KeyboardInterrupt):
        process.terminate()
        process.join()
        raise
    if process.exitcode != 0:
        log(f"baselines failed (exit {process.exitcode})")


def run_closed_loop(opts: ClosedLoopOptions) -> int:
    from automot_ros.sim.metadrive_env import metadrive_available

    ok, why = metadrive_available()
    if not ok:
        raise SystemExit(f"automot eval closed-loop: {why}")
    for mode in opts.modes:
        if mode not in MODES:
            raise SystemExit(f"automot eval closed-loop: --mode must be async, sync or both (async,sync); got {mode!r}")
    for policy in opts.baselines:
        if policy not in BASELINES:
            raise SystemExit(f"automot eval closed-loop: unknown baseline {policy!r} (known: {', '.join(BASELINES)})")
    try:
        seeds, source = resolve_seeds(opts)
    except (ValueError, OSError) as error:
        raise SystemExit(f"automot eval closed-loop: {error}")
    out = Path(opts.out)
    if out.exists() and any(out.iterdir()):
        if not (opts.force and (out / "run.json").is_file()):
            raise SystemExit(f"automot eval closed-loop: output directory {out} is not empty"
                             + (" and holds no run.json: not replaced" if opts.force else
                                " (--force replaces an earlier closed-loop output)"))
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    drive = _drive_params(opts.config)
    ue_rate = opts.ue_rate_hz or float(drive.get("understanding_node", {}).get("ros__parameters", {})
                                       .get("rate_hz", 2.0))
    model = opts.model or drive.get("action_node", {}).get("ros__parameters", {}).get("model", "smol")
    setting = opts.checkpoint if opts.checkpoint is not None else \
        drive.get("action_node", {}).get("ros__parameters", {}).get("checkpoint", "auto")
    from automot_ros.model.checkpoint import resolve_checkpoint

    resolved = resolve_checkpoint(model, setting) if opts.modes else None
    checkpoint = str(resolved) if resolved else ""
    run = {"simulator": "MetaDrive 0.4.3 (physics-only; automot's sensor model)", "model": model,
           "checkpoint": checkpoint, "backend": opts.backend or "drive.yaml's",
           "device": opts.device or "drive.yaml's", "num_threads": opts.num_threads or "drive.yaml's",
           "modes": opts.modes,
           "baselines": opts.baselines, "seeds": seeds, "seed_source": source, "settings": opts.settings.to_dict(),
           "ue_rate_hz_async": ue_rate, "camera_hz": opts.camera_hz, "namespace": opts.namespace, "config": opts.config,
           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0]}
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    log(f"{len(seeds)} episodes on {source}; modes {', '.join(opts.modes) or 'none'}; baselines "
        f"{', '.join(opts.baselines) or 'none'}; model {model}{' + ' + checkpoint if checkpoint else ' (untrained)'}; "
        f"out {out}")
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    failed = False
    try:
        run_baselines(opts, seeds, out)
        for mode in opts.modes:
            code = run_model_mode(opts, mode, seeds, out, ue_rate)
            failed |= code not in (0, 130)
            if code == 130:
                break
    except (_Interrupted, KeyboardInterrupt):
        log("interrupted: reporting what was done")
    finally:
        signal.signal(signal.SIGTERM, previous)
    run["wall_s"] = round(time.monotonic() - started, 1)
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    policies = [f"automot-{m}" for m in opts.modes] + list(opts.baselines)
    return report(out, policies, run, opts.plots) or (1 if failed else 0)


def report(out: Path, policies: List[str], run: dict, plots: bool = True) -> int:
    from automot_ros.eval.closed_loop_report import load_policy_logs, summary_lines, write_closed_loop_report

    logs = load_policy_logs(out, policies)
    if not any(logs.values()):
        log("no episode was completed: nothing to report")
        return 1
    metrics = write_closed_loop_report(out, {p: l for p, l in logs.items() if l}, run, plots=plots)
    print("closed-loop summary:")
    for line in summary_lines(metrics):
        print(line)
    print(f"report: {out / 'report.md'} (metrics.json, episodes.csv, plots/)", flush=True)
    return 0


def score_only(out_dir: str, plots: bool = True) -> int:
    out = Path(out_dir)
    try:
        run = json.loads((out / "run.json").read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"automot eval closed-loop: {out} is not a closed-loop output directory ({error})")
    policies = [f"automot-{m}" for m in run.get("modes", [])] + list(run.get("baselines", []))
    return report(out, policies, run, plots)


__all__ = ["ClosedLoopOptions", "run_closed_loop", "score_only", "resolve_seeds", "MODES", "DEFAULT_SEED_START"]
