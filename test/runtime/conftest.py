"""Fixtures for the runtime tests: importable package, unique shm names, child processes.

The ``shm`` fixture hands out segment names unique to the test and, at teardown, first
stops every child process the test started, then asserts (and cleans up) that nothing
under /dev/shm with the test's prefix is left.
"""

import itertools
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "automot_ros"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

HELPER = Path(__file__).with_name("shm_proc.py")
_counter = itertools.count()


class ShmEnv:
    def __init__(self):
        self.prefix = f"automot_test_{os.getpid()}_{next(_counter)}_"
        self.procs = []
        self._names = itertools.count()

    def name(self) -> str:
        return f"{self.prefix}{next(self._names)}"

    def path(self, name: str) -> str:
        return "/dev/shm/" + name

    def spawn(self, *args, ready_timeout: float = 30.0) -> "tuple[subprocess.Popen, str]":
        """Start shm_proc.py with ``args``; wait for and return its first stdout line."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(SRC)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
        proc = subprocess.Popen([sys.executable, str(HELPER), *map(str, args)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], ready_timeout)
        line = proc.stdout.readline().strip() if ready else ""
        if not line:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"helper {args} did not report: {err}")
        return proc, line

    def leftovers(self):
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(self.prefix))

    def teardown(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                stream.close()
        left = self.leftovers()
        for n in left:
            os.unlink(self.path(n))
        assert not left, f"test left shared-memory segments behind: {left}"


@pytest.fixture
def shm():
    env = ShmEnv()
    yield env
    env.teardown()
