"""`automot replay BAG`: play a rosbag2 into the stack, record what it plans, score it.

1. Reads the bag (mcap or sqlite3, via rosbags; bag_io.BagReader) lazily.
2. Publishes the stack's input topics (cameras, odometry, route: the bag topics that,
   after ``--remap``, are named ``<ns>/camera/<name>/image_raw``, ``<ns>/ego/odom`` and
   ``<ns>/route``) as the bag's CDR bytes, at the recorded timing (log times) divided by
   ``--rate``, or with ``--fast`` as fast as the stack plans (each camera frame waits for
   the previous frame's plan, at most ``--fast-timeout`` s).
3. Attaches to a stack already running in ``--namespace``, or starts one (understanding
   and action nodes through runtime/supervisor.py) when none answers, or always with
   ``--start-stack``.
4. Records every DrivingPlan and ContextInfo, and the wall time each camera frame went out,
   into OUT/recorded (an mcap bag) and writes OUT/replay.json.
5. Scores from OUT/recorded and the input bag alone (so ``--score-only OUT`` re-scores):
   OUT/metrics.json, OUT/frames.csv, OUT/report.md, OUT/plots/*.png.

A truncated or corrupt bag: playback stops at the first unreadable message with a clear
message, everything before it is still played, recorded and scored, and the exit code is 3.
Exit codes: 0 scored, 1 failed (nothing scored), 3 scored from a damaged bag.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from automot_ros.data.bag_io import BagError, BagReader, BagWriter, deserialize, stamp_ns, typestore
from automot_ros.data.replay_logs import CONTEXT_TYPE, PLAN_TYPE, PUBLISHED_TYPE, read_ground_truth, read_recorded
from automot_ros.eval.open_loop import EGO_LENGTH_M, EGO_WIDTH_M
from automot_ros.eval.report import summary_lines, write_report
from automot_ros.eval.scoring import BOX_TIME_TOLERANCE_S, score_run

EXIT_OK, EXIT_FAILED, EXIT_DAMAGED_BAG = 0, 1, 3
CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
ODOM_TYPE = "nav_msgs/msg/Odometry"
ROUTE_TYPE = "nav_msgs/msg/Path"
PUBLISHED_TOPIC = "/automot_replay/camera_published"
DEFAULT_BOXES_TOPIC = "/automot/agents"
STACK_NODES_FOR_REPLAY = ("understanding_node", "action_node")


def log(text: str) -> None:
    print(f"automot replay: {text}", flush=True)


# --------------------------------------------------------------------------- topics


def normalize_namespace(namespace: str) -> str:
    stripped = namespace.strip("/")
    return f"/{stripped}" if stripped else ""


def parse_remaps(rules: Sequence[str]) -> List[Tuple[str, str]]:
    """'FROM:=TO' rules (like `ros2 bag play --remap`). When both sides end with '/', the
    rule moves a whole namespace: '/automot/:=/car1/' maps /automot/route to /car1/route."""
    parsed = []
    for rule in rules:
        source, sep, target = rule.partition(":=")
        if not sep or not source.startswith("/") or not target.startswith("/"):
            raise ValueError(f"remap rule {rule!r} must be /FROM:=/TO (absolute topic names)")
        if source.endswith("/") != target.endswith("/"):
            raise ValueError(f"remap rule {rule!r}: a namespace rule needs a trailing '/' on both sides")
        parsed.append((source, target))
    return parsed


def remap_topic(name: str, rules: Sequence[Tuple[str, str]]) -> str:
    for source, target in rules:
        if source.endswith("/") and name.startswith(source):
            return target + name[len(source):]
        if name == source:
            return target
    return name


@dataclass
class TopicPlan:
    publish: List[Tuple[str, str, str, bool]]  # (bag topic, published topic, msgtype, latched)
    camera: Tuple[str, str]  # primary camera (bag topic, published topic)
    odometry: str  # bag topic of the ground-truth odometry
    boxes: Optional[str]  # bag topic of the agent boxes, if the bag has it
    skipped: List[str] = field(default_factory=list)


def plan_topics(topics: Dict[str, object], rules, namespace: str, explicit: Optional[Sequence[str]] = None,
                boxes_topic: Optional[str] = DEFAULT_BOXES_TOPIC, odom_topic: Optional[str] = None) -> TopicPlan:
    """Which bag topics to publish where, and which ones hold the ground truth."""
    ns = normalize_namespace(namespace)
    camera_pattern = re.compile(rf"^{re.escape(ns)}/camera/[^/]+/image_raw$")
    publish, skipped = [], []
    for name in sorted(topics):
        info = topics[name]
        out = remap_topic(name, rules)
        is_input = ((info.msgtype in CAMERA_TYPES and camera_pattern.match(out)) or
                    (info.msgtype == ODOM_TYPE and out == f"{ns}/ego/odom") or
                    (info.msgtype == ROUTE_TYPE and out == f"{ns}/route"))
        chosen = name in explicit if explicit else is_input
        if chosen:
            latched = bool(getattr(info, "transient_local", False)) or info.msgtype == ROUTE_TYPE
            publish.append((name, out, info.msgtype, latched))
        else:
            skipped.append(name)
    if explicit:
        missing = sorted(set(explicit) - set(topics))
        if missing:
            raise ValueError(f"--topics names topics the bag does not have: {missing}")
    cameras = [(b, o) for b, o, t, _ in publish if t in CAMERA_TYPES]
    if not cameras:
        raise ValueError(f"no camera topic to publish: after remapping, none of the bag's topics "
                         f"{sorted(topics)} is {ns}/camera/<name>/image_raw (use --remap FROM:=TO)")
    front = [c for c in cameras if c[1] == f"{ns}/camera/front/image_raw"]
    camera = front[0] if front else cameras[0]
    if odom_topic is None:
        odoms = [b for b, o, t, _ in publish if t == ODOM_TYPE]
        if not odoms:
            raise ValueError(f"no odometry topic: none of the bag's topics maps to {ns}/ego/odom "
                             "(use --remap, or --odom-topic for the ground truth)")
        odom_topic = odoms[0]
    elif odom_topic not in topics:
        raise ValueError(f"--odom-topic {odom_topic!r} is not in the bag")
    boxes = boxes_topic if boxes_topic and boxes_topic in topics else None
    return TopicPlan(publish, camera, odom_topic, boxes, skipped)


# --------------------------------------------------------------------------- options


@dataclass
class ReplayOptions:
    bag: str
    out: str
    rate: float = 1.0
    fast: bool = False
    remaps: List[str] = field(default_factory=list)
    topics: Optional[List[str]] = None
    boxes_topic: Optional[str] = DEFAULT_BOXES_TOPIC
    odom_topic: Optional[str] = None
    namespace: str = "/automot"
    start_stack: str = "auto"  # auto | always | never
    config: str = ""
    overrides: Dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 180.0
    attach_wait_s: float = 3.0
    drain_s: float = 5.0
    fast_timeout_s: float = 10.0
    plots: bool = True
    force: bool = False  # replace an earlier replay's output directory

    def rate_text(self) -> str:
        return "fast (lockstep with the plans)" if self.fast else f"{self.rate:g}x recorded timing"


# --------------------------------------------------------------------------- replay


class _Replay:
    def __init__(self, opts: ReplayOptions, reader: BagReader, plan: TopicPlan, out: Path):
        from automot_ros.ros.bag_player import BagPlayerNode

        self.opts, self.reader, self.plan, self.out = opts, reader, plan, out
        ns = normalize_namespace(opts.namespace)
        self.plan_topic, self.context_topic = f"{ns}/plan", f"{ns}/context"
        self.player = BagPlayerNode()
        self.writer = BagWriter(out / "recorded", storage="mcap")
        self.writer.add_topic(self.plan_topic, PLAN_TYPE)
        self.writer.add_topic(self.context_topic, CONTEXT_TYPE)
        self.writer.add_topic(PUBLISHED_TOPIC, PUBLISHED_TYPE)
        self.types = {self.plan_topic: PLAN_TYPE, self.context_topic: CONTEXT_TYPE}
        self.planned = set()
        self.plans = 0
        self.supervisor = None
        self.stack_log = None
        self.error: Optional[str] = None
        self.published = 0
        self.camera_frames = 0
        self.time_type = typestore().types[PUBLISHED_TYPE]
        for _, topic, msgtype, latched in plan.publish:
            self.player.add_publisher(topic, msgtype, latched)
        self.player.record(self.plan_topic, PLAN_TYPE, self._on_plan)
        self.player.record(self.context_topic, CONTEXT_TYPE)

    def _on_plan(self, data: bytes) -> None:
        self.planned.add(stamp_ns(deserialize(bytes(data), PLAN_TYPE).header.stamp))
        self.plans += 1

    def flush(self) -> None:
        for topic, receive_ns, data in self.player.drain():
            self.writer.write(topic, receive_ns, data, self.types[topic])

    def check_stack(self) -> None:
        if self.supervisor is not None:
            failure = self.supervisor.failed()
            if failure:
                raise RuntimeError(f"the stack stopped: {failure} (log: {self.out / 'stack.log'})\n{self._log_tail()}")

    def _log_tail(self, lines: int = 25) -> str:
        path = self.out / "stack.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait(self, seconds: float, until=lambda: False) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            self.flush()
            self.check_stack()
            if until():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, 0.02))

    # -- the stack
    def connect(self) -> str:
        camera = self.plan.camera[1]
        # Topics both nodes read besides their cameras. The route is sent once (latched): a node
        # that matches it only after playback started plans nothing until then.
        state_out = [o for b, o, t, _ in self.plan.publish if t in (ODOM_TYPE, ROUTE_TYPE)]
        mode = self.opts.start_stack
        if mode != "always":
            # With --no-start-stack there is nothing else to do, so the running stack gets the
            # startup timeout to be discovered: on a loaded machine DDS discovery of a process
            # that has just started can take several seconds.
            wait_s = self.opts.attach_wait_s if mode == "auto" else self.opts.startup_timeout_s
            log(f"looking for a running stack on {camera} (up to {wait_s:g} s) ...")
            if self.wait(wait_s, lambda: self.player.subscribers(camera) >= 1
                         and self.player.publishers_on(self.plan_topic) >= 1):
                log("attached to the running stack")
                time.sleep(0.5)
                return "attached to a running stack"
            if mode == "never":
                raise RuntimeError(f"no stack answered on {camera} / {self.plan_topic} within {wait_s:g} s "
                                   "(and --no-start-stack)")
        from automot_ros.runtime.supervisor import Supervisor, stack_specs

        specs = stack_specs(self.opts.config, self.opts.overrides, nodes=STACK_NODES_FOR_REPLAY)
        self.stack_log = open(self.out / "stack.log", "w")
        self.supervisor = Supervisor(specs, namespace=self.opts.namespace, output=self.stack_log)
        model = self.opts.overrides.get("model", "the config's model")
        log(f"starting the stack ({', '.join(STACK_NODES_FOR_REPLAY)}; {model}; log {self.out / 'stack.log'}); "
            f"waiting for it to subscribe (up to {self.opts.startup_timeout_s:.0f} s) ...")
        start = time.monotonic()
        self.supervisor.start()

        cameras_out = [o for b, o, t, _ in self.plan.publish if t in CAMERA_TYPES]

        def ready() -> bool:
            # Both nodes have subscribed: each to its camera (the UE to the front camera, the
            # AE to the BEV raster, or both to one), to the odometry and to the route; the AE
            # also to the UE's context announcements (besides our recorder), so the first
            # context is not announced before the AE listens.
            return (sum(self.player.subscribers(c) for c in cameras_out) >= 2
                    and all(self.player.subscribers(o) >= 2 for o in state_out)
                    and self.player.publishers_on(self.plan_topic) >= 1
                    and self.player.publishers_on(self.context_topic) >= 1
                    and self.player.subscribers(self.context_topic) >= 2)

        if not self.wait(self.opts.startup_timeout_s, ready):
            raise RuntimeError(f"the stack did not come up within {self.opts.startup_timeout_s:.0f} s\n{self._log_tail()}")
        time.sleep(0.5)  # discovery: let the matched endpoints settle before the first frame
        log(f"stack up after {time.monotonic() - start:.1f} s")
        return f"started ({', '.join(STACK_NODES_FOR_REPLAY)}, {model})"

    # -- playback
    def play(self) -> None:
        opts = self.opts
        publish_to = {b: (o, t) for b, o, t, _ in self.plan.publish}
        camera_bag = self.plan.camera[0]
        t_wall0 = t_bag0 = None
        previous_camera_stamp = None
        last_progress = time.monotonic()
        for message in self.reader.messages(list(publish_to)):
            out_topic, msgtype = publish_to[message.topic]
            if t_bag0 is None:
                t_wall0, t_bag0 = time.monotonic(), message.log_time_ns
            try:
                decoded = self.reader.decode(message)
            except Exception as error:  # noqa: BLE001 - garbage that parsed as a record
                self.reader.error = (f"{self.reader.path} is corrupt: message {self.reader.messages_read} on "
                                     f"{message.topic} cannot be decoded ({error}); playback stopped there")
                break
            if not opts.fast:
                target = t_wall0 + (message.log_time_ns - t_bag0) / 1e9 / opts.rate
                self.wait(max(0.0, target - time.monotonic()))
            is_camera = message.topic == camera_bag
            if is_camera and opts.fast and previous_camera_stamp is not None:
                if not self.wait(opts.fast_timeout_s, lambda: previous_camera_stamp in self.planned):
                    log(f"no plan for the frame at {previous_camera_stamp / 1e9:.3f} s within "
                        f"{opts.fast_timeout_s:g} s; going on")
            self.player.publish(out_topic, message.data)
            self.published += 1
            if is_camera:
                stamp = stamp_ns(decoded.header.stamp)
                self.writer.write(PUBLISHED_TOPIC, time.time_ns(),
                                  self.time_type(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000))
                previous_camera_stamp = stamp
                self.camera_frames += 1
            if time.monotonic() - last_progress > 2.0:
                last_progress = time.monotonic()
                log(f"bag t={(message.log_time_ns - t_bag0) / 1e9:5.1f} s: {self.camera_frames} camera frames "
                    f"published, {self.plans} plans recorded")
        self.last_camera_stamp = previous_camera_stamp
        self.error = self.reader.error

    def drain(self) -> None:
        """Wait for the plans still in flight: until the last frame's plan is in, or no plan
        has come for drain_s (120 s at most)."""
        last = getattr(self, "last_camera_stamp", None)
        end = time.monotonic() + 120.0
        while time.monotonic() < end:
            before = self.plans
            if self.wait(self.opts.drain_s, lambda: (last is not None and last in self.planned)
                         or self.plans != before):
                if last is not None and last in self.planned:
                    self.wait(0.3)
                    return
                continue
            return

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.player.close()
            self.flush()
            if self.supervisor is not None:
                self.supervisor.stop()
            if self.stack_log is not None:
                self.stack_log.close()


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def bag_custom_data(path) -> Dict[str, str]:
    """custom_data of a bag directory's metadata.yaml ({} when there is none)."""
    meta = Path(path) / "metadata.yaml"
    try:
        data = yaml.safe_load(meta.read_text())
        return dict(data["rosbag2_bagfile_information"].get("custom_data") or {})
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}


def run_replay(opts: ReplayOptions) -> int:
    if opts.rate <= 0:
        raise SystemExit("automot replay: --rate must be positive")
    out = Path(opts.out)
    if out.exists() and any(out.iterdir()):
        if not (opts.force and (out / "replay.json").is_file()):
            raise SystemExit(f"automot replay: output directory {out} is not empty"
                             + ("" if opts.force else " (--force replaces an earlier replay's output)")
                             + (" and holds no replay.json: not replaced" if opts.force else ""))
        shutil.rmtree(out)
    try:
        reader = BagReader(opts.bag)
    except BagError as error:
        raise SystemExit(f"automot replay: cannot read the bag: {error}")
    try:
        plan = plan_topics(reader.topics, parse_remaps(opts.remaps), opts.namespace, opts.topics,
                           opts.boxes_topic, opts.odom_topic)
    except ValueError as error:
        reader.close()
        raise SystemExit(f"automot replay: {error}")
    for warning in reader.warnings:
        log(f"warning: {warning}")
    custom = bag_custom_data(opts.bag)
    synthetic = custom.get("automot.synthetic") == "true"
    log(f"{opts.bag} ({reader.storage}{', SYNTHETIC' if synthetic else ''}): publishing "
        + ", ".join(f"{b} -> {o}" if b != o else b for b, o, _, _ in plan.publish)
        + f"; ground truth: odometry {plan.odometry}, agent boxes {plan.boxes or 'none'}; {opts.rate_text()}")
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "input_bag": str(Path(opts.bag).resolve()), "storage": reader.storage, "synthetic": synthetic,
        "options": {k: v for k, v in asdict(opts).items() if k not in ("bag", "out")},
        "rate_text": opts.rate_text(), "namespace": normalize_namespace(opts.namespace) or "/",
        "topics": {"published": [[b, o, t] for b, o, t, _ in plan.publish], "camera": list(plan.camera),
                   "odometry": plan.odometry, "boxes": plan.boxes},
        "recorded_bag": "recorded", "recorded_topics": {}, "warnings": list(reader.warnings),
        "ego_box": f"{EGO_LENGTH_M} x {EGO_WIDTH_M} m", "box_tolerance_s": BOX_TIME_TOLERANCE_S,
        "model": opts.overrides.get("model", "config default"),
    }
    (out / "replay.json").write_text(json.dumps({**info, "state": "running"}, indent=2) + "\n")
    started = time.monotonic()
    # SIGTERM ends playback like SIGINT: what was recorded is still written and scored.
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    replay = _Replay(opts, reader, plan, out)
    info["recorded_topics"] = {"plan": replay.plan_topic, "context": replay.context_topic,
                               "camera_published": PUBLISHED_TOPIC}
    failure = None
    try:
        info["stack"] = replay.connect()
        play_start = time.monotonic()
        try:
            replay.play()
        except KeyboardInterrupt:
            log("interrupted: scoring what was recorded")
            info["warnings"].append("playback interrupted (SIGINT/SIGTERM)")
        info["play_wall_s"] = round(time.monotonic() - play_start, 2)
        try:
            replay.drain()
        except KeyboardInterrupt:
            pass
    except RuntimeError as error:
        failure = str(error)
    finally:
        replay.writer.set_custom_data("automot.replay", json.dumps(info))
        replay.close()
        replay.writer.close()
        reader.close()
        signal.signal(signal.SIGTERM, previous_term)
    info.update(state="done", bag_error=replay.error, wall_s=round(time.monotonic() - started, 2),
                messages_published=replay.published, camera_frames_published=replay.camera_frames,
                plans_recorded=replay.plans, failure=failure)
    (out / "replay.json").write_text(json.dumps(info, indent=2) + "\n")
    if replay.error:
        log(f"ERROR: {replay.error}")
        log("the messages before the damage were played and are scored")
    if failure:
        log(f"failed: {failure}")
        if replay.plans == 0:
            return EXIT_FAILED
    log(f"played {replay.published} messages ({replay.camera_frames} camera frames) in {info.get('play_wall_s', 0)} s; "
        f"recorded {replay.plans} plans; scoring ...")
    code = score_output(out, plots=opts.plots)
    if failure:
        return EXIT_FAILED
    return code


def score_output(out_dir, plots: bool = True) -> int:
    """Score OUT_DIR from its recorded bag and the input bag named in replay.json."""
    out = Path(out_dir)
    try:
        info = json.loads((out / "replay.json").read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"automot replay: {out} is not a replay output directory (replay.json: {error})")
    started = time.monotonic()
    try:
        truth = read_ground_truth(info["input_bag"], info["topics"]["odometry"], info["topics"]["boxes"])
    except (BagError, ValueError) as error:
        raise SystemExit(f"automot replay: cannot read the ground truth: {error}")
    topics = info["recorded_topics"]
    recorded = read_recorded(out / info["recorded_bag"], topics["plan"], topics["context"], topics["camera_published"])
    metrics, table = score_run(recorded.plans, recorded.contexts, truth.ego, truth.agents, recorded.published)
    bag_error = info.get("bag_error") or truth.error
    metrics["replay"] = {
        **{k: info.get(k) for k in ("input_bag", "storage", "synthetic", "rate_text", "stack", "model", "namespace",
                                    "wall_s", "messages_published", "ego_box", "box_tolerance_s")},
        "recorded_bag": str(out / info["recorded_bag"]),
        "bag_error": bag_error,
        "warnings": info.get("warnings", []) + truth.warnings + ([recorded.error] if recorded.error else []),
    }
    write_report(out, metrics, table, plots=plots)
    for line in summary_lines(metrics):
        print(line)
    print(f"report: {out / 'report.md'} (metrics.json, frames.csv, plots/; scored in "
          f"{time.monotonic() - started:.1f} s)", flush=True)
    return EXIT_DAMAGED_BAG if bag_error else EXIT_OK
