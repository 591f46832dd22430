"""sim_bridge: MetaDrive in closed loop with the stack, in lockstep, on simulated time.

Owns MetaDriveSim(expert=False) and, per episode (seed), per 0.05 s step k, publishes /clock
(sim time t_k) and, on camera frames (every step at camera_hz 20, every 2nd at 10, ...; the
plan is held in between): ego/odom, the UE's camera (camera/<camera>/image_raw: the
front image), the AE's camera (camera/<scene_camera>/image_raw: the BEV raster the Action
Expert was trained on), agents (MarkerArray) and, latched once per episode, the route; all
stamped t_k. It then applies the DrivingPlan through the controller (control/controller.py)
and steps the simulator. The step is taken only once what the frame needs has arrived (or a
timeout passed), so inference speed never changes the outcome:

- async: AE camera -> wait for the plan of frame k -> UE camera -> if the UE's prefill is due
  on frame k (runtime/sim_time.py mirrors its schedule and history), wait for its
  ContextInfo. So plan k uses the newest earlier context: age 0.05 .. 1/ue_rate_hz s of sim
  time (a context becomes usable on the frame after the one it was computed from).
- sync: UE camera -> wait for the ContextInfo of frame k (the UE prefills every frame) ->
  AE camera -> wait for the plan of frame k, which therefore uses frame k's context (age 0).

Episodes follow each other on one sim clock, episode_gap_s apart (longer than the UE's frame
history, and than the action node's max_context_age_s so that the previous episode's
context is STALE: the controller brakes until the new episode's first context). Each
episode is written to <out_dir>/episodes/seed_NNNNNN.npz (eval/closed_loop.py EpisodeLog)
and a line to <out_dir>/progress.jsonl. The node exits when the last episode is done.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

from automot_msgs.msg import ContextInfo, DrivingPlan
from nav_msgs.msg import Odometry, Path as PathMsg
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from automot_ros.control.controller import PlanController, plan_from_arrays
from automot_ros.data.ego import EgoState
from automot_ros.nodes.common import run
from automot_ros.nodes.params import SimBridgeParams, declare
from automot_ros.ros.agents_conv import boxes_to_markers
from automot_ros.ros.image_conv import rgb_to_image
from automot_ros.ros.odometry_conv import ego_to_odometry
from automot_ros.ros.qos import ROUTE_QOS
from automot_ros.ros.route_conv import xy_to_path
from automot_ros.ros.time_conv import ns_to_stamp, stamp_to_ns
from automot_ros.runtime.sim_time import UnderstandingMirror
from automot_ros.sim.closed_loop import EpisodeRecorder, EpisodeSettings, episode_result, pose_of, progress_line

# Reliable publishers match the stack's best-effort sensor subscriptions and reliable ones.
OUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
START_NS = 1_000_000_000  # sim time of the first episode's first frame


class SimBridge(Node):
    def __init__(self):
        super().__init__("sim_bridge")
        self.params = p = declare(self, SimBridgeParams)
        self.clock_pub = self.create_publisher(Clock, "/clock", OUT_QOS)
        self.front_pub = self.create_publisher(Image, f"camera/{p.camera}/image_raw", OUT_QOS)
        self.scene_pub = self.create_publisher(Image, f"camera/{p.scene_camera}/image_raw", OUT_QOS)
        self.odom_pub = self.create_publisher(Odometry, "ego/odom", OUT_QOS)
        self.route_pub = self.create_publisher(PathMsg, "route", ROUTE_QOS)
        self.agents_pub = self.create_publisher(MarkerArray, "agents", OUT_QOS)
        self.plans, self.contexts = {}, {}  # stamp ns -> message (this step's only, cleared per episode)
        self.create_subscription(DrivingPlan, "plan", lambda m: self._keep(self.plans, m), 50)
        self.create_subscription(ContextInfo, "context", lambda m: self._keep(self.contexts, m), 50)

    @staticmethod
    def _keep(store: dict, msg) -> None:
        store[stamp_to_ns(msg.header.stamp)] = msg
        if len(store) > 200:
            del store[min(store)]

    def stack_ready(self) -> bool:
        p = self.params
        return (self.front_pub.get_subscription_count() >= 1 and self.scene_pub.get_subscription_count() >= 1
                and self.count_publishers(self.resolve_topic_name("plan")) >= 1
                and self.count_publishers(self.resolve_topic_name("context")) >= 1
                and self.odom_pub.get_subscription_count() >= 2 and bool(p.seeds))


class LockstepRun:
    """Drives the episodes; spins the node's executor while it waits."""

    def __init__(self, node: SimBridge, executor, stop: threading.Event):
        self.node, self.executor, self.stop = node, executor, stop
        p = node.params
        self.p = p
        self.settings = EpisodeSettings(map_blocks=p.map_blocks, traffic_density=p.traffic_density,
                                        max_seconds=p.max_seconds, stuck_seconds=p.stuck_seconds)
        self.cam, self.bev = self.settings.camera(), self.settings.bev()
        self.mirror = UnderstandingMirror(p.ue_rate_hz, p.ue_frames, p.ue_frame_interval_s)
        self.out = Path(p.out_dir)
        self.first_context = True
        self.info = json.loads(p.info_json or "{}")
        self.log = node.get_logger()

    def spin_until(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if self.stop.is_set() or time.monotonic() > deadline:
                return predicate()
            self.executor.spin_once(timeout_sec=0.002)
        return True

    def run(self) -> int:
        from automot_ros.sim.metadrive_env import MetaDriveSim

        p = self.p
        with MetaDriveSim(self.settings.sim_config(expert=False)) as sim:  # while the stack loads its model
            self.log.info(f"waiting for the stack (up to {p.startup_timeout_s:.0f} s) ...")
            if not self.spin_until(self.node.stack_ready, p.startup_timeout_s):
                self.log.error("the stack did not come up (no subscribers to the cameras/odometry or no "
                               "plan/context publisher)")
                return 1
            self.spin_until(lambda: False, 0.5)  # let discovery settle
            self.out.joinpath("episodes").mkdir(parents=True, exist_ok=True)
            base_ns = START_NS
            for index, seed in enumerate(p.seeds):
                if self.stop.is_set():
                    break
                episode, last_ns = self.episode(sim, int(seed), base_ns)
                episode.save(self.out / "episodes" / f"seed_{int(seed):06d}.npz")
                line = progress_line(p.policy, index + 1, len(p.seeds), episode)
                print(line, flush=True)
                with open(self.out / "progress.jsonl", "a") as f:
                    f.write(json.dumps({"seed": int(seed), "index": index + 1, "total": len(p.seeds),
                                        "result": episode.result, "line": line}) + "\n")
                base_ns = last_ns + int(round(p.episode_gap_s * 1e9))
                base_ns -= base_ns % 50_000_000
        return 0

    def episode(self, sim, seed: int, base_ns: int):
        from automot_ros.data.sensors import render_bev, render_front
        from automot_ros.sim.metadrive_env import STEP_S

        p, node = self.p, self.node
        step_ns = int(round(STEP_S * 1e9))
        state = sim.reset(seed)
        node.plans.clear()
        node.contexts.clear()
        controller = PlanController()
        recorder = EpisodeRecorder(p.policy, seed, state, STEP_S, info={
            **self.info, "mode": p.mode, "settings": self.settings.to_dict(), "ue_rate_hz": p.ue_rate_hz,
            "episode_start_ns": base_ns})
        timeouts = {"plan": 0, "context": 0}
        node.clock_pub.publish(Clock(clock=ns_to_stamp(base_ns)))
        node.route_pub.publish(xy_to_path(state.route, ns_to_stamp(base_ns), p.odom_frame_id))
        self.spin_until(lambda: False, 0.3)  # the latched route reaches both nodes before the first frame
        is_blocked = False
        status = -1  # of the plan in use
        while True:
            t0 = time.perf_counter()
            stamp_ns = base_ns + state.step * step_ns
            stamp = ns_to_stamp(stamp_ns)
            node.clock_pub.publish(Clock(clock=stamp))
            plan, wait_ms = None, math.nan
            if state.step % p.steps_per_frame() == 0:  # a camera frame: the stack plans on it
                e = state.ego
                node.odom_pub.publish(ego_to_odometry(
                    EgoState(stamp_ns=stamp_ns, x=e.x, y=e.y, yaw=e.yaw, speed_mps=max(e.speed_mps, 0.0)),
                    p.odom_frame_id))
                front = rgb_to_image(render_front(state, self.cam), stamp, "front_camera")
                scene = rgb_to_image(render_bev(state, self.bev).transpose(1, 2, 0), stamp, "bev")
                if p.mode == "sync":
                    self._send_front(front, stamp_ns, timeouts)
                sent = time.perf_counter()
                node.scene_pub.publish(scene)
                plan = self._wait_plan(stamp_ns, timeouts)
                wait_ms = (time.perf_counter() - sent) * 1e3  # AE camera out -> plan in (wall)
                if p.mode == "async":
                    self._send_front(front, stamp_ns, timeouts)
                node.agents_pub.publish(boxes_to_markers(stamp, state.agent_boxes, state.agent_heights,
                                                         state.agent_ids, p.odom_frame_id))
                self._take_contexts(recorder, base_ns, stamp_ns)
                status = plan.status if plan is not None else -1
                if plan is not None:
                    controller.set_plan(plan_from_arrays(
                        state.t_s, pose_of(state), plan.status, [(q.x, q.y) for q in plan.path],
                        [(w.x, w.y) for w in plan.waypoints]))
            control = controller.update(state.t_s, pose_of(state), state.ego.speed_mps)
            # Between camera frames the plan is held: its status is recorded, its timings only
            # on the frame it was computed for (one entry per inference).
            fresh = plan is not None and bool(plan.waypoints)
            recorder.add(state, control, status=status,
                         plan_ms=plan.inference_ms if fresh else math.nan,
                         context_age_ms=plan.context_age_ms if fresh else math.nan,
                         wait_ms=wait_ms if plan is not None else math.nan,
                         waypoints=[(w.x, w.y) for w in plan.waypoints] if plan is not None else None,
                         path=[(q.x, q.y) for q in plan.path] if plan is not None else None,
                         wall_ms=(time.perf_counter() - t0) * 1e3)
            is_blocked = state.step % 20 == 0 and recorder.blocked(self.settings.stuck_seconds)
            if sim.done or is_blocked or self.stop.is_set():
                break
            state = sim.step(control.action())
        self.spin_until(lambda: False, 0.05)
        self._take_contexts(recorder, base_ns, stamp_ns)
        recorder.info["timeouts"] = timeouts
        result = episode_result(sim.done, state.outcome, is_blocked)
        return recorder.finish(state, result), stamp_ns

    def _take_contexts(self, recorder, base_ns: int, up_to_ns: int) -> None:
        """Record (and forget) the contexts of this episode's frames up to ``up_to_ns``."""
        for stamp_ns in sorted(s for s in self.node.contexts if s <= up_to_ns):
            context = self.node.contexts.pop(stamp_ns)
            if stamp_ns >= base_ns:
                recorder.add_context((stamp_ns - base_ns) / 1e9, context.compute_ms)

    def _send_front(self, front, stamp_ns: int, timeouts: dict) -> None:
        """Publish the UE's frame; when its prefill is due on it, wait for the context."""
        self.node.front_pub.publish(front)
        if self.mirror.frame(stamp_ns):
            if self.spin_until(lambda: stamp_ns in self.node.contexts, self.p.context_timeout_s):
                if self.first_context:  # the action node learns the segment from this announcement
                    self.first_context = False
                    self.spin_until(lambda: False, 0.2)
            else:
                if not self.stop.is_set():
                    timeouts["context"] += 1
                    self.log.warning(f"no context for the frame at {stamp_ns / 1e9:.2f} s within "
                                     f"{self.p.context_timeout_s:g} s; going on")

    def _wait_plan(self, stamp_ns: int, timeouts: dict):
        if self.spin_until(lambda: stamp_ns in self.node.plans, self.p.plan_timeout_s):
            return self.node.plans.pop(stamp_ns)
        if not self.stop.is_set():
            timeouts["plan"] += 1
            self.log.warning(f"no plan for the frame at {stamp_ns / 1e9:.2f} s within {self.p.plan_timeout_s:g} s; "
                             "holding the previous one")
        return None


def main(args=None) -> int:
    """The node drives the loop itself and exits when the episodes are done."""
    return run(SimBridge, args, loop=lambda node, executor, stop: LockstepRun(node, executor, stop).run())


if __name__ == "__main__":
    raise SystemExit(main())
