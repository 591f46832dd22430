"""Helpers shared by the test suite: child processes that are always reaped, the checks
that a test left nothing behind (processes, shared-memory segments), and tiny Action Experts
with random inputs (torch is imported only by those)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHM_DIR = Path("/dev/shm")


def tiny_model_with_action(**action_fields):
    """The untrained tiny model with these ``ActionExpertConfig`` fields replaced."""
    import dataclasses

    from automot_ros.model import build_model, load_model_config

    tiny = load_model_config("tiny")
    return build_model(dataclasses.replace(tiny, action=dataclasses.replace(tiny.action, **action_fields)))


def random_action_expert_inputs(model, batch: int, tokens: int, generator) -> tuple:
    """Inputs of ``model.action_expert`` for ``batch`` items on a ``tokens``-long context:
    (context_kv [layers, 2, kv_heads, tokens, head_dim], scene_input uint8 [batch, 3, Hs, Ws],
    target_points [batch, K, 2] within ~10 m, speed [batch] in 0-15 m/s)."""
    import torch

    d, action = model.cfg.decoder, model.cfg.action
    return (torch.randn(d.layers, 2, d.kv_heads, tokens, d.head_dim, generator=generator),
            torch.randint(0, 256, (batch, 3, *action.scene.image_size), dtype=torch.uint8, generator=generator),
            torch.randn(batch, action.target_points, 2, generator=generator) * 10,
            torch.rand(batch, generator=generator) * 15)


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
