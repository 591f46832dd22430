"""`automot drive` runs the three nodes like drive.launch.py and stops them cleanly."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from automot_msgs.msg import DrivingPlan
from automot_testing import child_pids

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> list:
    """Processes whose parent chain leads to ``pid``."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def test_automot_drive_runs_the_stack_and_forwards_sigint(rclpy_node, start_process):
    namespace = f"/automot_drive_{os.getpid()}"
    segment = Path("/dev/shm") / f"automot_context{namespace.replace('/', '_')}"
    drive = start_process([sys.executable, "-m", "automot_ros.cli", "drive", "--model", "tiny",
                           "--namespace", namespace])
    start_process([sys.executable, "-m", "automot_ros.nodes.synthetic_source",
                   "--ros-args", "-r", f"__ns:={namespace}"])
    plans = []
    rclpy_node.create_subscription(DrivingPlan, f"{namespace}/plan", plans.append, 50)
    assert rclpy_node.spin_until(lambda: any(p.status == DrivingPlan.STATUS_OK for p in plans), 90.0), \
        drive.output()[-3000:]
    nodes = _descendants(drive.pid)
    assert len(nodes) == 3 and segment.exists()

    drive.popen.send_signal(signal.SIGINT)
    assert drive.popen.wait(timeout=30) == 0, drive.output()[-3000:]
    time.sleep(0.2)
    assert not set(nodes) & set(child_pids() + _descendants(os.getpid()))
    assert all(not Path(f"/proc/{pid}").exists() for pid in nodes)
    assert not segment.exists()


def test_automot_drive_refuses_a_missing_parameter_file(start_process):
    drive = start_process([sys.executable, "-m", "automot_ros.cli", "drive", "--config", "/nonexistent.yaml"])
    assert drive.popen.wait(timeout=30) != 0
    assert "does not exist" in drive.output()
