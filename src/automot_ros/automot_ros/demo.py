"""The main job: the full stack on a synthetic source, observed from a probe node.

Prints a line per second (newest plan, plan rate, context seq and age), then asks one
question through the `ask` service and prints the answer and a summary.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import rclpy
from automot_msgs.msg import ContextInfo, DrivingPlan
from automot_msgs.srv import Ask
from rclpy.executors import SingleThreadedExecutor

from automot_ros.ask_client import ask, wait_for_reply_path
from automot_ros.data.decisions import LATERAL_NAMES, LONGITUDINAL_NAMES
from automot_ros.runtime.plan_result import PlanStatus
from automot_ros.runtime.supervisor import NodeSpec, Supervisor, stack_specs

STARTUP_TIMEOUT_S = 120.0


def _describe(plan: DrivingPlan) -> str:
    status = PlanStatus(plan.status).name
    if not plan.waypoints:
        return status
    now = plan.meta_actions[0]
    end = plan.waypoints[-1]
    return (f"{status:13s} {LATERAL_NAMES[now.lateral]}, {LONGITUDINAL_NAMES[now.longitudinal]}"
            f" | 3 s waypoint ({end.x:+.1f}, {end.y:+.1f}) m | AE {plan.inference_ms:.1f} ms")


def run_demo(params_file: str, overrides: dict, namespace: str, duration_s: float, question: str) -> int:
    specs = stack_specs(params_file, overrides) + [NodeSpec("synthetic_source")]
    supervisor = Supervisor(specs, namespace=namespace)
    print("automot demo: SYNTHETIC camera/odometry/route -> understanding, action and language nodes")
    rclpy.init()
    node = rclpy.create_node("automot_demo_probe", namespace=namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    plans, contexts = [], []
    node.create_subscription(DrivingPlan, "plan", lambda m: plans.append((time.monotonic(), m)), 50)
    node.create_subscription(ContextInfo, "context", contexts.append, 10)
    client = node.create_client(Ask, "ask")
    supervisor.start()
    try:
        return _observe(supervisor, executor, client, plans, contexts, duration_s, question,
                        describe_weights(params_file, overrides))
    finally:
        supervisor.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def _spin_for(executor, supervisor, seconds: float, until=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        executor.spin_once(timeout_sec=0.05)
        failure = supervisor.failed()
        if failure:
            raise SystemExit(f"automot demo: {failure}")


def describe_weights(params_file: str, overrides: dict) -> str:
    """Which weights the action node runs (its model and checkpoint settings), in words."""
    import yaml

    from automot_ros.model.checkpoint import resolve_checkpoint

    section = (yaml.safe_load(Path(params_file).read_text()) or {}).get("action_node", {}).get("ros__parameters", {})
    settings = {**section, **{k: yaml.safe_load(v) for k, v in overrides.items()}}
    checkpoint = resolve_checkpoint(settings.get("model", "smol"), settings.get("checkpoint", "auto"))
    if checkpoint is None:
        return "untrained (no checkpoint): plans show the plumbing, not driving quality"
    return (f"trained checkpoint {checkpoint} (trained in MetaDrive; this SYNTHETIC road is outside its "
            "training data)")


def _observe(supervisor, executor, client, plans, contexts, duration_s, question, weights: str) -> int:
    print(f"waiting for the first context (model load and first prefill, up to {STARTUP_TIMEOUT_S:.0f} s) ...")
    _spin_for(executor, supervisor, STARTUP_TIMEOUT_S, until=lambda: contexts)
    if not contexts:
        print("automot demo: no context arrived; is the understanding node running?")
        return 1
    start, first_plan = time.monotonic(), len(plans)
    while time.monotonic() - start < duration_s:
        _spin_for(executor, supervisor, 1.0)
        recent = [m for t, m in plans if t > time.monotonic() - 1.0]
        newest = plans[-1][1] if plans else None
        line = _describe(newest) if newest else "no plan yet"
        age = f"{newest.context_age_ms:6.0f}" if newest else "     -"
        print(f"t={time.monotonic() - start:5.1f}s plans {len(recent):3d}/s context seq {contexts[-1].seq:3d} "
              f"age {age} ms | {line}")
    window = [m for _, m in plans[first_plan:]]
    print(f"\nasking: {question!r}")

    def spin_until(predicate, timeout_s: float) -> bool:
        _spin_for(executor, supervisor, timeout_s, until=predicate)
        return bool(predicate())

    response = None
    if not (spin_until(client.service_is_ready, 30.0) and wait_for_reply_path(client, spin_until, 30.0)):
        print(f"no reply from {client.srv_name} within 30 s")
    elif (response := ask(client, question, spin_until, 120.0)) is None:
        print("no answer within 120 s")
    elif response.success:
        print(f"answer ({response.latency_ms:.0f} ms, context seq {response.context_seq}): {response.answer!r}")
    else:
        print(f"not answered: {response.error}")

    statuses = {s.name: sum(m.status == s for m in window) for s in PlanStatus}
    inference = [m.inference_ms for m in window if m.waypoints]
    compute = [c.compute_ms for c in contexts]
    print("\nsummary")
    print(f"  plans: {len(window)} in {duration_s:.0f} s ({len(window) / duration_s:.1f} Hz); status {statuses}")
    if inference:
        print(f"  Action Expert: median {np.median(inference):.1f} ms, p90 {np.percentile(inference, 90):.1f} ms "
              f"({window[-1].backend})")
    print(f"  contexts: {len(contexts)} (UE prefill median {np.median(compute):.0f} ms); model {contexts[-1].model_id}")
    print(f"  weights: {weights}")
    return 0 if window and response is not None and response.success else 1
