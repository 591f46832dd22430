"""Answering a person's question from the newest context (human-vehicle interaction)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from automot_ros.model import ContextCache
from automot_ros.runtime.context_source import ContextSource


@dataclass(frozen=True)
class AnswerResult:
    success: bool
    answer: str = ""
    error: str = ""
    context_seq: int = 0
    latency_ms: float = 0.0


class LanguageRunner:
    """Validates the question, attaches the newest context and decodes a bounded answer."""

    def __init__(self, model, context_source: ContextSource, max_question_chars: int = 300,
                 max_new_tokens: int = 48, max_decode_time_s: float = 10.0):
        self.model = model
        self.contexts = context_source
        self.max_question_chars = max_question_chars
        self.max_new_tokens = max_new_tokens
        self.max_decode_time_s = max_decode_time_s

    def ask(self, question: str) -> AnswerResult:
        start = time.perf_counter()

        def done(**fields) -> AnswerResult:
            return AnswerResult(latency_ms=(time.perf_counter() - start) * 1e3, **fields)

        question = question.strip()
        if not question:
            return done(success=False, error="the question is empty")
        if len(question) > self.max_question_chars:
            return done(success=False, error=f"the question has {len(question)} characters, "
                                             f"more than max_question_chars={self.max_question_chars}")
        if not question.isprintable():
            return done(success=False, error="the question contains control characters")
        # A private copy: decoding takes long enough for the writer to reuse the slot.
        snapshot = self.contexts.latest(copy=True)
        if snapshot is None and self.contexts.announced is None:
            return done(success=False, error="no scene context yet: the understanding node has not published one")
        if snapshot is None:
            return done(success=False, error=f"the scene context in {self.contexts.announced.segment!r} cannot be "
                                             "read: the understanding node stopped or is restarting")
        context = ContextCache.from_kv(torch.from_numpy(snapshot.kv), snapshot.model_id, snapshot.next_position)
        answer = self.model.answer(context, question, max_new_tokens=self.max_new_tokens,
                                   max_time_s=self.max_decode_time_s)
        return done(success=True, answer=answer.text, context_seq=snapshot.seq)
