"""LanguageRunner (the ask service's library side) over real shared memory and the tiny model:
it answers from the newest context and says why it cannot when there is none."""

from __future__ import annotations

import torch

from automot_ros.model import build_model, format_instruction
from automot_ros.runtime.context_shm import ContextWriter
from automot_ros.runtime.context_source import Announcement, ContextSource
from automot_ros.runtime.language import LanguageRunner


def _context(model):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (model.cfg.vision.frames, 3, *model.cfg.vision.image_size),
                           generator=g, dtype=torch.uint8)
    return model.understand(frames, format_instruction([[10.0, 0.0], [20.0, 0.0]], 5.0))


def _publish(model, context, segment: str) -> tuple:
    d = model.cfg.decoder
    writer = ContextWriter(segment, model.model_id, num_layers=d.layers, kv_heads=d.kv_heads,
                           head_dim=d.head_dim, max_tokens=context.num_tokens)
    seq, slot = writer.write(context.kv, stamp_ns=1, next_position=context.num_tokens)
    return writer, Announcement(segment, seq, slot, 1, model.model_id)


def test_answers_from_the_newest_context_and_says_why_it_cannot(shm):
    model = build_model("tiny")
    context = _context(model)
    source = ContextSource(model.model_id)
    runner = LanguageRunner(model, source, max_new_tokens=4)

    result = runner.ask("What is ahead?")
    assert not result.success and "has not published one" in result.error

    segment = shm.name()
    writer, announcement = _publish(model, context, segment)
    source.announce(announcement)
    result = runner.ask("What is ahead?")
    expected = model.answer(context, "What is ahead?", max_new_tokens=4).text
    assert result.success and result.answer == expected and result.context_seq == announcement.seq

    writer.close()  # the understanding node stopped: its segment is gone
    result = runner.ask("What is ahead?")
    assert not result.success and segment in result.error and "stopped" in result.error

    writer, announcement = _publish(model, context, segment)  # ... and restarted
    source.announce(announcement)
    try:
        assert runner.ask("What is ahead?").answer == expected
    finally:
        source.close()
        writer.close()
