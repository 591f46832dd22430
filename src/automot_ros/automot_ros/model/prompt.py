"""Prompt text: the driving instruction, the system prompt and the chat layout of a context
(system turn, then a user turn holding the frames and the instruction)."""

from __future__ import annotations

import math
from typing import List, Tuple

import torch

from .tokenizer import ChatTokenizer

SYSTEM_PROMPT = ("You are AutoMoT, the driving assistant of this car. You see the last 4 "
                 "front-camera frames, 0.25 s apart, the next route target points and the speed.")
# Where the frame tokens go inside the user turn; never part of an instruction.
FRAMES_MARKER = "<|frames|>"


def format_instruction(target_points, speed_mps: float) -> str:
    """target_points [2, 2] (ego frame, x forward, y left, meters), speed in m/s -> text.

    Fixed-width numbers keep the token count of every instruction the same (both tokenizers
    split digits one by one), so same-config prompts batch without padding.
    """
    pts = torch.as_tensor(target_points, dtype=torch.float64)
    if pts.shape != (2, 2) or not bool(torch.isfinite(pts).all()):
        raise ValueError(f"target_points must be finite [2, 2], got {tuple(pts.shape)}")
    if not math.isfinite(float(speed_mps)):
        raise ValueError(f"speed must be finite, got {speed_mps}")
    (x1, y1), (x2, y2) = pts.clamp(-999.9, 999.9).tolist()
    return (f"Next target points: ({x1:+06.1f}, {y1:+06.1f}) m and ({x2:+06.1f}, {y2:+06.1f}) m. "
            f"Speed: {min(max(float(speed_mps), 0.0), 99.9):04.1f} m/s.")


def context_text(tokenizer: ChatTokenizer, instruction: str) -> Tuple[str, str]:
    """(text before the frames, text after them) of a context's chat-formatted prompt."""
    if FRAMES_MARKER in instruction:
        raise ValueError(f"instruction must not contain {FRAMES_MARKER!r}")
    text = tokenizer.render(_context_messages(instruction))
    before, after = text.split(FRAMES_MARKER)
    return before, after


def question_text(tokenizer: ChatTokenizer, question: str) -> str:
    """A question's chat turn and the assistant prefix, as the template renders them after
    a context (the conversation's text minus the context's)."""
    context = _context_messages("")
    prefix = tokenizer.render(context)
    full = tokenizer.render(context + [{"role": "user", "content": question}],
                            add_generation_prompt=True)
    return full[len(prefix):]


def _context_messages(instruction: str) -> List[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": FRAMES_MARKER + instruction}]
