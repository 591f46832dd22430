"""The answer adapter (model/answer_adapter.py): it changes the answers and nothing a context
holds, the training pass matches decoding with it, and an untrained one changes nothing."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from automot_ros.model import build_model, format_instruction
from automot_ros.model.checkpoint import adds_answer_adapter, load_checkpoint, save_checkpoint
from automot_ros.model.config import load_model_config
from automot_ros.train.cache import ue_digest


def tiny_with_adapter(rank: int = 4):
    cfg = load_model_config("tiny")
    return dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, answer_adapter_rank=rank))


@pytest.fixture(scope="module")
def pair():
    """(tiny, the same tiny with a trained-looking adapter): equal weights but the adapter's."""
    plain = build_model("tiny")
    adapted = build_model(tiny_with_adapter())
    missing = adapted.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("answer_adapter.") for k in missing)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in adapted.answer_adapter.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return plain, adapted


def _inputs(model):
    g = torch.Generator().manual_seed(0)
    v = model.cfg.vision
    frames = torch.randint(0, 256, (v.frames, 3, *v.image_size), dtype=torch.uint8, generator=g)
    return frames, format_instruction([[10.0, 0.5], [20.0, 2.0]], 7.5)


def test_contexts_are_the_same_with_and_without_the_adapter(pair):
    plain, adapted = pair
    frames, instruction = _inputs(plain)
    torch.testing.assert_close(adapted.understand(frames, instruction).kv, plain.understand(frames, instruction).kv,
                               rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(adapted.context_kv(frames[None], [instruction]),
                                   plain.context_kv(frames[None], [instruction]), rtol=0, atol=0)
    # So the AE's context cache is one for both (its key ignores the adapter).
    assert ue_digest(adapted) == ue_digest(plain)


def test_the_adapter_changes_the_answer_logits_and_training_matches_decoding(pair):
    plain, adapted = pair
    frames, instruction = _inputs(plain)
    ids, start = adapted.qa_token_ids("How fast are we going?", "7.5 m/s (27 km/h).")
    text = torch.tensor([ids])
    with torch.no_grad():
        trained = adapted.text_logits(frames[None], [instruction], text)[0]
        untouched = plain.text_logits(frames[None], [instruction], text)[0]
    assert (trained[1:] - untouched[1:]).abs().max() > 1e-2
    # Row 0 comes from the context's last token, which the adapter never sees.
    torch.testing.assert_close(trained[0], untouched[0], rtol=0, atol=1e-5)
    # Greedy decoding with the adapter picks, step by step, the argmax of the training pass
    # fed its own tokens.
    context = adapted.understand(frames, instruction)
    answer = adapted.answer(context, "How fast are we going?", max_new_tokens=8)
    prompt_len = start
    fed = torch.tensor([list(ids[:prompt_len]) + list(answer.token_ids) + [0]])
    with torch.no_grad():
        rows = adapted.text_logits(frames[None], [instruction], fed)[0]
    assert rows[prompt_len:prompt_len + answer.num_tokens].argmax(-1).tolist() == list(answer.token_ids)


def test_an_untrained_adapter_changes_nothing_and_old_checkpoints_load(tmp_path):
    plain = build_model("tiny")
    adapted = build_model(tiny_with_adapter())
    adapted.load_state_dict(plain.state_dict(), strict=False)  # adapter as built: up = 0
    frames, instruction = _inputs(plain)
    ids, _ = plain.qa_token_ids("Which lane are we in?", "Lane 1 of 2.")
    with torch.no_grad():
        torch.testing.assert_close(adapted.text_logits(frames[None], [instruction], torch.tensor([ids])),
                                   plain.text_logits(frames[None], [instruction], torch.tensor([ids])))
    # A checkpoint of the model without an adapter serves the config with one.
    assert adds_answer_adapter(plain.cfg, adapted.cfg) and not adds_answer_adapter(adapted.cfg, plain.cfg)
    save_checkpoint(plain, tmp_path / "plain.safetensors")
    loaded = load_checkpoint(tmp_path / "plain.safetensors", adapted.cfg)
    assert loaded.answer_adapter is None and loaded.cfg == plain.cfg
    other = dataclasses.replace(adapted.cfg, decoder=dataclasses.replace(adapted.cfg.decoder, layers=2))
    with pytest.raises(ValueError, match="another config"):
        load_checkpoint(tmp_path / "plain.safetensors", other)
