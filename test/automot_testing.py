"""Helpers shared by the test suite: child processes that are always reaped, and the
checks that a test left nothing behind (processes, shared-memory segments)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHM_DIR = Path("/dev/shm")


def automot_segments() -> set:
    return {p.name for p in SHM_DIR.glob("*automot*")} if SHM_DIR.is_dir() else set()


def owned_by_another_live_session(segment: str) -> bool:
    """Test segments carry their session's pid in the name; one naming another live process
    (a second pytest run on the machine) is not this session's to answer for."""
    pids = {int(token) for token in re.findall(r"\d+", segment)}
    return os.getpid() not in pids and any(Path(f"/proc/{pid}").exists() for pid in pids)


def child_pids() -> list:
    me = str(os.getpid())
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


class ManagedProcess:
    """A child process that is always stopped: SIGINT, wait, SIGTERM, wait, then SIGKILL."""

    def __init__(self, args, env=None, cwd=REPO):
        self.args = [str(a) for a in args]
        self.log_file = tempfile.NamedTemporaryFile(prefix="automot-proc-", suffix=".log", delete=False)
        self.popen = subprocess.Popen(
            self.args, env=env or os.environ.copy(), cwd=cwd, stdout=self.log_file, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if not self.alive():
                break
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                continue
        if self.alive():
            self.popen.kill()
            self.popen.wait()
        self.log_file.close()
        return self.popen.returncode
