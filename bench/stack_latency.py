"""Latency of the running stack across processes, and the cost of handing a context over.

Part 1, end to end (``--parts stack``). Starts ``understanding_node`` and ``action_node``
(tiny model, namespace /automot_bench, context segment automot_bench_<pid>) and the
synthetic source at 20 Hz as child processes; a probe node in this process subscribes
``plan`` (DrivingPlan) and ``context`` (ContextInfo). After the first OK plan and
``--warmup`` s it measures for ``--duration`` s:
  - camera stamp -> plan received: wall time at the probe's plan callback minus
    plan.header.stamp (the camera stamp; the source stamps with the ROS clock, which is
    the system clock), median and p99;
  - achieved plan and context rates ((n - 1) / span of receive times);
  - plan status counts, Action-Expert inference_ms, context age, UE prefill compute_ms.
The children's console output goes to a log file (path printed); they are stopped with
SIGINT, then SIGTERM, then SIGKILL (automot_ros.runtime.supervisor.Supervisor.stop).

Part 2, context handoff (``--parts handoff``) at ``--sizes-mib`` (default 1, 16, 128) with
a K/V geometry of 32 layers x 8 KV heads x head_dim 128 in float16 (128 KiB per token, so
8, 128 and 1024 tokens), between two processes, in lockstep (one context in flight):
  - shared memory: a ContextWriter child (bench/shm_handoff.py's writer) stamps
    CLOCK_MONOTONIC just before ``write``; this process measures stamp -> zero-copy view
    and stamp -> private copy (read_latest / read_slot(copy=True)), alternating;
  - DDS: a ``--role dds-publisher`` child of this file stamps CLOCK_MONOTONIC into a
    sensor_msgs/Image header, fills ``data`` from a prebuilt ``bytes`` of the same size
    (the fast path) and publishes (reliable, keep last 1); this process measures
    stamp -> subscriber callback entry.
Median and p90 over ``--samples`` per path and size (``--samples-large`` for sizes of
64 MiB and more); the first contexts/messages (segment page faults, DDS matching) are
not counted.

    source env.sh; export ROS_DOMAIN_ID=23
    python bench/stack_latency.py [--duration 20] [--parts stack handoff] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import rclpy
from automot_msgs.msg import ContextInfo, DrivingPlan
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from automot_ros.eval.runtime_stats import rate_summary, status_counts, summarize
from automot_ros.ros.time_conv import ns_to_stamp, stamp_to_ns
from automot_ros.runtime.context_shm import segment_path
from automot_ros.runtime.plan_result import PlanStatus
from automot_ros.runtime.supervisor import NodeSpec, Supervisor
from shm_handoff import KVGeometry, measure_handoff

BENCH_DIR = Path(__file__).resolve().parent
NAMESPACE = "/automot_bench"
SOURCE_RATE_HZ = 20.0
STARTUP_TIMEOUT_S = 120.0
# Handoff geometry: 32 layers x 2 x 8 KV heads x head_dim 128, float16 = 128 KiB per token.
HANDOFF_LAYERS, HANDOFF_KV_HEADS, HANDOFF_HEAD_DIM = 32, 8, 128
LARGE_MIB = 64  # sizes from here on use --samples-large
DDS_WARMUP_MESSAGES = 2
DDS_SAMPLE_TIMEOUT_S = 60.0
HANDOFF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)


# --------------------------------------------------------------------------- part 1: stack

class LoggedSupervisor(Supervisor):
    """Supervisor whose nodes write their console output to a log file, not the table."""

    def __init__(self, specs: List[NodeSpec], namespace: str, log_path: Path):
        super().__init__(specs, namespace=namespace)
        self.log_path = log_path
        self.log_file = None

    def start(self) -> None:
        self.log_file = open(self.log_path, "w")
        for spec in self.specs:
            self.processes[spec.executable] = subprocess.Popen(
                spec.command(self.namespace, self.use_sim_time), stdout=self.log_file, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        super().stop()
        if self.log_file is not None:
            self.log_file.close()


def spin_for(executor: SingleThreadedExecutor, supervisor: Supervisor, seconds: float, until=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        executor.spin_once(timeout_sec=0.05)
        failure = supervisor.failed()
        if failure:
            raise RuntimeError(f"{failure} (log: {supervisor.log_path})")


def measure_stack(duration_s: float, warmup_s: float, log_path: Path) -> dict:
    segment = f"automot_bench_{os.getpid()}"
    model_params = {"model": "tiny", "segment": segment}
    specs = [NodeSpec("understanding_node", dict(model_params)), NodeSpec("action_node", dict(model_params)),
             NodeSpec("synthetic_source", {"rate_hz": str(SOURCE_RATE_HZ)})]
    supervisor = LoggedSupervisor(specs, NAMESPACE, log_path)
    node = rclpy.create_node("stack_latency_probe", namespace=NAMESPACE)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    plans: List[tuple] = []  # (receive wall ns, camera stamp ns, status, inference_ms, context_age_ms)
    contexts: List[tuple] = []  # (receive wall ns, compute_ms)

    def on_plan(msg: DrivingPlan) -> None:
        plans.append((time.time_ns(), stamp_to_ns(msg.header.stamp), msg.status, msg.inference_ms, msg.context_age_ms))

    def on_context(msg: ContextInfo) -> None:
        contexts.append((time.time_ns(), msg.compute_ms))

    node.create_subscription(DrivingPlan, "plan", on_plan, 50)
    node.create_subscription(ContextInfo, "context", on_context, 10)
    try:
        supervisor.start()
        startup = time.monotonic()
        spin_for(executor, supervisor, STARTUP_TIMEOUT_S,
                 until=lambda: contexts and any(p[2] == PlanStatus.OK for p in plans))
        if not contexts or not any(p[2] == PlanStatus.OK for p in plans):
            raise RuntimeError(f"no OK plan within {STARTUP_TIMEOUT_S:.0f} s (log: {log_path})")
        startup_s = time.monotonic() - startup
        spin_for(executor, supervisor, warmup_s)
        first_plan, first_context = len(plans), len(contexts)
        spin_for(executor, supervisor, duration_s)
        window_plans, window_contexts = plans[first_plan:], contexts[first_context:]
    finally:
        supervisor.stop()
        executor.shutdown()
        node.destroy_node()
        remove_leftover_segment(segment)
    exit_codes = {name: process.returncode for name, process in supervisor.processes.items()}

    planned = [p for p in window_plans if p[2] in (PlanStatus.OK, PlanStatus.STALE_CONTEXT)]
    return {
        "config": {"model": "tiny", "namespace": NAMESPACE, "segment": segment, "source_rate_hz": SOURCE_RATE_HZ,
                   "warmup_s": warmup_s, "duration_s": duration_s, "startup_s": startup_s, "log": str(log_path),
                   "exit_codes": exit_codes},
        "camera_to_plan_ms": summarize((recv - stamp) / 1e6 for recv, stamp, *_ in window_plans),
        "plan_rate": {"count": len(window_plans), **rate_summary(p[0] / 1e9 for p in window_plans)},
        "context_rate": {"count": len(window_contexts), **rate_summary(c[0] / 1e9 for c in window_contexts)},
        "statuses": status_counts(p[2] for p in window_plans),
        "inference_ms": summarize(p[3] for p in planned),
        "context_age_ms": summarize(p[4] for p in planned),
        "ue_compute_ms": summarize(c[1] for c in window_contexts),
    }


def remove_leftover_segment(name: str) -> None:
    """Unlink our own segment if its writer died without doing so (e.g. SIGKILL)."""
    try:
        os.unlink(segment_path(name))
        print(f"removed leftover shared-memory segment {name}", file=sys.stderr)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- part 2: handoff

def run_dds_publisher(topic: str, nbytes: int) -> None:
    """Child role: publish one Image of ``nbytes`` per stdin line; print the ms from the
    stamp to ``publish`` returning. READY once the subscriber is matched; exit on EOF."""
    rclpy.init()
    node = rclpy.create_node(f"handoff_publisher_{os.getpid()}")
    publisher = node.create_publisher(Image, topic, HANDOFF_QOS)
    payload = bytes(nbytes)
    try:
        deadline = time.monotonic() + 30.0
        while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("READY" if publisher.get_subscription_count() else "NO_SUBSCRIBER", flush=True)
        for _request in sys.stdin:
            msg = Image(height=1, width=nbytes, step=nbytes, encoding="mono8")
            stamp_ns = time.monotonic_ns()
            msg.header.stamp = ns_to_stamp(stamp_ns)
            msg.data = payload
            publisher.publish(msg)
            print(f"{(time.monotonic_ns() - stamp_ns) / 1e6:.3f}", flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def stop_child(child: subprocess.Popen) -> None:
    """EOF on stdin (a clean exit), then SIGINT, SIGTERM and SIGKILL, waiting after each."""
    if child.stdin and not child.stdin.closed:
        try:
            child.stdin.close()
        except BrokenPipeError:
            pass
    for stop_signal in (None, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if stop_signal is not None:
            child.send_signal(stop_signal)
        try:
            child.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    child.stdout.close()


def measure_dds_handoff(nbytes: int, samples: int, interval_s: float) -> Dict[str, List[float]]:
    """Stamp -> subscriber callback for ``samples`` Image messages of ``nbytes``, in ms."""
    topic = f"{NAMESPACE}/handoff_{os.getpid()}"
    node = rclpy.create_node("handoff_subscriber", namespace=NAMESPACE)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received: List[tuple] = []  # (callback monotonic ns, stamp ns, data length)
    node.create_subscription(
        Image, topic, lambda msg: received.append((time.monotonic_ns(), stamp_to_ns(msg.header.stamp), len(msg.data))),
        HANDOFF_QOS)
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--role", "dds-publisher",
                              "--topic", topic, "--nbytes", str(nbytes)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    results: Dict[str, List[float]] = {"callback_ms": [], "publish_ms": []}
    try:
        while True:  # spin while the child starts, so discovery proceeds on both sides
            executor.spin_once(timeout_sec=0.05)
            if child.poll() is not None:
                raise RuntimeError(f"DDS publisher exited with code {child.returncode}")
            if node.count_publishers(topic) >= 1:
                break
        line = child.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"DDS publisher did not match the subscriber (said {line!r})")
        for index in range(DDS_WARMUP_MESSAGES + samples):
            expected = len(received) + 1
            child.stdin.write("publish\n")
            child.stdin.flush()
            deadline = time.monotonic() + DDS_SAMPLE_TIMEOUT_S
            while len(received) < expected:
                executor.spin_once(timeout_sec=0.05)
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError(f"message {index + 1} of {nbytes} bytes not received "
                                       f"within {DDS_SAMPLE_TIMEOUT_S:.0f} s")
            publish_ms = float(child.stdout.readline())
            callback_ns, stamp_ns, length = received[-1]
            if length != nbytes:
                raise RuntimeError(f"received {length} bytes, expected {nbytes}")
            if index >= DDS_WARMUP_MESSAGES:
                results["callback_ms"].append((callback_ns - stamp_ns) / 1e6)
                results["publish_ms"].append(publish_ms)
            time.sleep(interval_s)
    finally:
        stop_child(child)
        executor.shutdown()
        node.destroy_node()
    return results


def measure_handoffs(sizes_mib: List[int], samples: int, samples_large: int, interval_s: float) -> dict:
    token_bytes = HANDOFF_LAYERS * 2 * HANDOFF_KV_HEADS * HANDOFF_HEAD_DIM * 2  # float16
    sizes = []
    for mib in sizes_mib:
        geometry = KVGeometry(HANDOFF_LAYERS, HANDOFF_KV_HEADS, HANDOFF_HEAD_DIM,
                              tokens=max(1, mib * 2**20 // token_bytes), dtype="float16")
        count = samples_large if mib >= LARGE_MIB else samples
        print(f"  handoff {mib} MiB: shm ...", flush=True)
        segment = f"automot_bench_handoff_{os.getpid()}"
        try:
            shm = measure_handoff(geometry, 2 * count, interval_s, segment)  # half views, half copies
        finally:
            remove_leftover_segment(segment)
        print(f"  handoff {mib} MiB: DDS ...", flush=True)
        dds = measure_dds_handoff(geometry.nbytes, count, interval_s)
        sizes.append({
            "mib": mib, "bytes": geometry.nbytes, "geometry": geometry.describe(),
            "shm": {"stamp_to_view_ms": summarize(shm["view_ms"]), "stamp_to_copy_ms": summarize(shm["copy_ms"]),
                    "write_ms": summarize(shm["write_ms"]), "torn_reads": len(shm["torn"])},
            "dds": {"stamp_to_callback_ms": summarize(dds["callback_ms"]),
                    "fill_and_publish_ms": summarize(dds["publish_ms"])},
        })
    return {"qos": "reliable, keep last 1", "message": "sensor_msgs/Image (data from bytes)",
            "clock": "CLOCK_MONOTONIC", "interval_s": interval_s, "sizes": sizes}


# --------------------------------------------------------------------------- report

def print_stack(stack: dict) -> None:
    c = stack["config"]
    latency, plans, contexts = stack["camera_to_plan_ms"], stack["plan_rate"], stack["context_rate"]
    print(f"\nend to end: tiny model, synthetic source {c['source_rate_hz']:g} Hz, {c['duration_s']:g} s "
          f"after {c['warmup_s']:g} s warm-up (startup {c['startup_s']:.1f} s)")
    print(f"  camera stamp -> plan received  median {latency['median']:7.1f} ms   p99 {latency['p99']:7.1f} ms"
          f"   (n={latency['count']}, max {latency['max']:.1f} ms)")
    print(f"  plan rate                      {plans['rate_hz']:7.2f} Hz   ({plans['count']} plans)")
    print(f"  context rate                   {contexts['rate_hz']:7.2f} Hz   ({contexts['count']} contexts)")
    print(f"  plan status                    {', '.join(f'{k} {v}' for k, v in stack['statuses'].items())}")
    print(f"  AE inference_ms                median {stack['inference_ms']['median']:7.1f} ms"
          f"   p99 {stack['inference_ms']['p99']:7.1f} ms")
    print(f"  context age (plan stamp - context stamp) median {stack['context_age_ms']['median']:.0f} ms;"
          f" UE prefill compute_ms median {stack['ue_compute_ms']['median']:.1f} ms")
    print(f"  node logs: {c['log']}; exit codes {c['exit_codes']}")


def print_handoff(handoff: dict) -> None:
    print(f"\ncontext handoff between two processes (ms from a CLOCK_MONOTONIC stamp taken before write/fill; "
          f"DDS: {handoff['message']}, {handoff['qos']})")
    print(f"  {'size':>8}  {'path':34s} {'median':>9} {'p90':>9} {'n':>4}")
    for size in handoff["sizes"]:
        rows = [("shm -> zero-copy view", size["shm"]["stamp_to_view_ms"]),
                ("shm -> private copy", size["shm"]["stamp_to_copy_ms"]),
                ("DDS -> subscriber callback", size["dds"]["stamp_to_callback_ms"]),
                ("  (shm write() alone)", size["shm"]["write_ms"]),
                ("  (DDS fill + publish() call)", size["dds"]["fill_and_publish_ms"])]
        for index, (label, s) in enumerate(rows):
            head = f"{size['mib']} MiB" if index == 0 else ""
            print(f"  {head:>8}  {label:34s} {s['median']:9.2f} {s['p90']:9.2f} {s['count']:4d}")
        if size["shm"]["torn_reads"]:
            print(f"  {'':>8}  torn zero-copy reads: {size['shm']['torn_reads']}")


def json_safe(value):
    """NaN/inf -> None, recursively (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="end-to-end measurement window [s] (20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="wait after the first OK plan [s] (5)")
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[1, 16, 128], help="handoff sizes [MiB]")
    parser.add_argument("--samples", type=int, default=20, help="handoff samples per path and size (20)")
    parser.add_argument("--samples-large", type=int, default=10,
                        help=f"handoff samples per path for sizes >= {LARGE_MIB} MiB (10)")
    parser.add_argument("--interval", type=float, default=0.05, help="pause between handoff samples [s]")
    parser.add_argument("--parts", nargs="+", choices=["stack", "handoff"], default=["stack", "handoff"])
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "stack_latency.json",
                        help="JSON results file (default bench/results/stack_latency.json)")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / f"stack_latency_{os.getpid()}.log",
                        help="the stack nodes' console output")
    parser.add_argument("--role", choices=["main", "dds-publisher"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--nbytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "dds-publisher":
        run_dds_publisher(args.topic, args.nbytes)
        return 0
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
        parser.error("ROS_AUTOMATIC_DISCOVERY_RANGE must be LOCALHOST (source env.sh)")

    started = time.monotonic()
    report = {
        "benchmark": "stack_latency",
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "rmw": os.environ.get("RMW_IMPLEMENTATION", ""), "ros_domain_id": os.environ.get("ROS_DOMAIN_ID", "0")},
    }
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C: KeyboardInterrupt, finally blocks run
    try:
        if "stack" in args.parts:
            print(f"end to end: starting the stack under {NAMESPACE} (node logs: {args.log}) ...", flush=True)
            report["stack"] = measure_stack(args.duration, args.warmup, args.log)
        if "handoff" in args.parts:
            print("context handoff ...", flush=True)
            report["handoff"] = measure_handoffs(args.sizes_mib, args.samples, args.samples_large, args.interval)
    finally:
        rclpy.try_shutdown()
    report["wall_time_s"] = time.monotonic() - started

    if "stack" in report:
        print_stack(report["stack"])
    if "handoff" in report:
        print_handoff(report["handoff"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(json_safe(report), indent=2) + "\n")
    print(f"\nwall time {report['wall_time_s']:.1f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
