"""Training defaults shared by the CLI and the trainer (no heavy imports here: `automot`
builds its parser from them)."""

STAGES = ("projector", "ae")
DEFAULT_STEPS = {"projector": 300, "ae": 1500}
DEFAULT_LR = {"projector": 1e-3, "ae": 3e-4}
DEFAULT_BATCH = 16
DEFAULT_UE_PERIOD_S = 0.5
