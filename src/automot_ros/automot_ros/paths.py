"""Where the package's data files (config/, launch/) live, in a source tree or an install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_NAME = "automot_ros"


def share_dir() -> Path:
    """The directory holding ``config/`` and ``launch/``.

    From a source checkout (or a colcon ``--symlink-install``) that is the repository root;
    from an installed package it is ``<prefix>/share/automot_ros``. ``AUTOMOT_SHARE_DIR``
    overrides both.
    """
    override = os.environ.get("AUTOMOT_SHARE_DIR")
    if override:
        return Path(override)
    repo_root = Path(__file__).resolve().parents[3]
    if (repo_root / "config").is_dir() and (repo_root / "src" / PACKAGE_NAME).is_dir():
        return repo_root
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) + [sys.prefix]:
        candidate = Path(prefix) / "share" / PACKAGE_NAME
        if (candidate / "config").is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the {PACKAGE_NAME} share directory (config/, launch/): "
        "set AUTOMOT_SHARE_DIR or source the workspace's install/setup.bash"
    )


def config_dir() -> Path:
    return share_dir() / "config"
