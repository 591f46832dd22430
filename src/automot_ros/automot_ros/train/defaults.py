"""Training defaults shared by the CLI and the trainer (no heavy imports here: `automot`
builds its parser from them)."""

STAGES = ("projector", "ae", "answer")
# Stages trained on the QA pairs' answer CE (the others on the AE's losses).
TEXT_STAGES = ("projector", "answer")
DEFAULT_STEPS = {"projector": 300, "ae": 1500, "answer": 300}
DEFAULT_LR = {"projector": 1e-3, "ae": 3e-4, "answer": 1e-3}
DEFAULT_BATCH = 16
DEFAULT_UE_PERIOD_S = 0.5
# The AE's agent-clearance loss (train/losses.py; ours, not the release's): weight, margin [m].
DEFAULT_AGENT_CLEARANCE_WEIGHT = 5.0
DEFAULT_AGENT_CLEARANCE_MARGIN_M = 0.5
