"""Data parallelism the standard way: `torchrun --nproc_per_node 2` on the gloo backend
(2 CPU processes, DDP, then FSDP2) gives the same loss curve as 1 process with the same
global batch, through both stages (projector, context cache, AE); the DDP run also stops
(--stop-after) and resumes on the way."""

from __future__ import annotations

import os
import sys
import time

import pytest

from automot_ros.train.trainer import read_log

ARGS = ["--config", "tiny", "--data", "synthetic:32", "--projector-steps", "4", "--ae-steps", "5", "--batch", "8",
        "--threads", "1", "--no-progress", "--no-release", "--eval-split", "", "--warmup-steps", "0"]
TIMEOUT_S = 120.0


def _run(start_process, args, out) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    proc = start_process([*args, *ARGS, "--out", str(out)], env=env)
    deadline = time.monotonic() + TIMEOUT_S
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    code = proc.stop()  # stops (and reaps) it if it overran the deadline
    assert code == 0, proc.output()[-4000:]


def _losses(out):
    return [(r["stage"], int(r["step"]), float(r["loss"])) for r in read_log(out / "train_log.csv")]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return tmp_path_factory.mktemp("single")


def _compare(single_out, multi_out) -> None:
    one, two = _losses(single_out), _losses(multi_out)
    assert [r[:2] for r in one] == [("projector", s) for s in range(4)] + [("ae", s) for s in range(5)]
    assert [r[:2] for r in two] == [r[:2] for r in one]
    for (stage, step, a), (_, _, b) in zip(one, two):
        assert b == pytest.approx(a, rel=1e-5), (stage, step, a, b)
    assert _losses(single_out)[-1][2] < _losses(single_out)[4][2]  # it trains: the AE loss went down


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "automot_ros.train"]


@pytest.mark.slow
def test_two_gloo_processes_with_ddp_match_one_process(start_process, tmp_path, single):
    if not (single / "train_log.csv").is_file():
        _run(start_process, [sys.executable, "-m", "automot_ros.train"], single)
    # In two chunks: --stop-after stops both ranks inside the AE stage, --resume continues.
    _run(start_process, [*TORCHRUN, "--stop-after", "6"], tmp_path)
    assert [r[:2] for r in _losses(tmp_path)][-1] == ("ae", 1)
    _run(start_process, [*TORCHRUN, "--resume"], tmp_path)
    _compare(single, tmp_path)


@pytest.mark.slow
def test_two_gloo_processes_with_fsdp_match_one_process(start_process, tmp_path, single):
    if not (single / "train_log.csv").is_file():
        _run(start_process, [sys.executable, "-m", "automot_ros.train"], single)
    _run(start_process, [*TORCHRUN, "--fsdp"], tmp_path)
    _compare(single, tmp_path)
