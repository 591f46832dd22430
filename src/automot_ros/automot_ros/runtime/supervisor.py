"""Runs the stack's node processes like `ros2 launch` does, for venvs without `launch`.

Starts each node as ``python -m automot_ros.nodes.<name> --ros-args ...`` with the same
parameter file and remappings the launch file uses, forwards SIGINT/SIGTERM to them, and
stops all of them (SIGINT, wait, SIGTERM, wait, SIGKILL) when one fails or on a signal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

STACK_NODES = ("understanding_node", "action_node", "language_node")


@dataclass
class NodeSpec:
    executable: str  # module name under automot_ros.nodes
    parameters: Dict[str, str] = field(default_factory=dict)  # name -> value as on the command line
    params_file: Optional[str] = None

    def command(self, namespace: str, use_sim_time: bool) -> List[str]:
        args = [sys.executable, "-m", f"automot_ros.nodes.{self.executable}", "--ros-args", "-r", f"__ns:={namespace}"]
        if self.params_file:
            args += ["--params-file", self.params_file]
        for name, value in {**self.parameters, "use_sim_time": str(use_sim_time).lower()}.items():
            args += ["-p", f"{name}:={value}"]
        return args


class Supervisor:
    def __init__(self, specs: List[NodeSpec], namespace: str = "/automot", use_sim_time: bool = False,
                 stop_timeout_s: float = 10.0, output=None):
        self.specs = specs
        self.output = output  # a file for the nodes' stdout and stderr (default: inherited)
        self.namespace = namespace
        self.use_sim_time = use_sim_time
        self.stop_timeout_s = stop_timeout_s
        self.processes: Dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        for spec in self.specs:
            redirect = {} if self.output is None else {"stdout": self.output, "stderr": subprocess.STDOUT}
            self.processes[spec.executable] = subprocess.Popen(spec.command(self.namespace, self.use_sim_time),
                                                               **redirect)

    def failed(self) -> Optional[str]:
        """Name and exit code of a node that exited, if any."""
        for name, proc in self.processes.items():
            code = proc.poll()
            if code is not None:
                return f"{name} exited with code {code}"
        return None

    def stop(self) -> None:
        """SIGINT all, then SIGTERM, then SIGKILL whatever is still running."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            running = [p for p in self.processes.values() if p.poll() is None]
            for proc in running:
                proc.send_signal(sig)
            deadline = time.monotonic() + self.stop_timeout_s
            for proc in running:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def run(self, duration_s: Optional[float] = None) -> int:
        """Start, wait for a signal, a failed node or ``duration_s``; stop all; exit code."""
        received = []

        def on_signal(signum, _frame):
            received.append(signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        failure = None
        try:
            self.start()
            deadline = None if duration_s is None else time.monotonic() + duration_s
            while not received and (deadline is None or time.monotonic() < deadline):
                failure = self.failed()
                if failure:
                    print(f"automot: {failure}; stopping the stack", file=sys.stderr)
                    break
                time.sleep(0.1)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if failure else 0


def stack_specs(params_file: str, overrides: Dict[str, str], nodes=STACK_NODES) -> List[NodeSpec]:
    """The three nodes with one parameter file and the same command-line overrides."""
    return [NodeSpec(name, dict(overrides), params_file) for name in nodes]
