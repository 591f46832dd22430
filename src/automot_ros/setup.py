"""ament_python package of the automot stack; top-level launch/, config/ and checkpoints/ go to share/."""

import os
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "automot_ros"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def share_files(top: str) -> list:
    """(install dir, [files]) pairs that mirror REPO/top under share/automot_ros/top."""
    root = REPO / top
    entries = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel_dir = path.parent.relative_to(REPO)
            entries.setdefault(f"share/{PACKAGE}/{rel_dir}", []).append(os.path.relpath(path, HERE))
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch"),
        *share_files("config"),
        *share_files("checkpoints"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="automot developers",
    maintainer_email="dev@automot.invalid",
    description="AutoMoT driving stack: model library and ROS 2 nodes",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "understanding_node = automot_ros.nodes.understanding_node:main",
            "action_node = automot_ros.nodes.action_node:main",
            "language_node = automot_ros.nodes.language_node:main",
            "synthetic_source = automot_ros.nodes.synthetic_source:main",
            "sim_bridge = automot_ros.nodes.sim_bridge:main",
            "automot = automot_ros.cli:main",
        ],
    },
)
