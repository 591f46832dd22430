"""The training passes of the model: batched UE contexts, teacher-forced answer logits, and
the AE on one context per batch item, each against the inference path it trains."""

from __future__ import annotations

import pytest
import torch

from automot_ros.model import format_instruction


def _batch(model, n: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v, s = model.cfg.vision, model.cfg.action.scene
    frames = torch.randint(0, 256, (n, v.frames, 3, *v.image_size), dtype=torch.uint8, generator=g)
    targets = torch.rand(n, 2, 2, generator=g) * 30.0 - torch.tensor([0.0, 15.0])
    speed = torch.rand(n, generator=g) * 15.0
    instructions = [format_instruction(targets[b], float(speed[b])) for b in range(n)]
    scene = torch.randint(0, 256, (n, 3, *s.image_size), dtype=torch.uint8, generator=g)
    return frames, instructions, scene, targets, speed


def test_context_kv_is_understand_batched(tiny):
    frames, instructions, *_ = _batch(tiny)
    with torch.no_grad():
        kv = tiny.context_kv(frames, instructions)
        ae_heads = tiny.context_kv(frames, instructions, kv_heads=tiny.cfg.action.kv_heads)
    assert kv.shape[:4] == (2, tiny.cfg.decoder.layers, 2, tiny.cfg.decoder.kv_heads)
    for b in range(2):
        torch.testing.assert_close(kv[b], tiny.understand(frames[b], instructions[b]).kv, rtol=0, atol=1e-5)
    torch.testing.assert_close(ae_heads, kv[:, :, :, :tiny.cfg.action.kv_heads])


def test_text_logits_match_incremental_decoding(tiny):
    frames, instructions, *_ = _batch(tiny)
    ids, start = tiny.qa_token_ids("How fast are we going?", "8.2 m/s (30 km/h).")
    assert ids[-1] == tiny.tokenizer.eos_ids[0] and 0 < start < len(ids) - 1
    text = torch.tensor([ids, ids])
    with torch.no_grad():
        logits = tiny.text_logits(frames, instructions, text)
    assert logits.shape == (2, len(ids), tiny.cfg.decoder.vocab)
    for b in range(2):
        context = tiny.understand(frames[b], instructions[b])
        cache = tiny.decoder.empty_cache(context.num_tokens + len(ids), context.kv)
        cache[:, :, :, :context.num_tokens] = context.kv
        with torch.no_grad():
            hidden = tiny.decoder.run(tiny.decoder.embed_tokens(text[b:b + 1]), cache, context.num_tokens)
        # Row i + 1 of text_logits scores token i + 1 from the state after token i.
        torch.testing.assert_close(logits[b, 1:], tiny.decoder.logits(hidden)[0, :-1], rtol=1e-4, atol=1e-4)


def test_greedy_answer_is_the_argmax_of_text_logits(tiny):
    frames, instructions, *_ = _batch(tiny, 1)
    answer = tiny.answer(tiny.understand(frames[0], instructions[0]), "Which lane are we in?", max_new_tokens=6)
    prompt, start = tiny.qa_token_ids("Which lane are we in?", "")
    text = torch.tensor([list(prompt[:start]) + list(answer.token_ids)])
    with torch.no_grad():
        logits = tiny.text_logits(frames, instructions, text)
    assert logits[0, start:].argmax(-1).tolist() == list(answer.token_ids)


def test_right_padding_does_not_change_earlier_logits(tiny):
    frames, instructions, *_ = _batch(tiny, 1)
    ids, _ = tiny.qa_token_ids("How fast are we going?", "3.0 m/s.")
    pad = tiny.tokenizer.eos_ids[0]
    with torch.no_grad():
        plain = tiny.text_logits(frames, instructions, torch.tensor([ids]))
        padded = tiny.text_logits(frames, instructions, torch.tensor([list(ids) + [pad] * 5]))
    torch.testing.assert_close(padded[:, :len(ids)], plain, rtol=1e-5, atol=1e-4)


def test_text_logits_train_the_projector(tiny, make_inputs):
    frames, instructions, *_ = _batch(tiny, 1)
    ids, _ = tiny.qa_token_ids("How fast are we going?", "3.0 m/s.")
    tiny.zero_grad(set_to_none=True)
    tiny.text_logits(frames, instructions, torch.tensor([ids])).logsumexp(-1).sum().backward()
    assert tiny.projector[0].weight.grad is not None and float(tiny.projector[0].weight.grad.abs().sum()) > 0
    tiny.zero_grad(set_to_none=True)


def test_text_logits_reject_bad_ids(tiny):
    frames, instructions, *_ = _batch(tiny, 2)
    with pytest.raises(ValueError, match="int64"):
        tiny.text_logits(frames, instructions, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="do not fit"):
        tiny.text_logits(frames, instructions, torch.zeros(3, 3, dtype=torch.long))


def test_action_expert_takes_one_context_per_item(tiny):
    frames, instructions, scene, targets, speed = _batch(tiny, 3)
    with torch.no_grad():
        kv = tiny.context_kv(frames, instructions, kv_heads=tiny.cfg.action.kv_heads)
        batched = tiny.ae(kv, scene, targets, speed)
        half = tiny.ae(kv.half(), scene, targets, speed)  # the training cache stores fp16
        for b in range(3):
            single = tiny.ae(tiny.understand(frames[b], instructions[b]).kv, scene[b:b + 1], targets[b:b + 1],
                             speed[b:b + 1])
            for x, y in zip(batched, single):
                torch.testing.assert_close(x[b:b + 1], y, rtol=1e-4, atol=1e-4)
    for x, y in zip(half, batched):
        assert x.dtype == torch.float32
        torch.testing.assert_close(x, y, rtol=0, atol=0.05 * max(1.0, float(y.abs().max())))
