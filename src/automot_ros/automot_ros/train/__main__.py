"""`python -m automot_ros.train ...` (what torchrun starts): see train/cli.py."""

import sys

from automot_ros.train.cli import main

sys.exit(main())
