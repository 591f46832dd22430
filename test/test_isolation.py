"""The test session itself is isolated: own DDS domain, temp ROS_HOME, processes reaped."""

import os
import sys
import tempfile

from automot_testing import child_pids


def test_session_uses_its_own_domain_and_temporary_ros_home():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 40 <= int(os.environ["ROS_DOMAIN_ID"]) < 100
    for var in ("ROS_HOME", "ROS_LOG_DIR"):
        assert os.environ[var].startswith(tempfile.gettempdir()), var
        assert not os.environ[var].startswith(os.path.expanduser("~")), var


def test_stopped_process_is_reaped_even_when_it_ignores_sigint(start_process):
    stubborn = start_process(
        [sys.executable, "-c", "import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"]
    )
    assert stubborn.pid in child_pids()
    stubborn.stop(timeout_s=1.0)
    assert stubborn.pid not in child_pids()
