"""Training (no ROS): the projector stage on QA answers, the Action Expert stage on cached
UE contexts with the release's losses, data-parallel under torchrun (DDP; FSDP for the
release shapes), checkpoints/resume, CSV logs and plots, fp16 release export.

Entry points: ``automot train`` / ``python -m automot_ros.train`` (train/cli.py) and
``train(TrainOptions(...))`` (train/trainer.py). Modules: losses, data, cache, distributed,
trainer, release, synthetic. Nothing is imported here (the CLI parser stays light).
"""
