"""Fixtures of the engine tests: one export of the tiny Action Expert per session, made by
the real `automot engines export` command in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from automot_ros.engines.artifacts import model_identity, onnx_path, parity_path


class TinyExport:
    def __init__(self, engine_dir: Path, output: str, returncode: int):
        self.engine_dir = engine_dir
        self.output = output
        self.returncode = returncode
        self.cfg, self.model_id = model_identity("tiny")

    def onnx(self, precision: str) -> Path:
        return onnx_path(self.engine_dir, self.model_id, precision)

    @property
    def parity_file(self) -> Path:
        return parity_path(self.engine_dir, self.model_id)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> TinyExport:
    engine_dir = tmp_path_factory.mktemp("engines")
    proc = subprocess.run(
        [sys.executable, "-m", "automot_ros.cli", "engines", "export", "--model", "tiny", "--out", str(engine_dir),
         "--threads", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    return TinyExport(engine_dir, proc.stdout, proc.returncode)


@pytest.fixture(scope="session")
def tiny_model():
    from automot_ros.model import build_model

    return build_model("tiny")
