"""Test-session isolation for everything that touches DDS or shared memory.

Every pytest run gets its own ROS_DOMAIN_ID (a lock file per domain, so two runs on one
machine never share one), a temporary ROS_HOME/ROS_LOG_DIR, DDS discovery on loopback only,
and checks at the end that it left no child process and no shared-memory segment behind.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest
from automot_testing import ManagedProcess, automot_segments, child_pids, owned_by_another_live_session

TEST_DIR = Path(__file__).resolve().parent
# Domain ids 0-101 map to valid Fast DDS ports on Linux; keep clear of the default 0.
DOMAIN_RANGE = range(40, 100)

_domain_lock = None


def _claim_domain_id() -> int:
    global _domain_lock
    for domain in DOMAIN_RANGE:
        handle = open(os.path.join(tempfile.gettempdir(), f"automot-ros-domain-{domain}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _domain_lock = handle  # held for the whole session
        return domain
    raise RuntimeError(f"no free ROS_DOMAIN_ID in {DOMAIN_RANGE}")


def pytest_configure(config):
    ros_home = Path(tempfile.mkdtemp(prefix="automot-test-ros-"))
    os.environ.update(
        ROS_DOMAIN_ID=str(_claim_domain_id()),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_HOME=str(ros_home),
        ROS_LOG_DIR=str(ros_home / "log"),
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
    )


@pytest.fixture(scope="session", autouse=True)
def leaves_nothing_behind():
    """Fail the session if a test left a child process or an automot shm segment."""
    segments_before = automot_segments()
    yield
    deadline = time.monotonic() + 5.0
    while child_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover_children = child_pids()
    leftover_segments = {s for s in automot_segments() - segments_before if not owned_by_another_live_session(s)}
    assert not leftover_children, f"tests left child processes: {leftover_children}"
    assert not leftover_segments, f"tests left shared-memory segments: {sorted(leftover_segments)}"


@pytest.fixture
def start_process():
    """Start child processes for one test; each is stopped (and reaped) when the test ends."""
    started = []

    def start(args, env=None) -> ManagedProcess:
        proc = ManagedProcess(args, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def python_peer(start_process):
    """Start ``python test/<script> args...`` as a separate process."""

    def start(script: str, *args) -> ManagedProcess:
        return start_process([sys.executable, TEST_DIR / script, *args])

    return start


@pytest.fixture
def rclpy_node():
    """A node in this process, on a context of its own, destroyed after the test."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("automot_test_probe", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.spin_until = lambda predicate, timeout_s: _spin_until(executor, predicate, timeout_s)
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _spin_until(executor, predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()
