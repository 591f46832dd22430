"""The AutoMoT model library (no ROS): Understanding Expert, Action Expert, configs,
checkpoints. Entry point: ``build_model(config_name_or_cfg, checkpoint=None)``."""

from .automot import Answer, AutoMoT
from .checkpoint import build_model, load_checkpoint, save_checkpoint
from .config import ModelConfig, load_model_config
from .context import ContextCache
from .plan import Plan
from .prompt import format_instruction

__all__ = ["Answer", "AutoMoT", "ContextCache",
           "ModelConfig", "Plan", "build_model", "format_instruction", "load_checkpoint",
           "load_model_config", "save_checkpoint"]
